// The embedded mode's ingest destination: the in-process log, as the sample and the live trickle
// use it. A write resolves once the pipeline has stored the events (the archive and their
// suspects), so an accepted record is never only in memory when the answer leaves.
import type { IngestDestination } from "../api/ingest.ts";
import type { EngineEvent } from "../engine/engine.ts";
import type { EmbeddedPipeline } from "./pipeline.ts";

export class LogIngest implements IngestDestination {
  constructor(private readonly pipeline: EmbeddedPipeline) {}

  async write(events: readonly EngineEvent[]): Promise<void> {
    // The archive keeps the validated record (the request's own bytes may be a JSON array).
    for (const e of events) this.pipeline.publish(e, JSON.stringify(e.value));
    await this.pipeline.process();
  }

  async close(): Promise<void> {
    await this.pipeline.process();
  }
}
