// One shard of `detect`: decodes, parses and validates the raw lines it is sent and runs them through its
// own engine, as a Kafka partition's worker does; every event of a person comes to the same shard.
import { parentPort, workerData } from "node:worker_threads";
import { DETECTORS, loadCatalogs } from "../../detectors/index.ts";
import { activate, Engine } from "../engine/engine.ts";
import { type BadLine, parseEventLine } from "../ingest/ndjson-source.ts";
import { validators } from "../ingest/validate.ts";
import { type FromShard, metaKind, metaLine, type ShardSetup, type ToShard } from "./protocol.ts";

const port = parentPort;
if (!port) throw new Error("services/detect/shard.ts runs as a worker thread of `fundguard detect`");
const setup = workerData as ShardSetup;
const engine = new Engine({
  detectors: activate(DETECTORS, loadCatalogs(setup.reference)),
  retentionDays: setup.retentionDays,
});
const validate = validators(setup.limits);
let events = 0;
const reply = (m: FromShard) => port.postMessage(m);

port.on("message", (m: ToShard) => {
  if ("end" in m) {
    reply({ done: true, suspects: [...engine.activeSuspects()], stats: engine.stats, events });
    return;
  }
  const bad: BadLine[] = [];
  const bytes = Buffer.from(m.bytes);
  for (let i = 0; i < m.ends.length; i++) {
    const meta = m.meta[i] as number;
    const kind = metaKind(meta);
    const text = bytes.toString("utf8", i === 0 ? 0 : m.ends[i - 1], m.ends[i]);
    const parsed = parseEventLine(kind, text, validate);
    if (!parsed) continue;
    if (!parsed.ok) {
      bad.push({ file: setup.files[kind], line: metaLine(meta), reason: parsed.reason });
      continue;
    }
    engine.process(parsed.value);
    events++;
  }
  reply({ ack: true, bad });
});
