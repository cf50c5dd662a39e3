import {
  Kafka,
  logLevel as KafkaLogLevel,
  type LogEntry,
  type Message,
  Partitioners,
  type Producer,
  type TopicMessages,
} from "kafkajs";
import type { Logger } from "../log.ts";

const LEVELS: Record<number, "error" | "warn" | "info" | "debug"> = {
  [KafkaLogLevel.ERROR]: "error",
  [KafkaLogLevel.WARN]: "warn",
  [KafkaLogLevel.INFO]: "info",
  [KafkaLogLevel.DEBUG]: "debug",
};

/** A kafkajs client whose own logs go through our logger, at warn and above. */
export function createKafka(brokers: string[], clientId: string, log: Logger): Kafka {
  const child = log.child({ component: "kafkajs" });
  return new Kafka({
    clientId,
    brokers,
    logLevel: KafkaLogLevel.WARN,
    retry: { initialRetryTime: 200 },
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, ...rest } = entry;
        child[LEVELS[level] ?? "info"](rest, message);
      },
  });
}

/**
 * An idempotent producer partitioning like Java clients (murmur2 of the key), so topics
 * written here and by other producers stay co-partitioned. It retries until delivered, as
 * idempotence requires.
 */
export function idempotentProducer(kafka: Kafka): Producer {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: { retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 30_000 },
  });
}

/** Bytes per produce request per topic, under the broker's default 1 MiB record-batch limit. */
const MAX_REQUEST_BYTES = 768 * 1024;

const sizeOf = (m: Message) =>
  64 +
  (m.key?.length ?? 0) +
  (m.value?.length ?? 0) +
  Object.entries(m.headers ?? {}).reduce((n, [k, v]) => n + k.length + String(v).length, 0);

/** Sends all messages with acks from all replicas, split so that no request exceeds the broker's limit. */
export async function sendAll(producer: Producer, topicMessages: TopicMessages[]): Promise<void> {
  for (const { topic, messages } of topicMessages) {
    let chunk: Message[] = [];
    let bytes = 0;
    for (const m of messages) {
      const size = sizeOf(m);
      if (chunk.length > 0 && bytes + size > MAX_REQUEST_BYTES) {
        await producer.send({ topic, messages: chunk, acks: -1 });
        chunk = [];
        bytes = 0;
      }
      chunk.push(m);
      bytes += size;
    }
    if (chunk.length > 0) await producer.send({ topic, messages: chunk, acks: -1 });
  }
}
