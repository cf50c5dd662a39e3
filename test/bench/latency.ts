// Produce → queryable latency: settlements produced at a steady rate through the real broker
// and one worker, timed from the producer's ack to the row's insert time in ClickHouse.
import { spawn } from "node:child_process";
import { Kafka, logLevel } from "kafkajs";
import type { Settlement } from "../../schemas/index.ts";
import { readLineBatches } from "../../services/ingest/lines.ts";
import { validateSettlement } from "../../services/ingest/validate.ts";
import { endOffsets, isCaughtUp } from "../../services/kafka/progress.ts";
import { AvroSerde } from "../../services/kafka/serde.ts";
import { topicNames } from "../../services/kafka/topics.ts";
import { openTransport } from "../../services/kafka/transport.ts";
import { idempotentProducer } from "../../services/kafka/transport-kafkajs.ts";
import { createLogger } from "../../services/log.ts";
import { chdbConfig, openStore } from "../../services/store/index.ts";
import { cliArgs } from "./shebang.ts";

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
};
const summary = (xs: number[]) => ({
  samples: xs.length,
  p50Ms: quantile(xs, 0.5),
  p99Ms: quantile(xs, 0.99),
});

async function firstSettlements(file: string, n: number): Promise<Settlement[]> {
  const out: Settlement[] = [];
  for await (const batch of readLineBatches(file)) {
    for (const line of batch.lines) {
      if (typeof line !== "string") continue;
      const v = validateSettlement(JSON.parse(line));
      if (v.ok && v.value.event_type === "SETTLE") out.push(v.value);
      if (out.length >= n) return out;
    }
  }
  return out;
}

export async function benchLatency(o: {
  root: string;
  env: Record<string, string>;
  settlementsFile: string;
  rate: number;
  seconds: number;
}) {
  const { root, env } = o;
  const topics = topicNames(env.FUNDGUARD_TOPIC_PREFIX);
  const kafka = new Kafka({ brokers: [env.KAFKA_BROKERS as string], logLevel: logLevel.NOTHING });
  const start = (args: string[]) =>
    spawn(process.execPath, [...cliArgs(root), ...args], {
      env: { ...process.env, ...env },
      stdio: "ignore",
    });
  await new Promise((r) => start(["topics", "create"]).on("close", r));
  const worker = start(["worker"]);
  const admin = kafka.admin();
  await admin.connect();
  // Both consumer groups must be stable before the clock starts.
  for (;;) {
    const { groups } = await admin.describeGroups([env.FUNDGUARD_GROUP as string]);
    if (groups.every((g) => g.state === "Stable")) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const serde = new AvroSerde(env.SCHEMA_REGISTRY_URL as string, topics);
  await serde.register();
  const events = await firstSettlements(o.settlementsFile, o.rate * o.seconds);
  const producer = idempotentProducer(kafka);
  await producer.connect();
  const sentAt = new Map<string, number>();
  const tick = 50;
  const perTick = Math.max(1, Math.round((o.rate * tick) / 1000));
  const t0 = Date.now();
  for (let i = 0; i < events.length; i += perTick) {
    const slice = events.slice(i, i + perTick);
    await producer.send({
      topic: topics.settlements,
      acks: -1,
      messages: slice.map((s) => ({ key: s.person_id, value: serde.encode("settlement", s) })),
    });
    const now = Date.now();
    for (const s of slice) sentAt.set(s.settlement_id, now);
    const due = t0 + ((i + perTick) / o.rate) * 1000;
    if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
  }
  const achievedRate = events.length / ((Date.now() - t0) / 1000);
  await producer.disconnect();
  await admin.disconnect();
  const progress = (
    await openTransport("platformatic", {
      brokers: [env.KAFKA_BROKERS as string],
      clientId: "bench-latency",
      log: createLogger("bench-latency", "silent"),
    })
  ).admin();
  const targets = await endOffsets(progress, [topics.settlements]);
  while (!(await isCaughtUp(progress, env.FUNDGUARD_GROUP as string, targets)))
    await new Promise((r) => setTimeout(r, 200));
  await progress.close();
  worker.kill("SIGTERM");
  await new Promise((r) => worker.on("close", r));

  const store = await openStore(chdbConfig(env.FUNDGUARD_DATA_DIR as string));
  try {
    const archived = await store.query<{ id: string; at: string }>(
      "SELECT settlement_id AS id, toString(toUnixTimestamp64Milli(min(ingested_at))) AS at FROM settlements GROUP BY id",
    );
    const suspects = await store.query<{ id: string; at: string }>(
      "SELECT settlement_ids[1] AS id, toString(toUnixTimestamp64Milli(min(written_at))) AS at FROM suspects GROUP BY id",
    );
    const lat = (rows: { id: string; at: string }[]) =>
      rows.filter((r) => sentAt.has(r.id)).map((r) => Number(r.at) - (sentAt.get(r.id) as number));
    return {
      targetRate: o.rate,
      achievedRate,
      settlements: events.length,
      suspectQueryable: summary(lat(suspects)),
      settlementArchived: summary(lat(archived)),
    };
  } finally {
    await store.close();
  }
}
