// Cutting outgoing records into produce requests the broker accepts, for any transport.
import type { Compression, OutRecord, TransportProducer } from "./transport.ts";

/** A record of one topic's outgoing list: the topic is the list's. */
export type OutMessage = Omit<OutRecord, "topic">;

export interface ProduceRequest {
  topic: string;
  messages: OutMessage[];
  compression?: Compression;
}

/** Per-partition bytes in one request, under the broker's default 1 MiB record-batch limit. */
export const DEFAULT_BATCH_BYTES = 768 * 1024;
/**
 * Per-partition messages in one request. kafkajs groups a request's messages by partition by
 * copying the partition's array for every message (quadratic in this number): for thousands of
 * small changelog entries per partition that cost more than the round trips a cap adds.
 */
const MAX_MESSAGES_PER_PARTITION = 500;

const sizeOf = (m: OutMessage) =>
  64 +
  (m.key?.length ?? 0) +
  (m.value?.length ?? 0) +
  Object.entries(m.headers ?? {}).reduce((n, [k, v]) => n + k.length + String(v).length, 0);

export interface Outgoing {
  topic: string;
  messages: OutMessage[];
  /** Per-partition record-batch budget: the topic's max.message.bytes, with headroom. */
  maxBatchBytes?: number;
  compression?: Compression;
  /**
   * Adjacent messages of one group go in one request, where a partition's share is one record batch
   * appended whole: a crash between requests never leaves half a group in the log. A group over
   * the byte budget on its own is still split (a refused request would fail every retry).
   */
  groupOf?: (m: OutMessage) => string;
}

/**
 * The produce requests that send all messages with acks from all replicas in as few requests as
 * the broker's record-batch limit allows. Budgets are per partition where messages name theirs;
 * keyed messages share one budget, since they may all hash to one partition.
 */
export function produceRequests(outgoing: Outgoing[]): ProduceRequest[] {
  const requests: ProduceRequest[] = [];
  for (const { topic, messages, maxBatchBytes = DEFAULT_BATCH_BYTES, compression, groupOf } of outgoing) {
    let request: OutMessage[] = [];
    const bytes = new Map<number, number>();
    const count = new Map<number, number>();
    const add = (m: OutMessage) => {
      const bucket = m.partition ?? -1;
      request.push(m);
      bytes.set(bucket, (bytes.get(bucket) ?? 0) + sizeOf(m));
      count.set(bucket, (count.get(bucket) ?? 0) + 1);
    };
    /** Sends what the request holds before `keep`; the messages from `keep` on start the next one. */
    const cut = (keep = request.length) => {
      if (keep === 0) return;
      requests.push({ topic, messages: request.slice(0, keep), compression });
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

/** A request of produceRequests as one send of the transport: one record batch per partition. */
export function sendRequest(producer: TransportProducer, r: ProduceRequest): Promise<Map<string, bigint>> {
  const records = r.messages.map((m) => ({
    topic: r.topic,
    // Dead letters of unkeyed records still need a home: the dead-letter topic's first partition.
    partition: m.partition ?? (m.key ? undefined : 0),
    key: m.key,
    value: m.value,
    headers: m.headers,
  }));
  return producer.send(records, { compression: r.compression ?? "none" });
}

/** Sends all messages (see produceRequests), one request at a time. */
export async function sendAll(producer: TransportProducer, outgoing: Outgoing[]): Promise<void> {
  for (const request of produceRequests(outgoing)) await sendRequest(producer, request);
}
