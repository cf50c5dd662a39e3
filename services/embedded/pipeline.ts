// The embedded pipeline: the same engine as the Kafka workers, one per partition of an
// in-process log, writing suspects and the settlement archive to the store, committing
// offsets only after the store has the batch. The archive takes the input lines as they are.
import { type ActiveDetector, Engine, type EngineEvent } from "../engine/engine.ts";
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
}

export class EmbeddedPipeline {
  readonly log: InProcessLog<ArchiveRecord>;
  private readonly engines: Engine[];
  private readonly clock = new VersionClock();
  private readonly onArchiveFallback: ((f: ArchiveFallback) => void) | undefined;
  readonly stats: PipelineStats = { events: 0, changes: 0, archiveFallbacks: 0 };

  constructor(
    private readonly store: Store,
    detectors: ActiveDetector[],
    o: PipelineOptions = {},
  ) {
    const partitions = o.partitions ?? 6;
    this.log = new InProcessLog("events", partitions);
    this.engines = Array.from(
      { length: partitions },
      () => new Engine({ detectors, retentionDays: o.retentionDays ?? 400 }),
    );
    this.onArchiveFallback = o.onArchiveFallback;
  }

  /** `line`: the valid NDJSON line the event was read from (without its newline). */
  publish(event: EngineEvent, line: string): void {
    this.log.append(event.value.person_id, { event, raw: ndjsonArchiveBytes(line, event.value) });
  }

  /** Processes everything published so far, batch by batch and partition by partition. */
  async drain(batchSize = 5_000, onProgress?: (done: number, total: number) => void): Promise<void> {
    const total = this.stats.events + this.log.lag(EMBEDDED_GROUP);
    for (;;) {
      let progressed = false;
      for (let p = 0; p < this.engines.length; p++) {
        const from = this.log.committedOffset(EMBEDDED_GROUP, p);
        const batch = this.log.read(p, from, batchSize);
        if (batch.length === 0) continue;
        await this.processBatch(this.engines[p] as Engine, batch);
        this.log.commit(EMBEDDED_GROUP, p, from + batch.length);
        progressed = true;
        onProgress?.(this.stats.events, total);
      }
      if (!progressed) return;
    }
  }

  private async processBatch(engine: Engine, batch: ArchiveRecord[]): Promise<void> {
    const changes = batch.flatMap((r) => engine.process(r.event));
    const versions = changes.map(() => this.clock.next());
    for (const f of await this.store.archive(batch, "JSONEachRow")) {
      this.stats.archiveFallbacks++;
      this.onArchiveFallback?.(f);
    }
    if (changes.length > 0)
      await this.store.writeChanges(changes, { versionOf: (_c, i) => versions[i] as number });
    this.stats.events += batch.length;
    this.stats.changes += changes.length;
  }
}
