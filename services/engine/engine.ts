// The incremental, event-time detection engine for one partition. Pure: no I/O, one
// event at a time, state exposed per person for snapshots and changelogs.
import { createHash } from "node:crypto";
import type { Catalogs } from "../../detectors/catalog.ts";
import {
  type AnyDetector,
  boundEvidence,
  type Detector,
  type DetectorContext,
  MAX_LISTED,
  type SettlementRecord,
} from "../../detectors/sdk.ts";
import type { DeathRecord, Settlement, Suspect } from "../../schemas/index.ts";
import { type FactDrop, type OnChange, PersonState, type StateEntry } from "./person-state.ts";
import { MemoryPersonStore, type PersonStore } from "./person-store.ts";
import { suspectId } from "./suspect-id.ts";

export type EngineEvent = { kind: "settlement"; value: Settlement } | { kind: "death"; value: DeathRecord };

/** A change to the set of findings: write `suspect` as active, or mark it retracted. */
export interface Change {
  op: "upsert" | "retract";
  suspect: Suspect;
  /** configHash of the detector's effective config when the change was decided. */
  configHash?: string;
}

export interface ActiveDetector {
  detector: Detector<unknown, unknown>;
  ctx: DetectorContext<unknown>;
  /** configHash(ctx.config). Mutable with ctx: a running worker swaps both when its config changes. */
  configHash?: string;
}

/** Pairs each detector with its parsed config (defaults filled in) and the catalogs. */
export function activate(
  detectors: readonly AnyDetector[],
  catalogs: Catalogs,
  configs: Readonly<Record<string, unknown>> = {},
): ActiveDetector[] {
  return detectors.map((detector) => {
    const config = detector.config.parse(configs[detector.id] ?? {});
    const id = detector.id;
    const facts = (s: SettlementRecord) => s.facts[id];
    return { detector, ctx: { catalogs, config, facts }, configHash: configHash(config) };
  });
}

/** JSON with object keys sorted at every level: equal values give equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}

/** Short sha256 of the canonical JSON of an effective (defaults filled in) detector config. */
export function configHash(config: unknown): string {
  return createHash("sha256")
    .update(canonicalJson(config) ?? "null")
    .digest("hex")
    .slice(0, 12);
}

export interface EngineOptions {
  detectors: ActiveDetector[];
  /** Event-time span of retained state behind the newest event seen (contract default 400 days). */
  retentionDays?: number;
  clock?: () => Date;
  /**
   * Record changed state entries for takeDirty (default false). Only for callers that drain them:
   * an engine that records and is never drained keeps an entry for every event it ever saw.
   */
  changelog?: boolean;
  /** Where persons' state is kept (default: the heap), given how the engine makes a person's object. */
  store?: (create: (personId: string) => PersonState) => PersonStore;
  /**
   * How far behind the partition's newest event (settled_at) an event's service dates may lie and
   * still be judged as if it had come in order. With a detector's reachDays it bounds how long
   * that detector keeps its facts and re-evaluates a settlement. Default: the retention, as the
   * contract has it (every detector then keeps its state for the whole retention).
   */
  latenessDays?: number;
}

export interface EngineStats {
  settlements: number;
  reversals: number;
  deaths: number;
  /** Re-delivered events recognised by id and ignored. */
  duplicates: number;
  /** Events older than the retention behind the newest event: checked against what is retained. */
  tooLate: number;
}

export const emptyStats = (): EngineStats => ({
  settlements: 0,
  reversals: 0,
  deaths: 0,
  duplicates: 0,
  tooLate: 0,
});

/** Adds `more` into `into` and returns it. */
export function addStats(into: EngineStats, more: Partial<EngineStats>): EngineStats {
  for (const k of Object.keys(into) as (keyof EngineStats)[]) into[k] += more[k] ?? 0;
  return into;
}

const DAY_MS = 86_400_000;
/** Eviction runs when event time has advanced this far since the last sweep. */
const SWEEP_EVERY_MS = 7 * DAY_MS;

