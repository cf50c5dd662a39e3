// One Kafka interface for the services, so the client library behind it can be measured and
// swapped (docs/stream-core.md §7). Offsets are bigints; a committed offset is the next one to read.
import type { Logger } from "../log.ts";

export const KAFKA_CLIENTS = ["kafkajs", "platformatic"] as const;
export type KafkaClientName = (typeof KAFKA_CLIENTS)[number];
export type Compression = "none" | "gzip" | "lz4";

export interface TP {
  topic: string;
  partition: number;
}

export interface TopicSpec {
  topic: string;
  partitions: number;
  configs?: Record<string, string>;
}

export interface TransportAdmin {
  listTopics(): Promise<string[]>;
  /**
   * Creates what is missing and waits for the leaders; existing topics (also one another process
   * created meanwhile) are left as they are.
   */
  createTopics(specs: TopicSpec[]): Promise<void>;
  /** Partitions of `topic`, 0 when it does not exist. */
  partitions(topic: string): Promise<number>;
  /** A topic's effective value of one config (its own setting, or the broker default it inherits). */
  topicConfig(topic: string, name: string): Promise<string | undefined>;
  /** Per partition, the offset the next record will get (the high watermark). */
  endOffsets(topic: string): Promise<Map<number, bigint>>;
  /** Per partition, the first offset whose record timestamp is at or after `timestampMs`; the end offset where none is. */
  offsetsAt(topic: string, timestampMs: number): Promise<Map<number, bigint>>;
  /** Per partition, the group's committed offset; partitions it never committed are absent. */
  committed(group: string, topic: string): Promise<Map<number, bigint>>;
  deleteGroup(group: string): Promise<void>;
  close(): Promise<void>;
}

export interface OutRecord {
  topic: string;
  /** Where absent, a keyed record goes to murmur2(key) % partitions, as Java clients place it. */
  partition?: number;
  key: Buffer | string | null;
  value: Buffer | string | null;
  headers?: Record<string, string>;
}

export interface TransportProducer {
  /**
   * One produce request (per leader broker) with acks from all replicas; each partition's records
   * are one record batch, appended whole or not at all. Returns the last offset per "topic:partition".
   */
  send(records: OutRecord[], o?: { compression?: Compression }): Promise<Map<string, bigint>>;
  close(): Promise<void>;
}

export interface FetchedRecord {
  offset: bigint;
  key: Buffer | null;
  value: Buffer | null;
  /** Only on records that carry headers (suspect changes, dead letters). */
  headers?: Record<string, Buffer>;
  /** The record's timestamp (ms since the epoch); set by readRange, not on the group consumer's hot path. */
  timestampMs?: number;
}

/** One partition's records in offset order. */
export interface FetchedBatch {
  topic: string;
  partition: number;
  records: FetchedRecord[];
  lastOffset: bigint;
  /** The partition's end as the fetch saw it, where the client reports it. */
  highWatermark?: bigint;
}

export interface Assignment {
  added: TP[];
  revoked: TP[];
  all: TP[];
}

export interface GroupHandlers {
  /** Awaited before the first batch of any newly assigned partition. */
  onAssign(a: Assignment): Promise<void>;
  onBatch(b: FetchedBatch, heartbeat: () => Promise<void>): Promise<void>;
  /** The consumer stopped on an error (an onBatch that threw included). */
  onError(e: Error): void;
}

export interface GroupConsumer {
  /** Joins and starts fetching; resolves once started. Uncommitted partitions start at the earliest offset. */
  run(h: GroupHandlers): Promise<void>;
  /** Offsets are the next ones to read. */
  commit(offsets: (TP & { offset: bigint })[]): Promise<void>;
  /** Throws when this member no longer holds the generation its last onAssign reported. */
  heartbeat(): Promise<void>;
  pause(tps: TP[]): void;
  resume(tps: TP[]): void;
  close(): Promise<void>;
}

export interface GroupOptions {
  group: string;
  topics: string[];
  sessionTimeoutMs: number;
  /** Static membership (KIP-345), where the client supports it. */
  instanceId?: string;
  maxBytesPerPartition: number;
}

