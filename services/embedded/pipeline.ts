// The embedded pipeline: the engines of an in-process log's partitions on lanes, as a Kafka
// worker's (pipeline/lanes.ts: worker threads, or inline), writing suspects and the settlement
// archive to the store, committing offsets only after the store has the round. The archive takes
// the input lines as they are, and the lanes read the same bytes.
import type { Settlement } from "../../schemas/index.ts";
import type { CheckAnswer } from "../engine/check.ts";
import type { ActiveDetector, Change, EngineEvent } from "../engine/engine.ts";
import { activateSetup } from "../pipeline/lane-core.ts";
import {
  type DetectorSetup,
  encodeLineMeta,
  type LaneSetup,
  type LocalState,
  type RecordArena,
} from "../pipeline/lane-protocol.ts";
import { type Lane, openLanes } from "../pipeline/lanes.ts";
import { VersionClock } from "../pipeline/version-clock.ts";
import { type ArchiveFallback, type ArchiveRecord, ndjsonArchiveBytes, type Store } from "../store/index.ts";
import { InProcessLog } from "./log.ts";

export const EMBEDDED_GROUP = "embedded";
/** The in-process log's partitions (so at most this many lanes). */
export const EMBEDDED_PARTITIONS = 6;

export interface PipelineStats {
  events: number;
  changes: number;
  /** Batches whose archive ClickHouse refused as raw lines, written through JS rows instead. */
  archiveFallbacks: number;
}

export interface PipelineOptions {
  partitions?: number;
  retentionDays?: number;
  latenessDays?: number;
  /**
   * The engines' persons in LMDB stores under this directory (one per partition) behind a cache,
   * committed whenever the pipeline has written all it processed, so a restart resumes from them.
   */
  state?: LocalState;
  /** Lanes in worker threads (FUNDGUARD_LANES, see laneCount); 0 or absent: one lane on this thread. */
  lanes?: number;
  /** Told of each table whose raw lines ClickHouse refused as data (they went in as JS rows). */
  onArchiveFallback?: (f: ArchiveFallback) => void;
  /** Told of the suspect changes of each round once the store has them. */
  onStored?: (changes: readonly Change[]) => void;
}

/** A round read and processed whose store writes have not all succeeded yet. */
interface Unwritten {
  records: ArchiveRecord[];
  changes: Change[];
  versions: number[];
  /** [partition, offset to commit] once the round is stored. */
  commits: [number, number][];
}

/** Records' lines (an archive record's bytes are its line and a newline) in one arena for a lane, newlines left out. */
function linesOf(records: readonly { event: EngineEvent; raw: Uint8Array }[]): {
  lines: RecordArena;
  meta: Float64Array;
} {
  let bytes = 0;
  for (const r of records) bytes += r.raw.length - 1;
  const arena = Buffer.allocUnsafeSlow(bytes);
  const ends = new Int32Array(records.length);
  const meta = new Float64Array(records.length);
  let at = 0;
  records.forEach((r, i) => {
    arena.set(r.raw.subarray(0, r.raw.length - 1), at);
    at += r.raw.length - 1;
    ends[i] = at;
    // The lane reports a bad line by its index: no line number is of use here.
    meta[i] = encodeLineMeta(i, r.event.kind);
  });
  return { lines: { arena, ends }, meta };
}

/** What a commit of the embedded stores notes: every event archived before this time is in them. */
interface StateNote {
  archivedBeforeMs: number;
}

/** Stores are committed at most this often while the live trickle runs (and at every stop). */
const COMMIT_EVERY_MS = 5_000;

export class EmbeddedPipeline {
  readonly log: InProcessLog<ArchiveRecord>;
  private readonly lanes: Lane[];
  private readonly opened: Promise<number | undefined>;
  private readonly stateful: boolean;
  private committedAt = 0;
  private readonly clock = new VersionClock();
  private readonly onArchiveFallback: ((f: ArchiveFallback) => void) | undefined;
  private readonly onStored: ((changes: readonly Change[]) => void) | undefined;
  readonly stats: PipelineStats = { events: 0, changes: 0, archiveFallbacks: 0 };
  /** Event-time span of the engines' retained state. */
  readonly retentionDays: number;
  /**
   * Rounds the engines processed whose store writes have not succeeded yet, oldest first: written
   * before anything else, so no suspect is lost (the engines, already past them, would call a
   * re-read a duplicate). The lanes work on the next round while one is written.
   */
  private readonly unwritten: Unwritten[] = [];
  /** Per partition, the offset up to which events went to the engines (ahead of the committed one). */
  private readonly sent = new Map<number, number>();
  private running: Promise<void> = Promise.resolve();
  private queued: Promise<void> | undefined;