export class Engine {
  private readonly persons: PersonStore;
  private readonly detectors: ActiveDetector[];
  private readonly retentionMs: number;
  private readonly latenessMs: number;
  /** Per detector, its horizon (see horizonMs) and the ctx it was worked out for (a config change swaps ctx). */
  private readonly horizons = new Map<ActiveDetector, { ctx: unknown; ms: number }>();
  /**
   * The facts dropped since the last sweep: those of detectors with facts and a horizon short of
   * the retention, from records past the longest of those horizons (one rewrite per record).
   */
  private drops: FactDrop | undefined;
  private readonly clock: () => Date;
  private watermarkMs = Number.NEGATIVE_INFINITY;
  private sweptAtMs = Number.NEGATIVE_INFINITY;
  private readonly dirty = new Map<string, unknown>();
  private readonly changelog: boolean;
  /** What a person tells of its changes (the changelog's dirty entries, the store's record); none: nothing is told. */
  private readonly onEntry: OnChange | undefined;
  private takenWatermarkMs = Number.NEGATIVE_INFINITY;
  /** detected_at of the event being processed, once read (see now()). */
  private nowIso: string | undefined;
  readonly stats: EngineStats = emptyStats();

  constructor(opts: EngineOptions) {
    this.detectors = opts.detectors;
    this.retentionMs = (opts.retentionDays ?? 400) * DAY_MS;
    this.latenessMs = opts.latenessDays === undefined ? this.retentionMs : opts.latenessDays * DAY_MS;
    this.clock = opts.clock ?? (() => new Date());
    this.changelog = opts.changelog ?? false;
    this.persons = opts.store?.((id) => this.newPerson(id)) ?? new MemoryPersonStore();
    const record = this.persons.record?.bind(this.persons);
    const dirty = this.dirty;
    const toChangelog: OnChange = (pid, e) => void dirty.set(stateKey(pid, e.kind, e.id), e.value);
    if (!this.changelog) this.onEntry = record;
    else if (!record) this.onEntry = toChangelog;
    else
      this.onEntry = (pid, e) => {
        toChangelog(pid, e);
        record(pid, e);
      };
  }

  get personCount(): number {
    return this.persons.size;
  }

  get watermark(): number {
    return this.watermarkMs;
  }

  process(event: EngineEvent): Change[] {
    const eventMs = Date.parse(
      event.kind === "settlement" ? event.value.settled_at : event.value.reported_at,
    );
    if (eventMs < this.watermarkMs - this.retentionMs) this.stats.tooLate++;
    if (eventMs > this.watermarkMs) this.watermarkMs = eventMs;
    const person = this.person(event.value.person_id);
    // A persistent store's sweep sees only persons past the retention: the others' facts go when an
    // event touches them, before it is judged, so that it reads what it would read in the heap's.
    person.dropFacts(this.drops);
    const changes =
      event.kind === "death"
        ? this.onDeath(person, event.value)
        : event.value.event_type === "REVERSAL"
          ? this.onReversal(person, event.value, eventMs)
          : this.onSettle(person, event.value, eventMs);
    this.persons.changed(person);
    if (this.watermarkMs - this.sweptAtMs >= SWEEP_EVERY_MS) this.sweep();
    return changes;
  }

  /**
   * How far behind the watermark a detector still keeps facts and re-evaluates: its reach plus the
   * lateness, at most the retention (all of it without a reach).
   */
  private horizonMs(a: ActiveDetector): number {
    const known = this.horizons.get(a);
    if (known?.ctx === a.ctx) return known.ms;
    const reach = a.detector.reachDays?.(a.ctx);
    const ms =
      reach === undefined ? this.retentionMs : Math.min(this.retentionMs, reach * DAY_MS + this.latenessMs);
    this.horizons.set(a, { ctx: a.ctx, ms });
    return ms;
  }

  /** Whether `s`'s findings from `a` are final: it settled beyond a's horizon, short of the retention. */
  private final(a: ActiveDetector, s: SettlementRecord): boolean {
    // No horizon falls short of the retention unless the lateness does (the default: none does).
    if (this.latenessMs >= this.retentionMs) return false;
    const h = this.horizonMs(a);
    return h < this.retentionMs && s.settledAtMs < this.watermarkMs - h;
  }

  /** State entries changed since the last call, keyed for a compacted changelog (null value: deleted). */
  takeDirty(): { key: string; value: unknown }[] {
    if (!this.changelog) throw new Error("takeDirty on an engine created without `changelog: true`");
    const out = [...this.dirty].map(([key, value]) => ({ key, value }));
    if (this.watermarkMs !== this.takenWatermarkMs) {
      out.push({ key: WATERMARK_KEY, value: this.watermarkMs });
      this.takenWatermarkMs = this.watermarkMs;
    }
    this.dirty.clear();
    return out;
  }

