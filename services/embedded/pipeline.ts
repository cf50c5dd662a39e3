// The embedded pipeline: the same engine as the Kafka workers, one per partition of an
// in-process log, writing suspects and the settlement archive to the store, committing
// offsets only after the store has the batch.
import type { DeathRecord, Settlement } from "../../schemas/index.ts";
import { type ActiveDetector, Engine, type EngineEvent } from "../engine/engine.ts";
import { VersionClock } from "../pipeline/version-clock.ts";
import type { Store } from "../store/index.ts";
import { InProcessLog } from "./log.ts";

export const EMBEDDED_GROUP = "embedded";

export interface PipelineStats {
  events: number;
  changes: number;
}

export class EmbeddedPipeline {
  readonly log: InProcessLog<EngineEvent>;
  private readonly engines: Engine[];
  private readonly clock = new VersionClock();
  readonly stats: PipelineStats = { events: 0, changes: 0 };

  constructor(
    private readonly store: Store,
    detectors: ActiveDetector[],
    partitions = 6,
    retentionDays = 400,
  ) {
    this.log = new InProcessLog("events", partitions);
    this.engines = Array.from({ length: partitions }, () => new Engine({ detectors, retentionDays }));
  }

  publish(event: EngineEvent): void {
    this.log.append(event.value.person_id, event);
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

  private async processBatch(engine: Engine, batch: EngineEvent[]): Promise<void> {
    const changes = batch.flatMap((e) => engine.process(e));
    const versions = changes.map(() => this.clock.next());
    const settlements = batch.filter((e) => e.kind === "settlement").map((e) => e.value as Settlement);
    const deaths = batch.filter((e) => e.kind === "death").map((e) => e.value as DeathRecord);
    await this.store.writeSettlements(settlements);
    if (deaths.length > 0) await this.store.writeDeaths(deaths);
    if (changes.length > 0)
      await this.store.writeChanges(changes, { versionOf: (_c, i) => versions[i] as number });
    this.stats.events += batch.length;
    this.stats.changes += changes.length;
  }
}
