// The part of a run common to every source: its engines (one per source partition, on lanes as a
// worker's are: pipeline/lanes.ts), suspect writes with row versions, checkpoints, resume
// (restore + repair), rate limit and final counts. Events go to the lanes in batches; a checkpoint
// waits for every batch sent, so what it commits is exactly the events taken before it.
import type { Limits } from "../../schemas/limits.ts";
import {
  type ActiveDetector,
  addStats,
  type Change,
  type EngineEvent,
  type EngineStats,
  emptyStats,
} from "../engine/engine.ts";
import type { OutageListener } from "../health.ts";
import type { InputKind } from "../kafka/serde.ts";
import type { Logger } from "../log.ts";
import type { AvroSetup, DetectorSetup, LaneSetup } from "../pipeline/lane-protocol.ts";
import { type Lane, openLanes } from "../pipeline/lanes.ts";
import { repairsAfter, writtenAfter } from "../pipeline/repair.ts";
import { VersionClock } from "../pipeline/version-clock.ts";
import type { Store } from "../store/index.ts";
import { packEntries } from "../worker/changelog.ts";
import type { Checkpoint, CommitRecord, DirtyEntry, LoadedCheckpoint } from "./checkpoint.ts";

export interface SessionOptions {
  name: string;
  store: Store;
  /** The run's detectors with their configs (the lanes run the same: `setup`). */
  detectors: ActiveDetector[];
  setup: DetectorSetup;
  retentionDays: number;
  latenessDays?: number;
  checkpoint: Checkpoint;
  /** Flush suspects and commit a checkpoint at least this often. */
  checkpointIntervalMs: number;
  /** ... or when this many suspect changes are pending. */
  maxPendingChanges?: number;
  /** ... or after this many events, which bounds the state written (and the memory used) per checkpoint. */
  maxEventsPerCheckpoint?: number;
  /** Lanes in worker threads (FUNDGUARD_LANES); 0 or absent: one on this thread. */
  lanes?: number;
  /** For Kafka values (a topic run): the registry the lanes decode with, and who hears of its outages. */
  avro?: AvroSetup;
  outages?: OutageListener;
  /** The limits events are validated under (the lanes check them again). */
  limits?: Limits;
  log: Logger;
  /** After each checkpoint (e.g. to update the runs row). */
  onCheckpoint?: () => Promise<void>;
}

/** Where a topic run's record came from, for the log line of one its lane refuses. */
export interface RecordPlace {
  topic: string;
  offset: string;
}

/** Events taken for one partition and not yet sent: decoded ones (a file run) or Kafka values of one kind. */
interface Filling {
  events: EngineEvent[];
  values: (Buffer | null)[];
  valueKind: InputKind | undefined;
  places: RecordPlace[];
}

/** Events sent to a lane at a time. */
const BATCH_EVENTS = 2_000;

export class RunSession {
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
  private readonly lanes: Lane[];
  /** Source partitions whose engines are open, with the counts they had before this process. */
  private readonly opened = new Map<number, EngineStats>();
  private readonly filling = new Map<number, Filling>();
  private readonly unanswered = new Set<Promise<void>>();
  /** A lane's failure (or a stop that ended its registry wait): no checkpoint is committed after it. */
  private failure: unknown;

  constructor(private readonly o: SessionOptions) {
    this.maxPending = o.maxPendingChanges ?? 50_000;
    this.maxEvents = o.maxEventsPerCheckpoint ?? 100_000;
    const setup: LaneSetup = {
      detectors: o.setup,
      retentionDays: o.retentionDays,
      latenessDays: o.latenessDays,
      changelog: true,
      changes: true,
      ...(o.avro ? { avro: o.avro } : {}),
      ...(o.limits ? { limits: o.limits } : {}),
    };
    this.lanes = openLanes(o.lanes ?? 0, setup, o.outages);
  }

  private laneOf(key: number): Lane {
    const lane = this.lanes[key % this.lanes.length] as Lane;
    if (!this.opened.has(key)) {
      this.opened.set(key, emptyStats());
      // Requests run in order on a lane: batches sent after this reach the opened engine.
      lane.open([key]).catch((e: unknown) => {
        this.failure ??= e;
      });
    }
    return lane;
  }

  private fillingOf(key: number): Filling {
    let f = this.filling.get(key);
    if (!f) {
      f = { events: [], values: [], valueKind: undefined, places: [] };
      this.filling.set(key, f);
    }
    return f;
  }

  /** A valid event for the engine of `key`. */
  event(key: number, event: EngineEvent): void {
    const f = this.fillingOf(key);
    f.events.push(event);
    this.taken(key, f.events.length);
  }