  /** The whole state as changelog entries: what a compacted changelog holds once every change is in it. */
  *stateEntries(): Iterable<{ key: string; value: unknown }> {
    for (const p of this.persons.values()) {
      const x = p.snapshot();
      const key = (kind: StateEntry["kind"], id: string) => stateKey(p.personId, kind, id);
      for (const s of x.s) yield { key: key("s", s.id), value: s };
      for (const [id, c] of x.c) yield { key: key("c", id), value: c };
      if (x.d) yield { key: key("d", ""), value: x.d };
      for (const [id, f] of x.f) yield { key: key("f", id), value: f };
    }
    yield { key: WATERMARK_KEY, value: this.watermarkMs };
  }

  /** Applies one changelog entry (as written by takeDirty) to rebuild state after a restart. */
  restoreEntry(key: string, value: unknown): void {
    if (key === WATERMARK_KEY) {
      this.restoreWatermark(value as number);
      return;
    }
    const [person, kind, id] = key.split(KEY_SEP) as [string, StateEntry["kind"], string];
    const p = this.person(unescapedPart(person));
    const entry = { kind, id: unescapedPart(id), value } as StateEntry;
    p.apply(entry);
    this.persons.record?.(p.personId, entry);
    this.persons.changed(p);
  }

  /** Carries on from a saved watermark (a store on disk keeps its persons, not the partition's event time). */
  restoreWatermark(ms: number): void {
    this.watermarkMs = Math.max(this.watermarkMs, ms);
    this.takenWatermarkMs = this.watermarkMs;
  }

  /**
   * What processing `proposed` would change, changing nothing: its person's state is copied into a
   * scratch engine at this one's watermark and the settlement processed there. A settlement of the
   * same id already held is first taken out with what it decided (a re-check answers what its arrival
   * brings, as if it had not come). `stateAsOfMs`: the newest evidence the answer saw.
   */
  whatIf(proposed: Settlement): { changes: Change[]; stateAsOfMs: number | null } {
    const scratch = new Engine({
      detectors: this.detectors,
      retentionDays: this.retentionMs / DAY_MS,
      latenessDays: this.latenessMs / DAY_MS,
      clock: this.clock,
    });
    scratch.watermarkMs = this.watermarkMs;
    // No sweep in the scratch engine: this one's state is already swept to its watermark. Nor facts
    // dropped: records are shared, and dropping changes no answer within the lateness.
    scratch.sweptAtMs = Number.POSITIVE_INFINITY;
    const held = this.persons.get(proposed.person_id)?.copy();
    if (held) {
      scratch.persons.add(held);
      const prior = held.get(proposed.settlement_id);
      if (prior) scratch.withdraw(held, prior);
    }
    const stateAsOfMs = held?.newestEvidenceMs() ?? null;
    return { changes: scratch.process({ kind: "settlement", value: proposed }), stateAsOfMs };
  }

  /** Takes a settlement out of the evidence with what it decided, as a reversal does, but cancelling nothing. */
  private withdraw(person: PersonState, record: SettlementRecord): Change[] {
    const affected = this.affectedBy(person, record);
    person.remove(record.id);
    person.setFindings(record.id, []);
    return this.reevaluate(person, affected);
  }

  /** Every active finding, for `detect` output and tests. */
  *activeSuspects(): Iterable<Suspect> {
    for (const p of this.persons.values()) for (const list of p.findings.values()) yield* list;
  }

  private person(personId: string): PersonState {
    let p = this.persons.get(personId);
    if (!p) {
      p = this.newPerson(personId);
      this.persons.add(p);
    }
    return p;
  }

  private newPerson(personId: string): PersonState {
    return new PersonState(personId, this.onEntry);
  }

  private onSettle(person: PersonState, s: Settlement, settledAtMs: number): Change[] {
    if (person.get(s.settlement_id) || person.isCancelled(s.settlement_id)) {
      this.stats.duplicates++;
      return [];
    }
    this.stats.settlements++;
    // Every detector's key, even when it kept nothing: all records' facts then share one shape, so the
    // detectors' reads of them stay monomorphic (undefined values are not written to the changelog).
    const facts: Record<string, unknown> = {};
    for (const { detector, ctx } of this.detectors) facts[detector.id] = detector.extract?.(s, ctx);
    const record = settlementRecord(s, settledAtMs, facts);
    person.add(record);
    // Evaluation changes findings only, never the evidence `affected` reads, so each detector's
    // subjects are found and judged in turn, without collecting pairs first.
    const changes: Change[] = [];
    this.nowIso = undefined;
    for (const a of this.detectors) {
      this.judge(person, a, record, changes);
      if (a.detector.affected)
        for (const s of a.detector.affected(record, person, a.ctx))
          if (!this.final(a, s)) this.judge(person, a, s, changes);
    }
    return changes;
  }

