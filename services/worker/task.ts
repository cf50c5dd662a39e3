// A worker's stream task: its partitions' engines on the lanes, the outbox of what their batches
// produced (suspect changes with row versions, the archive, dead letters, offsets), restores on
// assignment, and the flushes that write it all in commit order (store → changelog → offsets).
// Batches, restores and flushes never interleave: all three touch the outbox and the offsets.
import type { Limits } from "../../schemas/index.ts";
import type { ConfigRecord } from "../dynamic-config/topic.ts";
import type { ActiveDetector, EngineEvent } from "../engine/engine.ts";
import type { Health } from "../health.ts";
import { deadLetterMessage } from "../kafka/deadletter.ts";
import type { OutMessage } from "../kafka/produce.ts";
import type { AvroSerde, InputKind } from "../kafka/serde.ts";
import type { Topics } from "../kafka/topics.ts";
import {
  type FetchedBatch,
  type GroupConsumer,
  type KafkaTransport,
  type TP,
  type TransportAdmin,
  type TransportProducer,
  tpKey,
} from "../kafka/transport.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { BatchResult, LaneSetup, LocalCheckpoint, LocalState } from "../pipeline/lane-protocol.ts";
import { type Lane, leastLoaded, openLanes } from "../pipeline/lanes.ts";
import { VersionClock } from "../pipeline/version-clock.ts";
import { awaitTicking, DEFAULT_BACKOFF } from "../retry.ts";
import type { RawArchiveRecord } from "../store/index.ts";
import { markerMessage, stateMessages } from "./changelog.ts";
import { FlushStages, type LocalCommit, type PartitionedChange, type TaskOutput } from "./flush.ts";
import { type RestoreContext, repairsFor, restoreState } from "./restore.ts";

export interface WorkerStats {
  events: number;
  deadLetters: number;
  changes: number;
  restoredPersons: number;
  flushes: number;
  /** Detector config records applied (a changed effective config). */
  configChanges: number;
}

export const emptyWorkerStats = (): WorkerStats => ({
  events: 0,
  deadLetters: 0,
  changes: 0,
  restoredPersons: 0,
  flushes: 0,
  configChanges: 0,
});

export interface TaskOptions {
  transport: KafkaTransport;
  admin: TransportAdmin;
  producer: TransportProducer;
  consumer: GroupConsumer;
  topics: Topics;
  changelogTopic: string;
  /** The input topics' partition count. */
  partitions: number;
  output: TaskOutput;
  registryUrl: string;
  /** Registered: the suspect schema's id and the archive's fallback decoding. */
  serde: AvroSerde;
  health: Health;
  log: Logger;
  metrics?: Metrics;
  /**
   * This process's copy of the detectors (configs applied): the lanes' engines start from their
   * configs, and repairs take their config hashes.
   */
  active: ActiveDetector[];
  /** The catalog folder the lanes load. */
  reference?: string;
  /** Lanes to open (see laneCount); 0 runs the engines on the main thread. */
  lanes: number;
  limits?: Limits;
  schemaWaitMs?: number;
  retentionDays: number;
  latenessDays?: number | undefined;
  state?: LocalState;
  /** A local store resumes from a changelog checkpoint at most this old (the changelog's delete.retention.ms). */
  resumeWithinMs: number;
  deadLetterBytes: number;
  commitIntervalMs: number;
  stats: WorkerStats;
  onStats?: (s: WorkerStats) => void;
}

export class WorkerTask {
  readonly stats: WorkerStats;
  readonly lanes: Lane[];
  /** What stopped the task with an error, if anything did. */
  failure: unknown;
  /** Ends every wait for a dependency: a stop request does not wait out an outage. */
  private readonly stopping = new AbortController();
  readonly done: Promise<void>;
  private resolveDone: () => void = () => undefined;
  /** The lane holding each restored partition's engine. */
  private readonly laneOf = new Map<number, Lane>();
  /** Bumped when a partition's engine is replaced: a batch result of an older engine is stale. */
  private readonly generation = new Map<number, number>();
  /** Batches sent to lanes whose results are not accounted yet. */
  private readonly unaccounted = new Set<Promise<void>>();
  private readonly personsOf = new Map<Lane, number>();
  private assigned = new Set<number>();
  private readonly clock = new VersionClock();
  /** Per partition, the suspects-topic offset after what this process knows it wrote there. */
  private readonly suspectsEnd = new Map<number, string>();
  private changes: PartitionedChange[] = [];
  private archive: RawArchiveRecord[] = [];
  private deadbox: OutMessage[] = [];
  private readonly pendingOffsets = new Map<string, TP & { offset: bigint }>();
  private lastFlush = Date.now();
  private lock: Promise<unknown> = Promise.resolve();
  private readonly flushes: FlushStages;
  private readonly restoring: RestoreContext;

