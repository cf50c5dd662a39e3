// The embedded pipeline: the same engine as the Kafka workers, one per partition of an
// in-process log, writing suspects and the settlement archive to the store, committing
// offsets only after the store has the round. The archive takes the input lines as they are.
import type { Settlement } from "../../schemas/index.ts";
import { type CheckAnswer, checkOnEngine } from "../engine/check.ts";
import { type ActiveDetector, type Change, Engine, type EngineEvent } from "../engine/engine.ts";
import { VersionClock } from "../pipeline/version-clock.ts";
import { type ArchiveFallback, type ArchiveRecord, ndjsonArchiveBytes, type Store } from "../store/index.ts";
import { InProcessLog } from "./log.ts";

export const EMBEDDED_GROUP = "embedded";

export interface PipelineStats {
  events: number;
  changes: number;
  /** Batches whose archive ClickHouse refused as raw lines, written through JS rows instead. */
  archiveFallbacks: number;
}

export interface PipelineOptions {
  partitions?: number;
  retentionDays?: number;
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

export class EmbeddedPipeline {
  readonly log: InProcessLog<ArchiveRecord>;
  private readonly engines: Engine[];
  private readonly clock = new VersionClock();
  private readonly onArchiveFallback: ((f: ArchiveFallback) => void) | undefined;
  private readonly onStored: ((changes: readonly Change[]) => void) | undefined;
  readonly stats: PipelineStats = { events: 0, changes: 0, archiveFallbacks: 0 };
  /** Event-time span of the engines' retained state. */
  readonly retentionDays: number;
  /**
   * A round the engines processed but the store refused: written again before anything else, so
   * its suspects are not lost (the engines, already past it, would call a re-read a duplicate).
   */
  private unwritten: Unwritten | undefined;
  private running: Promise<void> = Promise.resolve();
  private queued: Promise<void> | undefined;

  constructor(
    private readonly store: Store,
    /** The engines' detectors with their config (the check route evaluates with the same). */
    readonly detectors: ActiveDetector[],
    o: PipelineOptions = {},
  ) {
    const partitions = o.partitions ?? 6;
    this.retentionDays = o.retentionDays ?? 400;
    this.log = new InProcessLog("events", partitions);
    this.engines = Array.from(
      { length: partitions },
      () => new Engine({ detectors, retentionDays: this.retentionDays }),
    );
    this.onArchiveFallback = o.onArchiveFallback;
    this.onStored = o.onStored;
  }

  /** /check's what-if on the engine that owns the person, over what it has processed. */
  check(proposed: Settlement): CheckAnswer {
    const engine = this.engines[this.log.partitionOf(proposed.person_id)] as Engine;
    return checkOnEngine(proposed, engine, this.detectors);
  }

  /** `line`: the valid NDJSON line the event was read from (without its newline). */
  publish(event: EngineEvent, line: string): void {
    this.log.append(event.value.person_id, { event, raw: ndjsonArchiveBytes(line, event.value) });
  }

  /**
   * Gives the engine that owns the person an event the store already has (state rebuilt after a
   * restart): nothing is published, written or committed, and the changes are dropped.
   */
  restore(event: EngineEvent): void {
    (this.engines[this.log.partitionOf(event.value.person_id)] as Engine).process(event);
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
    const total = this.stats.events + this.log.lag(EMBEDDED_GROUP);
    for (;;) {
      const round = this.unwritten ?? this.read(batchSize);
      if (!round) return;
      this.unwritten = round;
      await this.write(round);
      this.unwritten = undefined;
      for (const [p, offset] of round.commits) this.log.commit(EMBEDDED_GROUP, p, offset);
      this.stats.events += round.records.length;
      this.stats.changes += round.changes.length;
      onProgress?.(this.stats.events, total);
      if (round.changes.length > 0) this.onStored?.(round.changes);
    }
  }

  /** The next round of every partition's uncommitted events, through its engine; undefined when none. */
  private read(batchSize: number): Unwritten | undefined {
    const round: Unwritten = { records: [], changes: [], versions: [], commits: [] };
    for (let p = 0; p < this.engines.length; p++) {
      const from = this.log.committedOffset(EMBEDDED_GROUP, p);
      const batch = this.log.read(p, from, batchSize);
      if (batch.length === 0) continue;
      const engine = this.engines[p] as Engine;
      for (const r of batch) {
        round.records.push(r);
        for (const c of engine.process(r.event)) round.changes.push(c);
      }
      round.commits.push([p, from + batch.length]);
    }
    if (round.records.length === 0) return undefined;
    round.versions = round.changes.map(() => this.clock.next());
    return round;
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
