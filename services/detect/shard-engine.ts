// What one shard of `detect` does with the raw lines it is sent: decode, parse, validate and run
// them through its own engine, as a Kafka partition's worker does. Every event of a person comes
// to the same shard. Runs in a worker thread (shard.ts), or on the main thread for small inputs.
import { DETECTORS, loadCatalogs } from "../../detectors/index.ts";
import { activate, Engine } from "../engine/engine.ts";
import { type BadLine, parseEventLine } from "../ingest/ndjson-source.ts";
import { type Validators, validators } from "../ingest/validate.ts";
import { type FromShard, type LinesMessage, metaKind, metaLine, type ShardSetup } from "./protocol.ts";

export class ShardEngine {
  private readonly engine: Engine;
  private readonly validate: Validators;
  private events = 0;

  constructor(private readonly setup: ShardSetup) {
    this.engine = new Engine({
      detectors: activate(DETECTORS, loadCatalogs(setup.reference), setup.configs),
      retentionDays: setup.retentionDays,
    });
    this.validate = validators(setup.limits);
  }

  /** Processes a batch of lines; returns the bad ones. */
  lines(m: LinesMessage): BadLine[] {
    const bad: BadLine[] = [];
    const bytes = Buffer.from(m.bytes);
    for (let i = 0; i < m.ends.length; i++) {
      const meta = m.meta[i] as number;
      const kind = metaKind(meta);
      const text = bytes.toString("utf8", i === 0 ? 0 : m.ends[i - 1], m.ends[i]);
      const parsed = parseEventLine(kind, text, this.validate);
      if (!parsed) continue;
      if (!parsed.ok) {
        bad.push({ file: this.setup.files[kind], line: metaLine(meta), reason: parsed.reason });
        continue;
      }
      this.engine.process(parsed.value);
      this.events++;
    }
    return bad;
  }

  result(): Extract<FromShard, { done: true }> {
    return {
      done: true,
      suspects: [...this.engine.activeSuspects()],
      stats: this.engine.stats,
      events: this.events,
    };
  }
}