  private onReversal(person: PersonState, r: Settlement, atMs: number): Change[] {
    const original = r.original_settlement_id as string;
    if (person.isCancelled(original)) {
      this.stats.duplicates++;
      return [];
    }
    this.stats.reversals++;
    person.cancel(original, { reversalId: r.settlement_id, atMs });
    const record = person.get(original);
    // A reversal of a settlement not seen yet cancels it on arrival.
    if (!record) return [];
    const changes: Change[] = (person.findings.get(original) ?? []).map((suspect) => ({
      op: "retract",
      suspect,
      configHash: this.detectors.find((a) => a.detector.id === suspect.detector)?.configHash,
    }));
    return changes.concat(this.withdraw(person, record));
  }

  private onDeath(person: PersonState, d: DeathRecord): Change[] {
    if (person.death && !supersedes(d, person.death)) {
      this.stats.duplicates++;
      return [];
    }
    this.stats.deaths++;
    person.setDeath(d);
    const pairs: Pair[] = [];
    for (const a of this.detectors) {
      if (a.detector.usesDeath) for (const s of person.settlements) pairs.push([a, s]);
    }
    return this.reevaluate(person, pairs);
  }

  /** (detector, subject) pairs to re-evaluate when `record` leaves the evidence, found before it goes. */
  private affectedBy(person: PersonState, record: SettlementRecord): Pair[] {
    const pairs: Pair[] = [];
    for (const a of this.detectors) {
      if (a.detector.affected) for (const s of a.detector.affected(record, person, a.ctx)) pairs.push([a, s]);
    }
    return pairs;
  }

  private reevaluate(person: PersonState, pairs: Pair[]): Change[] {
    const changes: Change[] = [];
    this.nowIso = undefined;
    for (const [active, subject] of pairs)
      if (!this.final(active, subject)) this.judge(person, active, subject, changes);
    return changes;
  }

  /** Re-evaluates one detector on one subject, appending what changed to `changes`. */
  private judge(
    person: PersonState,
    active: ActiveDetector,
    subject: SettlementRecord,
    changes: Change[],
  ): void {
    const { detector, ctx } = active;
    if (person.get(subject.id) !== subject) return;
    const found = detector.evaluate(subject, person, ctx);
    const previous = person.findings.get(subject.id);
    // Most settlements: nothing found now, nothing before.
    if (previous === undefined && found.length === 0) return;
    const mine = previous === undefined ? [] : previous.filter((f) => f.detector === detector.id);
    const before = changes.length;
    const next: Suspect[] = [];
    for (const finding of found) {
      const rule = detector.rules[finding.rule];
      if (!rule) throw new Error(`detector ${detector.id} returned unknown rule ${finding.rule}`);
      // mine are this detector's findings on this subject, so the rule alone names one (and its id,
      // a hash of the three, need not be worked out again).
      const old = mine.find((f) => f.rule === finding.rule);
      const id = old?.suspect_id ?? suspectId(detector.id, finding.rule, subject.id);
      const { related } = finding;
      const evidence = boundEvidence(finding.evidence);
      const suspect: Suspect = {
        suspect_id: id,
        detector: detector.id,
        rule: finding.rule,
        severity: finding.severity ?? rule.severity,
        person_id: subject.personId,
        settlement_ids: [subject.id, ...related.slice(0, MAX_LISTED)],
        institution_id: subject.institutionId,
        region_code: subject.regionCode,
        amount_at_risk_fen: finding.amountAtRiskFen,
        event_time: subject.settledAt,
        detected_at: old?.detected_at ?? this.now(),
        detector_version: detector.version,
        evidence:
          related.length > MAX_LISTED ? { ...evidence, related_more: related.length - MAX_LISTED } : evidence,
      };
      if (old && sameFinding(old, suspect)) next.push(old);
      else {
        next.push(suspect);
        changes.push({ op: "upsert", suspect, configHash: active.configHash });
      }
    }
    for (const old of mine) {
      if (!next.some((n) => n.suspect_id === old.suspect_id))
        changes.push({ op: "retract", suspect: old, configHash: active.configHash });
    }
    // The same findings again (most re-evaluations): the state, and so its changelog, stays as it is.
    if (changes.length === before && next.length === mine.length) return;
    const kept = (previous ?? []).filter((f) => f.detector !== detector.id).concat(next);
    if (kept.length > 0 || previous !== undefined) person.setFindings(subject.id, kept);
  }