  /** The engines' detectors with their config (the check route evaluates with the same). */
  readonly detectors: ActiveDetector[];

  constructor(
    private readonly store: Store,
    /** The registry's detectors with these catalogs and configs, here and on the lanes. */
    detectors: DetectorSetup = {},
    o: PipelineOptions = {},
  ) {
    const partitions = o.partitions ?? EMBEDDED_PARTITIONS;
    this.retentionDays = o.retentionDays ?? 400;
    this.log = new InProcessLog("events", partitions);
    this.detectors = activateSetup(detectors);
    const setup: LaneSetup = {
      detectors,
      retentionDays: this.retentionDays,
      latenessDays: o.latenessDays,
      changelog: false,
      changes: true,
      ...(o.state ? { state: o.state } : {}),
    };
    this.lanes = openLanes(Math.min(o.lanes ?? 0, partitions), setup);
    this.stateful = o.state !== undefined;
    this.opened = this.open();
    this.onArchiveFallback = o.onArchiveFallback;
    this.onStored = o.onStored;
  }

  /** Each lane's partitions. */
  private partitionsOf(i: number): number[] {
    return Array.from({ length: this.log.partitionCount }, (_, p) => p).filter(
      (p) => p % this.lanes.length === i,
    );
  }

  /**
   * Opens every partition's engine: empty, or, with local state, from the stores when every one
   * of them is clean at a commit (else all start empty). The archive time the state holds, if so.
   */
  private async open(): Promise<number | undefined> {
    if (!this.stateful) {
      await Promise.all(this.lanes.map((lane, i) => lane.open(this.partitionsOf(i))));
      return undefined;
    }
    const notes = (
      await Promise.all(this.lanes.map((lane, i) => lane.open(this.partitionsOf(i), { from: "committed" })))
    ).flat() as (StateNote | null)[];
    if (notes.length === this.log.partitionCount && notes.every((n) => n !== null))
      return Math.min(...notes.map((n) => (n as StateNote).archivedBeforeMs));
    await Promise.all(this.lanes.map((lane, i) => lane.open(this.partitionsOf(i))));
    return undefined;
  }

  /**
   * With local state: resolves to the time before which everything archived is in the engines'
   * stores (what was archived since is the caller's to replay), or undefined when they start empty.
   */
  resumedFrom(): Promise<number | undefined> {
    return this.opened;
  }

  /**
   * Commits the engines' stores (local state only), at most every COMMIT_EVERY_MS unless `now`:
   * called when everything the engines processed is written, so the stores hold what the archive
   * holds. A crash since loses nothing: what was archived after the commit is replayed at start.
   */
  async commit(now = false): Promise<void> {
    if (!this.stateful || (!now && Date.now() - this.committedAt < COMMIT_EVERY_MS)) return;
    await this.opened;
    // With a round unwritten the stores would hold what the archive does not: left at their last
    // commit. Checked and sent with no wait between, so no batch gets in ahead of the commit.
    if (this.unwritten.length > 0) return;
    const note: StateNote = { archivedBeforeMs: Date.now() };
    await Promise.all(this.lanes.map((l) => l.commit(note)));
    this.committedAt = note.archivedBeforeMs;
  }

  private laneOf(partition: number): Lane {
    return this.lanes[partition % this.lanes.length] as Lane;
  }

  /** /check's what-if on the engine that owns the person, over what it has processed. */
  async check(proposed: Settlement): Promise<CheckAnswer> {
    await this.opened;
    const p = this.log.partitionOf(proposed.person_id);
    return this.laneOf(p).check(p, proposed);
  }

  /** `line`: the valid NDJSON line the event was read from (without its newline). */
  publish(event: EngineEvent, line: string): void {
    this.log.append(event.value.person_id, { event, raw: ndjsonArchiveBytes(line, event.value) });
  }