  constructor(private readonly o: TaskOptions) {
    this.stats = o.stats;
    const setup: LaneSetup = {
      avro: {
        registryUrl: o.registryUrl,
        topics: { settlements: o.topics.settlements, deaths: o.topics.deaths, suspects: o.topics.suspects },
        schemaWaitMs: o.schemaWaitMs,
        backoff: DEFAULT_BACKOFF,
      },
      limits: o.limits,
      detectors: {
        reference: o.reference,
        configs: Object.fromEntries(o.active.map((a) => [a.detector.id, a.ctx.config])),
      },
      retentionDays: o.retentionDays,
      latenessDays: o.latenessDays,
      changelog: true,
      changes: true,
      state: o.state,
    };
    this.lanes = openLanes(o.lanes, setup, o.health);
    o.log.info({ lanes: this.lanes.length, threads: o.lanes > 0 }, "lanes started");
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    this.flushes = new FlushStages({
      ...o,
      suspectSchemaId: () => o.serde.suspectSchemaId,
      owns: (p) => this.assigned.has(p),
      onSuspectsWritten: (p, end) => this.suspectsEnd.set(p, String(end)),
      onStateWritten: (commits) => {
        const atMs = Date.now();
        for (const { partition, seq, end, marker } of commits)
          this.laneOf.get(partition)?.checkpointed(partition, { seq, end: String(end), marker, atMs });
      },
      onFlushed: () => {
        this.stats.flushes++;
        o.onStats?.(this.stats);
      },
      onFailure: (e, stopped) => {
        this.failure ??= e;
        if (stopped) o.log.warn("stopped while a flush waited; a restart resumes from the last flush");
        else o.log.error({ err: e }, "flush failed: stopping; a restart resumes from the last flush");
        this.finish();
      },
    });
    this.restoring = {
      ...o,
      detectors: o.active,
      suspectsTopic: o.topics.suspects,
      clock: this.clock,
      signal: this.stopping.signal,
    };
  }

  /** Stops the task: waits for dependencies end, lanes abort, `done` resolves. */
  finish(): void {
    this.stopping.abort(
      new Error("worker stopped while waiting for a dependency; a restart resumes from the last flush"),
    );
    for (const lane of this.lanes) lane.abort();
    this.resolveDone();
  }

  /** Stops the task on an error; a restart resumes from the last flush. */
  fail(e: unknown, what: string): void {
    this.failure ??= e;
    this.o.log.error({ err: e }, `${what} failed: stopping; a restart resumes from the last flush`);
    this.finish();
  }

  locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  /** A config record the worker applied: after the batches already sent, so every lane switches between the same batches. */
  config(r: ConfigRecord): void {
    for (const lane of this.lanes) lane.config(r);
  }

  assign(all: TP[]): void {
    const next = new Set(all.map((t) => t.partition));
    // Partitions kept across a rebalance were not consumed by anyone else meanwhile; the rest must be restored.
    // For a lost partition, unflushed state and offsets are dropped together: its new owner resumes from
    // the last flush, where state and offsets agree, and re-derives the same findings.
    for (const [p, lane] of this.laneOf) {
      if (next.has(p)) continue;
      this.laneOf.delete(p);
      lane.drop([p]);
    }
    for (const [k, v] of this.pendingOffsets) if (!next.has(v.partition)) this.pendingOffsets.delete(k);
    this.assigned = next;
    this.o.log.info({ partitions: [...next].sort((a, b) => a - b) }, "assigned");
    // Restore now rather than on the first batch, so a partition is ready before its data arrives.
    // Not awaited: a batch under way may hold the lock, and it restores what it needs itself.
    this.locked(() => this.restoreMissing()).catch((e) =>
      this.o.log.error({ err: e }, "state restore failed"),
    );
  }

