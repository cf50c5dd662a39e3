import type { PersonView, SettlementRecord } from "../../detectors/sdk.ts";
import type { DeathRecord, Suspect } from "../../schemas/index.ts";

export interface Cancellation {
  reversalId: string;
  atMs: number;
}

/** Serializable form of one person's state: the unit of the changelog and of snapshots. */
export interface PersonSnapshot {
  personId: string;
  watermarkMs: number;
  settlements: SettlementRecord[];
  cancelled: [string, Cancellation][];
  death: DeathRecord | null;
  findings: Suspect[];
}

/** One person's retained evidence and the findings currently active for it. */
export class PersonState implements PersonView {
  readonly settlements: SettlementRecord[] = [];
  private readonly byId = new Map<string, SettlementRecord>();
  /** original settlement id → the reversal that cancels it (it may not have arrived yet). */
  readonly cancelled = new Map<string, Cancellation>();
  death: DeathRecord | undefined;
  /** suspect settlement id → its active findings. */
  readonly findings = new Map<string, Suspect[]>();

  constructor(readonly personId: string) {}

  get(id: string): SettlementRecord | undefined {
    return this.byId.get(id);
  }

  add(s: SettlementRecord): void {
    this.byId.set(s.id, s);
    this.settlements.push(s);
  }

  remove(id: string): void {
    if (!this.byId.delete(id)) return;
    const i = this.settlements.findIndex((s) => s.id === id);
    this.settlements.splice(i, 1);
  }

  /** Drops evidence older than the horizon; returns whether anything is left. */
  evict(horizonMs: number): boolean {
    for (const s of this.settlements.filter((x) => x.settledAtMs < horizonMs)) {
      this.remove(s.id);
      this.findings.delete(s.id);
    }
    for (const [id, c] of this.cancelled)
      if (c.atMs < horizonMs && !this.byId.has(id)) this.cancelled.delete(id);
    return this.settlements.length > 0 || this.cancelled.size > 0 || this.death !== undefined;
  }

  snapshot(watermarkMs: number): PersonSnapshot {
    return {
      personId: this.personId,
      watermarkMs,
      settlements: this.settlements,
      cancelled: [...this.cancelled],
      death: this.death ?? null,
      findings: [...this.findings.values()].flat(),
    };
  }

  static restore(snap: PersonSnapshot): PersonState {
    const p = new PersonState(snap.personId);
    for (const s of snap.settlements) p.add(s);
    for (const [id, c] of snap.cancelled) p.cancelled.set(id, c);
    p.death = snap.death ?? undefined;
    for (const f of snap.findings) {
      const subject = f.settlement_ids[0] as string;
      p.findings.set(subject, [...(p.findings.get(subject) ?? []), f]);
    }
    return p;
  }
}