  /** A Kafka value for the engine of `key`: its lane decodes and validates it. */
  value(key: number, kind: InputKind, value: Buffer | null, place: RecordPlace): void {
    const f = this.fillingOf(key);
    if (f.valueKind !== kind && f.values.length > 0) this.send(key);
    f.valueKind = kind;
    f.values.push(value);
    f.places.push(place);
    this.taken(key, f.values.length);
  }

  private taken(key: number, filled: number): void {
    this.events++;
    if (filled >= BATCH_EVENTS) this.send(key);
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

  /** The events taken for `key` to its lane; their changes are pending once it answers. */
  private send(key: number): void {
    const f = this.filling.get(key);
    if (!f || (f.events.length === 0 && f.values.length === 0)) return;
    this.filling.delete(key);
    const lane = this.laneOf(key);
    const sent =
      f.events.length > 0 ? lane.events(key, f.events) : lane.batch(key, f.valueKind as InputKind, f.values);
    const answered = sent.then(
      (r) => {
        for (const c of r.changes) {
          this.pending.push(c);
          this.versions.push(this.clock.next());
        }
        for (const b of r.bad) {
          // Only a Kafka value can be bad: events come validated.
          this.bad();
          this.events--;
          const place = f.places[b.index];
          this.o.log.warn({ ...place, partition: key, reason: b.reason }, "invalid record skipped");
        }
      },
      (e: unknown) => {
        this.failure ??= e;
      },
    );
    this.unanswered.add(answered);
    void answered.finally(() => this.unanswered.delete(answered));
  }

  /** Every taken event through its engine, and a lane failure thrown. */
  private async settle(): Promise<void> {
    for (const key of [...this.filling.keys()]) this.send(key);
    await Promise.all(this.unanswered);
    if (this.failure) throw this.failure;
  }

  /** Lets the lanes get on: resolves once each has room for more batches. */
  async room(): Promise<void> {
    await Promise.all(this.lanes.map((l) => l.room()));
    if (this.failure) throw this.failure;
  }

  /** Ends the lanes' registry waits (a stop): their batches fail, and no checkpoint follows. */
  abort(): void {
    for (const lane of this.lanes) lane.abort();
  }

  private async flushChanges(): Promise<void> {
    await this.settle();
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
    await this.settle();
    const changes = this.pending.length;
    await this.flushChanges();
    const t1 = performance.now();
    const dirty: DirtyEntry[] = [];
    const stats: Record<string, EngineStats> = {};
    for (const lane of this.lanes) {
      for (const d of (await lane.dirty()).dirty) {
        for (const { key, value } of d.entries) dirty.push({ engine: d.partition, key, value });
        stats[String(d.partition)] = addStats(
          addStats(emptyStats(), this.opened.get(d.partition) ?? {}),
          d.stats,
        );
      }
    }
    const record: CommitRecord = {
      position,
      events: this.events,
      badEvents: this.badEvents,
      stats,
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
    const commit = loaded.commit;
    for (const [engine, entries] of loaded.states) {
      const packed = packEntries(
        [...entries].map(([key, value]) => ({
          key: Buffer.from(key),
          value: value === null ? null : Buffer.from(JSON.stringify(value)),
        })),
      );
      await this.laneOf(engine).restore(engine, packed);
    }
    if (commit) {
      this.events = commit.events;
      this.eventsAtCheckpoint = commit.events;
      this.badEvents = commit.badEvents;
      for (const [key, stats] of Object.entries(commit.stats)) {
        this.laneOf(Number(key));
        this.opened.set(Number(key), addStats(emptyStats(), stats));
      }
    }
    // Restored state is already in the checkpoint: the next one writes only what changes after it.
    await Promise.all(this.lanes.map((l) => l.dirty()));
    const after = commit?.maxVersion ?? 0;
    const [top] = await this.o.store.query<{ v: string }>(
      "SELECT toString(max(version)) AS v FROM suspects WHERE run_id = {run:String}",
      { run: this.o.name },
    );
    this.clock = new VersionClock(Math.max(after, Number(top?.v ?? 0)));

    const repairs = await repairsAfter(writtenAfter(this.o.store, { runId: this.o.name, after }), {
      active: () => this.active(),
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

  private async active() {
    const results = await Promise.all(
      this.lanes.map((lane, i) =>
        lane.active([...this.opened.keys()].filter((k) => k % this.lanes.length === i)),
      ),
    );
    return results.flatMap((r) => r.suspects);
  }

  /** Active suspects now, per detector (after every event taken). */
  async suspectCounts(): Promise<{ total: number; byDetector: Record<string, number> }> {
    await this.settle();
    const byDetector: Record<string, number> = {};
    let total = 0;
    for (const s of await this.active()) {
      byDetector[s.detector] = (byDetector[s.detector] ?? 0) + 1;
      total++;
    }
    return { total, byDetector };
  }

  /** Closes the lanes (their threads): the last call. */
  async close(): Promise<void> {
    await Promise.all(this.lanes.map((l) => l.close()));
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