  private async restoreMissing(): Promise<void> {
    const missing = [...this.assigned].filter((p) => !this.laneOf.has(p));
    if (missing.length === 0) return;
    // What this process still writes for them must be in the log and the store before both are read.
    await this.flushes.settled();
    const fresh = new Map<number, Lane>();
    for (const p of missing) {
      fresh.set(p, leastLoaded(this.lanes));
      this.generation.set(p, (this.generation.get(p) ?? 0) + 1);
    }
    try {
      const resumed = new Map<number, LocalCheckpoint>();
      await Promise.all(
        [...fresh].map(async ([p, lane]) => {
          const [at] = await lane.open([p], { from: "changelog", withinMs: this.o.resumeWithinMs });
          if (at) resumed.set(p, at as LocalCheckpoint);
        }),
      );
      const t0 = Date.now();
      const { markers, records } = await restoreState(this.restoring, fresh, resumed);
      // A store the changelog does not end with (it committed, then the process died before the log
      // had that commit) holds state no log has: that partition is reopened empty and read whole.
      const ahead = [...resumed].filter(([p, at]) => markers.get(p)?.commit !== at.stored).map(([p]) => p);
      let reread = 0;
      if (ahead.length > 0) {
        await Promise.all(ahead.map((p) => (fresh.get(p) as Lane).open([p])));
        const again = await restoreState(
          this.restoring,
          new Map(ahead.map((p) => [p, fresh.get(p) as Lane])),
          new Map(),
        );
        for (const [p, m] of again.markers) markers.set(p, m);
        for (const p of ahead) resumed.delete(p);
        reread = again.records;
      }
      for (const [p, m] of markers) if (m.suspects) this.suspectsEnd.set(p, m.suspects);
      this.stats.restoredPersons += records + reread;
      this.o.log.info(
        {
          partitions: missing,
          resumed: [...resumed.keys()],
          ahead,
          records: records + reread,
          ms: Date.now() - t0,
        },
        "state restored from changelog",
      );
      for (const { change, partition } of await repairsFor(this.restoring, fresh, markers))
        this.changes.push({ ...change, version: this.clock.next(), partition });
    } catch (e) {
      for (const [p, lane] of fresh) lane.drop([p]);
      throw e;
    }
    for (const [p, lane] of fresh) {
      // Revoked while restoring: the new owner restores it.
      if (this.assigned.has(p)) this.laneOf.set(p, lane);
      else lane.drop([p]);
    }
  }

  /**
   * Takes what the batches so far produced and starts its flush (flush.ts); returns once the
   * previous flush is through, heartbeating meanwhile when a batch waits behind it.
   */
  async flush(heartbeat?: () => Promise<void>): Promise<void> {
    const tick = <T>(p: Promise<T>) => (heartbeat ? awaitTicking(p, heartbeat) : p);
    // Every batch sent so far accounted, then each lane's state after exactly those batches (the
    // lock keeps new ones from being sent meanwhile).
    await tick(Promise.all(this.unaccounted));
    const results = await tick(Promise.all(this.lanes.map((l) => l.state())));
    const state: OutMessage[] = [];
    const seqs = new Map<number, { seq: number; id: string }>();
    results.forEach((r, i) => {
      this.personsOf.set(this.lanes[i] as Lane, r.persons);
      for (const st of r.states) if (this.laneOf.has(st.partition)) state.push(...stateMessages(st));
      for (const c of r.commits) seqs.set(c.partition, c);
    });
    // After every group (see MARKER_KEY): the versions this flush's state accounts for.
    const localCommits: LocalCommit[] = [];
    for (const p of this.laneOf.keys()) {
      const local = seqs.get(p);
      const marker = { version: this.clock.current, suspects: this.suspectsEnd.get(p), commit: local?.id };
      state.push(markerMessage(p, marker));
      if (local) localCommits.push({ partition: p, seq: local.seq, marker });
    }
    const contents = {
      changes: this.changes,
      archive: this.archive,
      letters: this.deadbox,
      state,
      offsets: [...this.pendingOffsets.values()],
      localCommits,
    };
    this.changes = [];
    this.archive = [];
    this.deadbox = [];
    this.pendingOffsets.clear();
    this.lastFlush = Date.now();
    await tick(this.flushes.start(contents, this.stopping.signal));
  }

  /**
   * Flushes an idle worker's tail (never behind another flush: only a batch can heartbeat), and
   * finishes once nothing read is unwritten and `caughtUp` says so. Ends with the task.
   */
  watch(caughtUp?: () => Promise<boolean>): void {
    let polling = false;
    const poll = setInterval(async () => {
      if (polling) return;
      polling = true;
      try {
        await this.locked(async () => {
          if (this.flushes.queued === 0 && this.hasPending() && this.flushDue()) await this.flush();
        });
        if (caughtUp && this.flushes.queued === 0 && !this.hasPending() && (await caughtUp())) this.finish();
      } catch (e) {
        this.o.log.warn({ err: e }, "flush or progress check failed");
      } finally {
        polling = false;
      }
    }, 250);
    void this.done.then(() => clearInterval(poll));
  }

  /** The last flush, once everything before it is written (on a stop without failure). */
  async drain(): Promise<void> {
    await this.locked(() => this.flush());
    await this.flushes.settled();
  }

