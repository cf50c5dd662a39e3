import type { PersonView, SettlementRecord } from "../../detectors/sdk.ts";
import type { DeathRecord, Suspect } from "../../schemas/index.ts";

export interface Cancellation {
  reversalId: string;
  atMs: number;
}

/**
 * State is changelogged as small key-value entries, one per settlement, cancellation,
 * death record and suspect settlement's findings (as Kafka Streams stores do), so an event
 * writes what it changed rather than the whole person again.
 */
export type StateEntry =
  | { kind: "s"; id: string; value: SettlementRecord | null }
  | { kind: "c"; id: string; value: Cancellation | null }
  | { kind: "d"; id: ""; value: DeathRecord | null }
  | { kind: "f"; id: string; value: Suspect[] | null };

/** Told of every change to a person's entries, as the changelog gets them. */
export type OnChange = (personId: string, entry: StateEntry) => void;

/**
 * The shape of a person's retained state on disk (its records and the detectors' facts in them).
 * Bumped when a change would make state written before it misread (2: rule_table's facts as one
 * flat array per settlement; 3: a local store holds entries, as the changelog does, not persons, and
 * keys ids LMDB cannot key by their hash); a local store of another format is emptied when opened
 * and filled again from the changelog or the archive.
 */
export const STATE_FORMAT = 3;

/** Detectors whose facts of settlements that settled before `beforeMs` are no longer read. */
export interface FactDrop {
  readonly detectors: readonly string[];
  readonly beforeMs: number;
}

/** What an absent map reads as (never written to). */
const NONE: ReadonlyMap<never, never> = new Map<never, never>();

/** A person's whole state as plain data, for a store on disk (the records are shared, not copied). */
export interface PersonSnapshot {
  s: SettlementRecord[];
  c: [string, Cancellation][];
  d: DeathRecord | null;
  f: [string, Suspect[]][];
}

/** One person's retained evidence and the findings currently active for it. */
export class PersonState implements PersonView {
  readonly settlements: SettlementRecord[] = [];
  private readonly byId = new Map<string, SettlementRecord>();
  /**
   * original settlement id → the reversal that cancels it (it may not have arrived yet). This map
   * and the findings' are made on first use: most persons never need them, and a person's empty
   * maps would cost more than its settlements in a big population.
   */
  private cancellations: Map<string, Cancellation> | undefined;
  private deathRecord: DeathRecord | undefined;
  /** suspect settlement id → its active findings. */
  private active: Map<string, Suspect[]> | undefined;
  /**
   * No retained settlement or cancellation is older than this, so a sweep with an earlier horizon
   * skips the person without a look. Removals leave it low, which only costs a needless pass.
   */
  private oldestMs = Number.POSITIVE_INFINITY;
  /**
   * Records before this index of `settlements` have had their dropped facts taken out (dropFacts).
   * Arrival order is nearly time order, so the drops move it on over the oldest records only.
   */
  private droppedTo = 0;

  /** Entries are built only for a listener: without one (no changelog) an event allocates none. */
  constructor(
    readonly personId: string,
    private readonly onChange?: OnChange,
  ) {}

  get death(): DeathRecord | undefined {
    return this.deathRecord;
  }

  get findings(): ReadonlyMap<string, Suspect[]> {
    return this.active ?? NONE;
  }

  get(id: string): SettlementRecord | undefined {
    return this.byId.get(id);
  }

  isCancelled(id: string): boolean {
    return this.cancellations?.has(id) === true;
  }

  add(s: SettlementRecord): void {
    this.byId.set(s.id, s);
    this.settlements.push(s);
    this.oldestMs = Math.min(this.oldestMs, s.settledAtMs);
    this.onChange?.(this.personId, { kind: "s", id: s.id, value: s });
  }

  remove(id: string): void {
    if (!this.byId.delete(id)) return;
    this.unlist(id);
    this.onChange?.(this.personId, { kind: "s", id, value: null });
  }

  cancel(original: string, c: Cancellation): void {
    this.cancellationMap().set(original, c);
    this.oldestMs = Math.min(this.oldestMs, c.atMs);
    this.onChange?.(this.personId, { kind: "c", id: original, value: c });
  }

  setDeath(d: DeathRecord): void {
    this.deathRecord = d;
    this.onChange?.(this.personId, { kind: "d", id: "", value: d });
  }

  setFindings(subject: string, list: Suspect[]): void {
    if (list.length > 0) this.findingMap().set(subject, list);
    else if (!this.active?.delete(subject)) return;
    this.onChange?.(this.personId, { kind: "f", id: subject, value: list.length > 0 ? list : null });
  }

  /** A copy to try events on (a check's what-if): records are shared, being immutable; nothing is reported. */
  copy(): PersonState {
    const c = new PersonState(this.personId);
    c.load(this.snapshot());
    return c;
  }

  snapshot(): PersonSnapshot {
    return {
      s: [...this.settlements],
      c: [...(this.cancellations ?? NONE)],
      d: this.deathRecord ?? null,
      f: [...(this.active ?? NONE)].map(([subject, list]) => [subject, [...list]]),
    };
  }

