// The transport section of the bench: kafkajs and @platformatic/kafka behind the same seam, on the
// same topics in the same run, alternating so that neither always runs on a warmer broker.
//   (a) a group consumer reading every Avro settlement the replay path produced, as raw batches;
//   (b) an idempotent producer writing changelog-like records of ~600 B, acks=all, per compression.
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { topicNames } from "../../services/kafka/topics.ts";
import {
  type Compression,
  KAFKA_CLIENTS,
  type KafkaClientName,
  type KafkaTransport,
  type OutRecord,
  openTransport,
} from "../../services/kafka/transport.ts";
import { createLogger } from "../../services/log.ts";
import { envFile, run } from "./kafka.ts";

const PARTITIONS = 6;
/** Records per partition in one send: the changelog's cap per request (services/kafka/produce.ts). */
const PER_PARTITION = 500;
const COMPRESSIONS: Compression[] = ["none", "gzip", "lz4"];

interface Measured {
  seconds: number;
  perSecond: number;
  cpuMicrosPerItem: number;
}

async function measure(items: number, work: () => Promise<void>): Promise<Measured> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await work();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { seconds, perSecond: items / seconds, cpuMicrosPerItem: (cpu.user + cpu.system) / items };
}

/** Reads the whole topic through a new group; the clock stops when the last record is handed over. */
async function consumeAll(t: KafkaTransport, topic: string, total: number, group: string): Promise<Measured> {
  const consumer = t.groupConsumer({
    group,
    topics: [topic],
    sessionTimeoutMs: 10_000,
    maxBytesPerPartition: 1 << 20,
  });
  let seen = 0;
  let bytes = 0;
  try {
    const measured = await measure(total, async () => {
      await new Promise<void>((resolve, reject) => {
        consumer
          .run({
            onAssign: async () => undefined,
            onBatch: async (b) => {
              for (const r of b.records) bytes += r.value?.length ?? 0;
              seen += b.records.length;
              if (seen >= total) resolve();
            },
            onError: reject,
          })
          .catch(reject);
      });
    });
    if (bytes === 0) throw new Error(`${t.name}: read no bytes`);
    return measured;
  } finally {
    await consumer.close();
  }
}

/** Reads the whole topic by readRange: the client's fetch and decoding without the group machinery. */
async function rangeAll(t: KafkaTransport, topic: string, total: number): Promise<Measured> {
  let seen = 0;
  const measured = await measure(total, async () => {
    const ranges = new Map(
      Array.from({ length: PARTITIONS }, (_, p) => [p, { from: 0n, to: "end" as const }]),
    );
    for await (const b of t.readRange({ topic, ranges })) seen += b.records.length;
  });
  if (seen !== total) throw new Error(`${t.name}: readRange read ${seen} of ${total}`);
  return measured;
}

/** ~600 B JSON values like a person's state entries, keyed as the changelog keys them. */
function changelogRecords(topic: string, n: number): OutRecord[] {
  const pad = randomBytes(300).toString("hex").slice(0, 526);
  return Array.from({ length: n }, (_, i) => ({
    topic,
    partition: i % PARTITIONS,
    key: `P${(i * 7919) % 1_000_003}\u0000s:${i}`,
    value: JSON.stringify({
      v: i,
      settledAt: 1_735_689_600_000 + i,
      amountFen: i * 37,
      items: [i % 97],
      pad,
    }),
  }));
}

async function produceAll(t: KafkaTransport, records: OutRecord[], compression: Compression) {
  const producer = t.producer();
  const perSend = PER_PARTITION * PARTITIONS;
  try {
    return await measure(records.length, async () => {
      for (let i = 0; i < records.length; i += perSend)
        await producer.send(records.slice(i, i + perSend), { compression });
    });
  } finally {
    await producer.close();
  }
}

const ratio = (a: Measured[], b: Measured[], f: (m: Measured) => number) => {
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] as number;
  return median(b.map(f)) / median(a.map(f));
};

