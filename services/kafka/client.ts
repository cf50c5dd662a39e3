import {
  CompressionTypes,
  type Kafka,
  type Message,
  Partitioners,
  type Producer,
  type ProducerRecord,
  type TopicMessages,
} from "kafkajs";
import type { Compression, TransportProducer } from "./transport.ts";

/**
 * An idempotent producer partitioning like Java clients (murmur2 of the key), so topics
 * written here and by other producers stay co-partitioned. By default it retries until
 * delivered, as idempotence requires; a caller that resends what a send gave up on (the worker,
 * which must report the outage meanwhile) may bound the retries of one send.
 */
export function idempotentProducer(kafka: Kafka, retries = Number.MAX_SAFE_INTEGER): Producer {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: { retries, maxRetryTime: 30_000 },
  });
}

/** Per-partition bytes in one request, under the broker's default 1 MiB record-batch limit. */
export const DEFAULT_BATCH_BYTES = 768 * 1024;
/**
 * Per-partition messages in one request. kafkajs groups a request's messages by partition by
 * copying the partition's array for every message (quadratic in this number): for thousands of
 * small changelog entries per partition that cost more than the round trips a cap adds.
 */
const MAX_MESSAGES_PER_PARTITION = 500;

const sizeOf = (m: Message) =>
  64 +
  (m.key?.length ?? 0) +
  (m.value?.length ?? 0) +
  Object.entries(m.headers ?? {}).reduce((n, [k, v]) => n + k.length + String(v).length, 0);

export interface Outgoing extends TopicMessages {
  /** Per-partition record-batch budget: the topic's max.message.bytes, with headroom. */
  maxBatchBytes?: number;
  compression?: CompressionTypes;
  /**
   * Adjacent messages of one group go in one request, where a partition's share is one record batch
   * appended whole: a crash between requests never leaves half a group in the log. A group over
   * the byte budget on its own is still split (a refused request would fail every retry).
   */
  groupOf?: (m: Message) => string;
}

/**
 * The produce requests that send all messages with acks from all replicas in as few requests as
 * the broker's record-batch limit allows. Budgets are per partition where messages name theirs;
 * keyed messages share one budget, since they may all hash to one partition.
 */
export function produceRequests(outgoing: Outgoing[]): ProducerRecord[] {
  const requests: ProducerRecord[] = [];
  for (const { topic, messages, maxBatchBytes = DEFAULT_BATCH_BYTES, compression, groupOf } of outgoing) {
    let request: Message[] = [];
    const bytes = new Map<number, number>();
    const count = new Map<number, number>();
    const add = (m: Message) => {
      const bucket = m.partition ?? -1;
      request.push(m);
      bytes.set(bucket, (bytes.get(bucket) ?? 0) + sizeOf(m));
      count.set(bucket, (count.get(bucket) ?? 0) + 1);
    };
    /** Sends what the request holds before `keep`; the messages from `keep` on start the next one. */
    const cut = (keep = request.length) => {
      if (keep === 0) return;
      requests.push({ topic, messages: request.slice(0, keep), acks: -1, compression });
      const carried = request.slice(keep);
      request = [];
      bytes.clear();
      count.clear();
      for (const m of carried) add(m);
    };
    let group: string | undefined;
    let groupStart = 0;
    for (const m of messages) {
      const g = groupOf?.(m);
      if (g === undefined || g !== group) {
        group = g;
        groupStart = request.length;
      }
      const bucket = m.partition ?? -1;
      const overBytes = (bytes.get(bucket) ?? 0) + sizeOf(m) > maxBatchBytes;
      if (overBytes || (count.get(bucket) ?? 0) >= MAX_MESSAGES_PER_PARTITION) {
        // Cut before the group under way; a group that fills a request alone is split only for bytes.
        if (groupStart > 0) cut(groupStart);
        else if (overBytes || g === undefined) cut();
        groupStart = 0;
      }
      add(m);
    }
    cut();
  }
  return requests;
}

const CODECS = new Map<CompressionTypes | undefined, Compression>([
  [CompressionTypes.GZIP, "gzip"],
  [CompressionTypes.LZ4, "lz4"],
]);

/** A request of produceRequests as one send of the transport: one record batch per partition. */
export function sendRequest(producer: TransportProducer, r: ProducerRecord): Promise<Map<string, bigint>> {
  const records = r.messages.map((m) => ({
    topic: r.topic,
    // Dead letters of unkeyed records still need a home: the dead-letter topic's first partition.
    partition: m.partition ?? (m.key ? undefined : 0),
    key: m.key ?? null,
    value: m.value,
    headers: m.headers as Record<string, string> | undefined,
  }));
  return producer.send(records, { compression: CODECS.get(r.compression) ?? "none" });
}

/** Sends all messages (see produceRequests), one request at a time. */
export async function sendAll(producer: Producer, outgoing: Outgoing[]): Promise<void> {
  for (const request of produceRequests(outgoing)) await producer.send(request);
}