  close(): Promise<void> {
    return Promise.all(this.lanes.map((l) => l.close())).then(() => undefined);
  }

  private flushDue(): boolean {
    return Date.now() - this.lastFlush >= this.o.commitIntervalMs;
  }

  private hasPending(): boolean {
    return (
      this.changes.length > 0 ||
      this.deadbox.length > 0 ||
      this.pendingOffsets.size > 0 ||
      this.unaccounted.size > 0
    );
  }

  batch(batch: FetchedBatch, heartbeat: () => Promise<void>): Promise<void> {
    return this.locked(() => this.processBatch(batch, heartbeat));
  }

  private async processBatch(batch: FetchedBatch, heartbeat: () => Promise<void>): Promise<void> {
    if (this.failure || batch.records.length === 0) return;
    const o = this.o;
    const p = batch.partition;
    if (!this.laneOf.has(p)) await this.restoreMissing();
    const lane = this.laneOf.get(p);
    if (!lane) return; // revoked while restoring: the new owner will consume it
    const kind: InputKind = batch.topic === o.topics.settlements ? "settlement" : "death";
    const timer = o.metrics?.batchSeconds.startTimer();
    const at = this.generation.get(p);
    const values = batch.records.map((m) => m.value);
    const accounted = lane.batch(p, kind, values).then(
      (r) => {
        timer?.();
        // Revoked (or restored anew) meanwhile: the rest is the next owner's, or redone after a restart.
        if (this.generation.get(p) === at && this.laneOf.get(p) === lane) this.account(batch, kind, r);
        if (o.metrics) o.metrics.statePersons.set(sum(this.personsOf.set(lane, r.persons).values()));
      },
      (e: unknown) => {
        // A stop ended the lane's registry wait: this batch is redone after a restart.
        if (!this.stopping.signal.aborted) this.fail(e, "lane");
      },
    );
    this.unaccounted.add(accounted);
    void accounted.finally(() => this.unaccounted.delete(accounted));
    if (o.metrics && batch.highWatermark !== undefined) {
      const lag = batch.highWatermark - batch.lastOffset - 1n;
      o.metrics.lag.set({ topic: batch.topic, partition: p }, Number(lag > 0n ? lag : 0n));
    }
    if (this.flushDue()) await this.flush(heartbeat);
    // A lane that is behind (or waiting out the registry) holds the fetch here, still in the group.
    await awaitTicking(lane.room(), heartbeat);
    await heartbeat();
  }

  /** A batch's results into the outbox: changes, the valid records' archive, dead letters, offsets. */
  private account(batch: FetchedBatch, kind: InputKind, r: BatchResult): void {
    const o = this.o;
    const bad = new Map(r.bad.map((b) => [b.index, b.reason]));
    batch.records.forEach((m, i) => {
      const reason = bad.get(i);
      if (reason === undefined) {
        // The archive takes the exact Kafka value, and only of a record that decoded and validated.
        if (o.output.kind === "store")
          this.archive.push({ kind, raw: m.value as Buffer, decode: () => this.decodeValid(kind, m.value) });
        return;
      }
      const letter = { topic: batch.topic, partition: batch.partition, offset: String(m.offset) };
      this.deadbox.push(
        deadLetterMessage({ ...letter, key: m.key, value: m.value, reason }, { maxBytes: o.deadLetterBytes }),
      );
      this.stats.deadLetters++;
      o.metrics?.deadLetters.inc({ topic: batch.topic });
    });
    for (const c of r.changes) {
      this.changes.push({ ...c, version: this.clock.next(), partition: batch.partition });
      o.metrics?.suspectChanges.inc({ detector: c.suspect.detector, op: c.op });
    }
    this.stats.changes += r.changes.length;
    this.stats.events += batch.records.length;
    const last = batch.records[batch.records.length - 1];
    if (last) {
      const { topic, partition } = batch;
      this.pendingOffsets.set(tpKey(topic, partition), { topic, partition, offset: last.offset + 1n });
    }
    if (o.metrics) {
      o.metrics.eventsConsumed.inc({ topic: batch.topic }, batch.records.length);
      o.metrics.tooLate.inc(r.tooLate);
    }
  }

  /** A record its lane decoded and validated, decoded again here: only the archive's JS fallback needs it. */
  private async decodeValid(kind: InputKind, value: Buffer | null): Promise<EngineEvent> {
    const d = await this.o.serde.decode(kind, value);
    if (!d.ok) throw new Error(`a record its lane accepted does not decode here: ${d.reason}`);
    return { kind, value: d.value } as EngineEvent;
  }
}

const sum = (xs: Iterable<number>) => {
  let n = 0;
  for (const x of xs) n += x;
  return n;
};