export async function benchTransport(
  files: { settlements: string; deaths: string },
  root: string,
  records: number,
) {
  // Running services named in the environment, else the ones infra/up.sh started for this checkout.
  const infra: Record<string, string> = process.env.KAFKA_BROKERS
    ? { KAFKA_BROKERS: process.env.KAFKA_BROKERS, SCHEMA_REGISTRY_URL: process.env.SCHEMA_REGISTRY_URL ?? "" }
    : envFile(root);
  const id = `benchtr${Date.now().toString(36)}`;
  const env = {
    ...infra,
    FUNDGUARD_TOPIC_PREFIX: `${id}.`,
    FUNDGUARD_PARTITIONS: String(PARTITIONS),
    FUNDGUARD_DATA_DIR: join(mkdtempSync(join(tmpdir(), "fg-bench-tr-")), "data"),
    LOG_LEVEL: "warn",
  };
  const topics = topicNames(env.FUNDGUARD_TOPIC_PREFIX);
  await run(root, ["replay", "--settlements", files.settlements, "--deaths", files.deaths], env);
  const brokers = (infra.KAFKA_BROKERS as string).split(",");
  const log = createLogger("bench-transport", "warn");
  const clients = Object.fromEntries(
    await Promise.all(
      KAFKA_CLIENTS.map(
        async (n) => [n, await openTransport(n, { brokers, clientId: `${id}-${n}`, log })] as const,
      ),
    ),
  ) as Record<KafkaClientName, KafkaTransport>;
  const admin = clients.kafkajs.admin();
  const created: string[] = [];
  try {
    const total = Number(
      [...(await admin.endOffsets(topics.settlements)).values()].reduce((a, b) => a + b, 0n),
    );
    const consume: Record<KafkaClientName, Measured[]> = { kafkajs: [], platformatic: [] };
    const range: Record<KafkaClientName, Measured[]> = { kafkajs: [], platformatic: [] };
    const orders: KafkaClientName[][] = [
      ["kafkajs", "platformatic"],
      ["platformatic", "kafkajs"],
      ["kafkajs", "platformatic"],
    ];
    for (const [round, order] of orders.entries()) {
      for (const name of order) {
        process.stderr.write(`bench: transport consume ${name} round ${round + 1}\n`);
        consume[name].push(
          await consumeAll(clients[name], topics.settlements, total, `${id}-c${round}-${name}`),
        );
        range[name].push(await rangeAll(clients[name], topics.settlements, total));
      }
    }
    const sample = changelogRecords("t", 1000);
    const valueBytes = Math.round(sample.reduce((n, r) => n + String(r.value).length, 0) / sample.length);
    const produce: Record<string, Record<KafkaClientName, Measured[]>> = {};
    for (const compression of COMPRESSIONS) {
      produce[compression] = { kafkajs: [], platformatic: [] };
      for (const [round, order] of orders.entries()) {
        for (const name of order) {
          const topic = `${id}.produce-${compression}-${round}-${name}`;
          await admin.createTopics([{ topic, partitions: PARTITIONS }]);
          created.push(topic);
          process.stderr.write(`bench: transport produce ${compression} ${name} round ${round + 1}\n`);
          (produce[compression] as Record<KafkaClientName, Measured[]>)[name].push(
            await produceAll(clients[name], changelogRecords(topic, records), compression),
          );
        }
      }
    }
    const summary = (a: Measured[], b: Measured[]) => ({
      kafkajs: a,
      platformatic: b,
      platformaticSpeedup: ratio(a, b, (m) => m.perSecond),
      platformaticCpuRatio: ratio(a, b, (m) => m.cpuMicrosPerItem),
    });
    return {
      consume: {
        messages: total,
        topic: "settlements.v1 (Avro, replay path)",
        ...summary(consume.kafkajs, consume.platformatic),
      },
      readRange: { messages: total, ...summary(range.kafkajs, range.platformatic) },
      produce: Object.fromEntries(
        COMPRESSIONS.map((c) => {
          const m = produce[c] as Record<KafkaClientName, Measured[]>;
          return [c, { records, valueBytes, ...summary(m.kafkajs, m.platformatic) }];
        }),
      ),
      note: "ratios are platformatic / kafkajs of the medians (speedup > 1: platformatic faster; cpu ratio < 1: platformatic cheaper); CPU is this process's user+system",
    };
  } finally {
    await admin.close();
    // The bench's topics hold gigabytes: gone once measured.
    const kafka = new Kafka({ brokers, logLevel: logLevel.NOTHING });
    const a = kafka.admin();
    await a.connect();
    await a.deleteTopics({ topics: [...created, topics.settlements, topics.deaths] }).catch(() => undefined);
    await a.disconnect();
  }
}