export interface RangeRead {
  topic: string;
  /** Records with from ≤ offset < to; "end" is the partition's end offset when the read starts. */
  ranges: Map<number, { from: bigint; to: bigint | "end" }>;
  /**
   * Read on past `to` (a GlobalKTable's follower): the read ends only when `signal` aborts, within a
   * fetch's wait; `onCaughtUp` is called once every range has reached its `to`.
   */
  follow?: { signal: AbortSignal; onCaughtUp?: () => void };
}

export interface KafkaTransport {
  readonly name: KafkaClientName;
  admin(): TransportAdmin;
  /** Idempotent, acks=all, one request in flight. `retries` bounds one send (default: until delivered). */
  producer(o?: { retries?: number }): TransportProducer;
  groupConsumer(o: GroupOptions): GroupConsumer;
  /** Reads the ranges without a consumer group's offsets; ends when every range is read (see `follow`). */
  readRange(o: RangeRead): AsyncIterable<FetchedBatch>;
}

export interface TransportConnection {
  brokers: string[];
  clientId: string;
  log: Logger;
}

/** "topic:partition": the key of per-partition maps. */
/**
 * A readRange's plan from the partitions' end offsets: where each partition's reading starts
 * (`from`), which are short of their `to` (`pending`, to be deleted as each gets there), and
 * `reached()`, to call after that, which tells `follow.onCaughtUp` once when none is left.
 */
export function rangePlan(o: RangeRead, ends: Map<number, bigint>) {
  const from = new Map<number, bigint>();
  const pending = new Map<number, bigint>();
  for (const [p, r] of o.ranges) {
    const end = ends.get(p) ?? 0n;
    const to = r.to === "end" || r.to > end ? end : r.to;
    if (o.follow || r.from < to) from.set(p, r.from);
    if (r.from < to) pending.set(p, to);
  }
  let caughtUp = false;
  const reached = () => {
    if (caughtUp || pending.size > 0) return;
    caughtUp = true;
    o.follow?.onCaughtUp?.();
  };
  reached();
  /**
   * The records of a batch fetched from `partition` (ending at `lastOffset`) to hand over: those
   * at or past `from`, where the next one is due, and short of `to` unless following. A
   * client that reads again from where it seeks or from the start (a group that rejoined or
   * restarted) thus hands nothing over twice. Moves `from` and `pending` on.
   */
  const take = <R extends { offset: bigint }>(partition: number, records: R[], lastOffset: bigint): R[] => {
    const next = from.get(partition);
    if (next === undefined) return [];
    const to = pending.get(partition);
    const taken = records.filter((r) => r.offset >= next && (o.follow || to === undefined || r.offset < to));
    if (lastOffset < next) return taken;
    if (to !== undefined && lastOffset + 1n >= to) {
      pending.delete(partition);
      if (!o.follow) {
        from.delete(partition);
        return taken;
      }
    }
    from.set(partition, lastOffset + 1n);
    return taken;
  };
  return { from, pending, reached, take };
}

export const tpKey = (topic: string, partition: number): string => `${topic}:${partition}`;

/** The added and revoked topic-partitions between two assignments. */
export function assignmentDiff(before: TP[], after: TP[]): Assignment {
  const had = new Set(before.map((t) => tpKey(t.topic, t.partition)));
  const has = new Set(after.map((t) => tpKey(t.topic, t.partition)));
  return {
    added: after.filter((t) => !had.has(tpKey(t.topic, t.partition))),
    revoked: before.filter((t) => !has.has(tpKey(t.topic, t.partition))),
    all: after,
  };
}

/** Opens the named client's transport (FUNDGUARD_KAFKA_CLIENT). */
export async function openTransport(
  name: KafkaClientName,
  conn: TransportConnection,
): Promise<KafkaTransport> {
  if (name === "platformatic") {
    const { platformaticTransport } = await import("./transport-platformatic.ts");
    return platformaticTransport(conn);
  }
  const { kafkajsTransport } = await import("./transport-kafkajs.ts");
  return kafkajsTransport(conn);
}