  /**
   * Gives the engines that own the persons events the store already has (state rebuilt after a
   * restart): nothing is published, written or committed, and the changes are dropped.
   */
  async restore(events: readonly EngineEvent[]): Promise<void> {
    await this.opened;
    const byPartition = new Map<number, ArchiveRecord[]>();
    for (const event of events) {
      const p = this.log.partitionOf(event.value.person_id);
      let records = byPartition.get(p);
      if (!records) {
        records = [];
        byPartition.set(p, records);
      }
      records.push({ event, raw: ndjsonArchiveBytes(JSON.stringify(event.value), event.value) });
    }
    await Promise.all([...byPartition].map(([p, records]) => this.send(p, records)));
  }

  /**
   * Processes everything published before the call; resolves once the store has it. Calls made
   * while a drain runs share the one queued behind it, so drains never overlap.
   */
  process(): Promise<void> {
    if (this.queued) return this.queued;
    const next = this.running
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        return this.drain();
      });
    this.queued = next;
    this.running = next;
    return next;
  }

  /**
   * Processes everything published so far, in rounds of up to `batchSize` events per partition,
   * each round one archive write and one suspects write. Not concurrently with itself: live
   * callers use process().
   */
  async drain(batchSize = 5_000, onProgress?: (done: number, total: number) => void): Promise<void> {
    await this.opened;
    const total = this.stats.events + this.log.lag(EMBEDDED_GROUP);
    for (;;) {
      if (this.unwritten.length === 0) {
        const first = await this.read(batchSize);
        if (!first) return this.commit();
        this.unwritten.push(first);
      }
      const round = this.unwritten[0] as Unwritten;
      const ahead =
        this.unwritten.length === 1
          ? this.read(batchSize).then((next) => {
              if (next) this.unwritten.push(next);
            })
          : undefined;
      const written = this.write(round);
      // Both settled before either failure is thrown: a round the engines processed is kept to write.
      await Promise.allSettled([written, ahead]);
      await written;
      await ahead;
      this.unwritten.shift();
      for (const [p, offset] of round.commits) this.log.commit(EMBEDDED_GROUP, p, offset);
      this.stats.events += round.records.length;
      this.stats.changes += round.changes.length;
      onProgress?.(this.stats.events, total);
      if (round.changes.length > 0) this.onStored?.(round.changes);
    }
  }

  /** Closes the lanes (their threads; their stores committed first, when all is written); the last call. */
  async close(): Promise<void> {
    await this.commit(true);
    await Promise.all(this.lanes.map((l) => l.close()));
  }

  /** The next round of every partition's uncommitted events, through its engine; undefined when none. */
  private async read(batchSize: number): Promise<Unwritten | undefined> {
    const batches: { p: number; from: number; batch: ArchiveRecord[] }[] = [];
    for (let p = 0; p < this.log.partitionCount; p++) {
      const from = this.sent.get(p) ?? this.log.committedOffset(EMBEDDED_GROUP, p);
      const batch = this.log.read(p, from, batchSize);
      if (batch.length === 0) continue;
      batches.push({ p, from, batch });
      this.sent.set(p, from + batch.length);
    }
    if (batches.length === 0) return undefined;
    // Every lane at once; the changes taken in partition order, so versions do not depend on timing.
    const changes = await Promise.all(batches.map(({ p, batch }) => this.send(p, batch)));
    const round: Unwritten = { records: [], changes: changes.flat(), versions: [], commits: [] };
    for (const { p, from, batch } of batches) {
      for (const r of batch) round.records.push(r);
      round.commits.push([p, from + batch.length]);
    }
    round.versions = round.changes.map(() => this.clock.next());
    return round;
  }

  /** A partition's records through its engine: the changes they made. */
  private async send(partition: number, records: readonly ArchiveRecord[]): Promise<Change[]> {
    const { lines, meta } = linesOf(records);
    const r = await this.laneOf(partition).lines(partition, lines, meta);
    // Published events were validated on the way in: a line the lane refuses is a bug, not input.
    const [bad] = r.bad;
    if (bad) throw new Error(`the embedded engine refused a published event: ${bad.reason}`);
    return r.changes;
  }

  private async write(round: Unwritten): Promise<void> {
    for (const f of await this.store.archive(round.records, "JSONEachRow")) {
      this.stats.archiveFallbacks++;
      this.onArchiveFallback?.(f);
    }
    if (round.changes.length > 0)
      await this.store.writeChanges(round.changes, { versionOf: (_c, i) => round.versions[i] as number });
  }
}
