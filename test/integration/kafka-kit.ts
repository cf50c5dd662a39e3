// What Kafka tests set up and read back: an isolated pipeline with registered schemas, a topic's
// records and their count.
import { Kafka, logLevel } from "kafkajs";
import { AvroSerde } from "../../services/kafka/serde.ts";
import { type Topics, topicNames } from "../../services/kafka/topics.ts";
import { cli, pipelineEnv } from "./harness.ts";

/** A pipeline of its own (pipelineEnv), its topics created and the schemas registered. */
export async function kafkaPipeline(label: string, extra: Record<string, string> = {}) {
  const env = pipelineEnv(label, extra);
  await cli(["topics", "create"], env);
  const topics: Topics = topicNames(env.FUNDGUARD_TOPIC_PREFIX);
  const kafka = new Kafka({ brokers: [env.KAFKA_BROKERS as string], logLevel: logLevel.NOTHING });
  const serde = new AvroSerde(env.SCHEMA_REGISTRY_URL as string, topics);
  await serde.register();
  return { env, topics, kafka, serde };
}

export interface ReadRecord {
  key: string;
  value: Buffer | null;
  headers: Record<string, string>;
}

/** The first `count` records of `topic` (all partitions), failing after `ms` with how many arrived. */
export async function readTopic(
  kafka: Kafka,
  topic: string,
  count: number,
  ms = 60_000,
): Promise<ReadRecord[]> {
  const consumer = kafka.consumer({ groupId: `read-${topic}-${Date.now()}`, maxBytesPerPartition: 16 << 20 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const out: ReadRecord[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`only ${out.length} of ${count} records on ${topic}`)),
        ms,
      );
      consumer
        .run({
          eachMessage: async ({ message }) => {
            const headers: Record<string, string> = {};
            for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
            out.push({ key: message.key?.toString() ?? "", value: message.value, headers });
            if (out.length >= count) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return out;
}

/** Records on `topic` in all, by its end offsets. */
export async function recordCount(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high), 0);
  } finally {
    await admin.disconnect();
  }
}