  /** Takes a snapshot's state into this (empty) person; not reported as changes. */
  load(x: PersonSnapshot): void {
    for (const s of x.s) this.apply({ kind: "s", id: s.id, value: s });
    for (const [id, value] of x.c) this.apply({ kind: "c", id, value });
    if (x.d) this.apply({ kind: "d", id: "", value: x.d });
    for (const [id, value] of x.f) this.apply({ kind: "f", id, value });
  }

  /** No retained evidence is older than this (a bound: removals leave it low). */
  get oldestEvidenceMs(): number {
    return this.oldestMs;
  }

  /** Event time of the newest evidence held (settlements, reversals, the death record); null when none. */
  newestEvidenceMs(): number | null {
    let newest = Number.NEGATIVE_INFINITY;
    for (const s of this.settlements) newest = Math.max(newest, s.settledAtMs);
    for (const c of (this.cancellations ?? NONE).values()) newest = Math.max(newest, c.atMs);
    if (this.deathRecord) newest = Math.max(newest, Date.parse(this.deathRecord.reported_at));
    return newest === Number.NEGATIVE_INFINITY ? null : newest;
  }

  /**
   * Drops the facts `drop` names from the records it reaches, oldest arrivals first, stopping at
   * the first it does not reach: a record that came late keeps its facts until the ones before it
   * go, which only costs memory for a while. The one change ever made to a record in place (a copy
   * per record would be garbage in the old generation, and a second shape for every detector's
   * reads); what shares it (an entry waiting for the changelog, a what-if's scratch person) is
   * meant to see it too.
   */
  dropFacts(drop: FactDrop | undefined): void {
    if (!drop) return;
    for (; this.droppedTo < this.settlements.length; this.droppedTo++) {
      const s = this.settlements[this.droppedTo] as SettlementRecord;
      if (s.settledAtMs >= drop.beforeMs) return;
      const facts = s.facts as Record<string, unknown>;
      let dropped = false;
      for (const d of drop.detectors)
        if (facts[d] !== undefined) {
          // Kept as a key: every record's facts keep one shape (see Engine.onSettle).
          facts[d] = undefined;
          dropped = true;
        }
      if (dropped) this.onChange?.(this.personId, { kind: "s", id: s.id, value: s });
    }
  }

  /** Takes the record of `id` out of `settlements`. */
  private unlist(id: string): void {
    const at = this.settlements.findIndex((s) => s.id === id);
    this.settlements.splice(at, 1);
    if (at < this.droppedTo) this.droppedTo--;
  }

  /** Drops evidence older than the horizon; returns whether anything is left. */
  evict(horizonMs: number): boolean {
    if (this.oldestMs >= horizonMs) return this.holdsAnything();
    if (this.settlements.some((s) => s.settledAtMs < horizonMs)) {
      for (const s of this.settlements.filter((x) => x.settledAtMs < horizonMs)) {
        this.remove(s.id);
        this.setFindings(s.id, []);
      }
    }
    for (const [id, c] of this.cancellations ?? NONE) {
      if (c.atMs < horizonMs && !this.byId.has(id)) {
        this.cancellations?.delete(id);
        this.onChange?.(this.personId, { kind: "c", id, value: null });
      }
    }
    this.oldestMs = Number.POSITIVE_INFINITY;
    for (const x of this.settlements) this.oldestMs = Math.min(this.oldestMs, x.settledAtMs);
    for (const c of (this.cancellations ?? NONE).values()) this.oldestMs = Math.min(this.oldestMs, c.atMs);
    return this.holdsAnything();
  }

  private cancellationMap(): Map<string, Cancellation> {
    this.cancellations ??= new Map();
    return this.cancellations;
  }

  private findingMap(): Map<string, Suspect[]> {
    this.active ??= new Map();
    return this.active;
  }

  private holdsAnything(): boolean {
    return (
      this.settlements.length > 0 || (this.cancellations?.size ?? 0) > 0 || this.deathRecord !== undefined
    );
  }

  /** Applies a changelog entry while restoring; does not report it as a change. */
  apply(e: StateEntry): void {
    switch (e.kind) {
      case "s":
        if (e.value) {
          this.oldestMs = Math.min(this.oldestMs, e.value.settledAtMs);
          if (!this.byId.has(e.id)) this.settlements.push(e.value);
          else this.settlements[this.settlements.findIndex((s) => s.id === e.id)] = e.value;
          this.byId.set(e.id, e.value);
        } else if (this.byId.delete(e.id)) {
          this.unlist(e.id);
        }
        break;
      case "c":
        if (e.value) {
          this.cancellationMap().set(e.id, e.value);
          this.oldestMs = Math.min(this.oldestMs, e.value.atMs);
        } else this.cancellations?.delete(e.id);
        break;
      case "d":
        this.deathRecord = e.value ?? undefined;
        break;
      case "f":
        if (e.value) this.findingMap().set(e.id, e.value);
        else this.active?.delete(e.id);
        break;
    }
  }
}