  /** The event's detection time: read from the clock once per event, and only when a finding is new. */
  private now(): string {
    this.nowIso ??= this.clock().toISOString();
    return this.nowIso;
  }

  private sweep(): void {
    const horizon = this.watermarkMs - this.retentionMs;
    const bounded = this.detectors.filter((a) => a.detector.extract && this.horizonMs(a) < this.retentionMs);
    this.drops =
      bounded.length === 0
        ? undefined
        : {
            detectors: bounded.map((a) => a.detector.id),
            beforeMs: this.watermarkMs - Math.max(...bounded.map((a) => this.horizonMs(a))),
          };
    for (const p of this.persons.expiring(horizon)) {
      p.dropFacts(this.drops);
      if (!p.evict(horizon)) this.persons.delete(p.personId);
      else this.persons.changed(p);
    }
    this.sweptAtMs = this.watermarkMs;
  }
}

type Pair = [ActiveDetector, SettlementRecord];

/**
 * The person a state entry (a takeDirty key) belongs to, as its key spells it (escaped: a token for
 * grouping); "" for the partition's own, the watermark.
 */
export function personOfStateKey(key: string): string {
  return key.slice(0, Math.max(0, key.indexOf(KEY_SEP)));
}

const KEY_SEP = "\u0001";
/** Escapes KEY_SEP and itself in ids, which input bounds only in length, so that every key splits in three. */
const KEY_ESC = "\u0002";
const escapedPart = (s: string) =>
  s.includes(KEY_SEP) || s.includes(KEY_ESC)
    ? s.replaceAll(KEY_ESC, `${KEY_ESC}${KEY_ESC}`).replaceAll(KEY_SEP, `${KEY_ESC}\u0003`)
    : s;
function unescapedPart(s: string): string {
  if (!s.includes(KEY_ESC)) return s;
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (c !== KEY_ESC || i + 1 === s.length) out += c;
    else out += s[++i] === "\u0003" ? KEY_SEP : s[i];
  }
  return out;
}
/** A state entry's changelog key (see personOfStateKey); the same as before escaping for ids without \u0001 or \u0002. */
const stateKey = (personId: string, kind: StateEntry["kind"], id: string) =>
  `${escapedPart(personId)}${KEY_SEP}${kind}${KEY_SEP}${escapedPart(id)}`;

/** What the engine retains of a settlement: its fields the detectors read, and their facts. */
export function settlementRecord(
  s: Settlement,
  settledAtMs: number,
  facts: Record<string, unknown>,
): SettlementRecord {
  return {
    id: s.settlement_id,
    personId: s.person_id,
    gender: s.gender,
    birthDate: s.birth_date,
    visitType: s.visit_type,
    institutionId: s.institution_id,
    institutionName: s.institution_name,
    regionCode: s.region_code,
    admission: s.admission_date,
    discharge: s.discharge_date,
    dischargeReason: s.discharge_reason,
    settledAt: s.settled_at,
    settledAtMs,
    totalFen: s.total_fen,
    fundPaidFen: s.fund_paid_fen,
    facts,
  };
}
/** The partition's newest event time, kept with the state so retention survives restarts. */
const WATERMARK_KEY = `${KEY_SEP}watermark`;

/** A later report replaces an earlier one; ties are broken by content so every order agrees. */
function supersedes(next: DeathRecord, current: DeathRecord): boolean {
  const a = Date.parse(next.reported_at);
  const b = Date.parse(current.reported_at);
  if (a !== b) return a > b;
  return JSON.stringify(next) > JSON.stringify(current);
}

function sameFinding(a: Suspect, b: Suspect): boolean {
  return (
    a.severity === b.severity &&
    a.amount_at_risk_fen === b.amount_at_risk_fen &&
    a.detector_version === b.detector_version &&
    sameJson(a.settlement_ids, b.settlement_ids) &&
    sameJson(a.evidence, b.evidence)
  );
}

/**
 * Whether two JSON values read the same once written (an undefined member is no member), without
 * writing them: a re-evaluation compares every affected finding, most of them unchanged.
 */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let members = 0;
  for (const k in x) {
    if (x[k] === undefined) continue;
    members++;
    if (!sameJson(x[k], y[k])) return false;
  }
  for (const k in y) if (y[k] !== undefined) members--;
  return members === 0;
}
