// The part of a run common to every source: engines, suspect writes with row versions,
// checkpoints, resume (restore + repair), rate limit and final counts.
import { type ActiveDetector, type Change, Engine, type EngineEvent } from "../engine/engine.ts";
import type { Logger } from "../log.ts";
import { repairsAfter, writtenAfter } from "../pipeline/repair.ts";
import { VersionClock } from "../pipeline/version-clock.ts";
import type { Store } from "../store/index.ts";
import type { Checkpoint, CommitRecord, DirtyEntry, LoadedCheckpoint } from "./checkpoint.ts";

export interface SessionOptions {
  name: string;
  store: Store;
  detectors: ActiveDetector[];
  retentionDays: number;
  checkpoint: Checkpoint;
  /** Flush suspects and commit a checkpoint at least this often. */
  checkpointIntervalMs: number;
  /** ... or when this many suspect changes are pending. */
  maxPendingChanges?: number;
  /** ... or after this many events, which bounds the state written (and the memory used) per checkpoint. */
  maxEventsPerCheckpoint?: number;
  log: Logger;
  /** After each checkpoint (e.g. to update the runs row). */
  onCheckpoint?: () => Promise<void>;
}

export class RunSession {
  readonly engines = new Map<number, Engine>();
  events = 0;
  badEvents = 0;
  changes = 0;
  checkpoints = 0;
  private pending: Change[] = [];
  private versions: number[] = [];
  private clock = new VersionClock();
  private lastCheckpoint = Date.now();
  private readonly maxPending: number;
  private readonly maxEvents: number;
  private eventsAtCheckpoint = 0;

  constructor(private readonly o: SessionOptions) {
    this.maxPending = o.maxPendingChanges ?? 50_000;
    this.maxEvents = o.maxEventsPerCheckpoint ?? 100_000;
  }

  engine(key: number): Engine {
    let e = this.engines.get(key);
    if (!e) {
      e = new Engine({ detectors: this.o.detectors, retentionDays: this.o.retentionDays, changelog: true });
      this.engines.set(key, e);
    }
    return e;
  }

  process(key: number, event: EngineEvent): void {
    for (const c of this.engine(key).process(event)) {
      this.pending.push(c);
      this.versions.push(this.clock.next());
    }
    this.events++;
  }

  bad(): void {
    this.badEvents++;
  }

  get due(): boolean {
    return (
      Date.now() - this.lastCheckpoint >= this.o.checkpointIntervalMs ||
      this.pending.length >= this.maxPending ||
      this.events - this.eventsAtCheckpoint >= this.maxEvents
    );
  }

  private async flushChanges(): Promise<void> {
    if (this.pending.length === 0) return;
    const versions = this.versions;
    await this.o.store.writeChanges(this.pending, {
      runId: this.o.name,
      versionOf: (_c, i) => versions[i] as number,
    });
    this.changes += this.pending.length;
    this.pending = [];
    this.versions = [];
  }

  /** Writes pending suspects, then commits the engine state and `position` (in that order). */
  async checkpoint(position: unknown): Promise<void> {
    const t0 = performance.now();
    const changes = this.pending.length;
    await this.flushChanges();
    const t1 = performance.now();
    const dirty: DirtyEntry[] = [];
    for (const [engine, e] of this.engines) {
      for (const d of e.takeDirty()) dirty.push({ engine, key: d.key, value: d.value });
    }
    const record: CommitRecord = {
      position,
      events: this.events,
      badEvents: this.badEvents,
      stats: Object.fromEntries([...this.engines].map(([k, e]) => [String(k), { ...e.stats }])),
      maxVersion: this.clock.current,
      at: new Date().toISOString(),
    };
    await this.o.checkpoint.commit(dirty, record);
    const t2 = performance.now();
    this.checkpoints++;
    this.lastCheckpoint = Date.now();
    this.eventsAtCheckpoint = this.events;
    await this.o.onCheckpoint?.();
    this.o.log.debug(
      {
        events: this.events,
        changes,
        entries: dirty.length,
        write_ms: Math.round(t1 - t0),
        commit_ms: Math.round(t2 - t1),
        row_ms: Math.round(performance.now() - t2),
        log_bytes: this.o.checkpoint.logBytes,
      },
      "checkpoint",
    );
  }

  /**
   * Restores the committed state, then repairs the store: suspect rows written after the
   * checkpoint (by the interrupted process) are rewritten to the checkpoint's state, with
   * versions above theirs. From there the store and the engines agree again, so continuing
   * gives the same final suspects as an uninterrupted run, whatever order the source replays in.
   * Returns the number of suspects repaired.
   */
  async restore(loaded: LoadedCheckpoint<unknown>): Promise<number> {
    for (const [engine, entries] of loaded.states) {
      const e = this.engine(engine);
      for (const [key, value] of entries) e.restoreEntry(key, value);
      e.takeDirty(); // restored state is already in the checkpoint
    }
    const commit = loaded.commit;
    if (commit) {
      this.events = commit.events;
      this.eventsAtCheckpoint = commit.events;
      this.badEvents = commit.badEvents;
      for (const [key, stats] of Object.entries(commit.stats))
        Object.assign(this.engine(Number(key)).stats, stats);
    }
    const after = commit?.maxVersion ?? 0;
    const [top] = await this.o.store.query<{ v: string }>(
      "SELECT toString(max(version)) AS v FROM suspects WHERE run_id = {run:String}",
      { run: this.o.name },
    );
    this.clock = new VersionClock(Math.max(after, Number(top?.v ?? 0)));

    const repairs = await repairsAfter(writtenAfter(this.o.store, { runId: this.o.name, after }), {
      active: async () => [...this.engines.values()].flatMap((e) => [...e.activeSuspects()]),
      floor: () => after,
      detectors: this.o.detectors,
      observe: (v) => this.clock.observe(v),
    });
    for (const { change } of repairs) {
      this.pending.push(change);
      this.versions.push(this.clock.next());
    }
    await this.flushChanges();
    this.changes = 0;
    return repairs.length;
  }

  /** Active suspects now, per detector. */
  suspectCounts(): { total: number; byDetector: Record<string, number> } {
    const byDetector: Record<string, number> = {};
    let total = 0;
    for (const e of this.engines.values()) {
      for (const s of e.activeSuspects()) {
        byDetector[s.detector] = (byDetector[s.detector] ?? 0) + 1;
        total++;
      }
    }
    return { total, byDetector };
  }
}

/** Limits events per second; `wait()` is cheap when no pause is needed. */
export class RateLimiter {
  private readonly start = performance.now();
  private n = 0;
  constructor(private readonly rate: number | undefined) {}
  /** Milliseconds to pause before the next event (0: go on). */
  delay(): number {
    if (!this.rate) return 0;
    this.n++;
    const ahead = (this.n / this.rate) * 1000 - (performance.now() - this.start);
    return ahead >= 20 ? ahead : 0;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
