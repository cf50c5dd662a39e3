// detector-config.v1: the Flink "dynamic rules" pattern. A compacted topic, key = detector id,
// value = that detector's config as JSON (a tombstone resets it to the defaults). Every worker
// reads the whole topic, like a Kafka Streams GlobalKTable, and applies changes without a restart.

import { randomUUID } from "node:crypto";
import type { Admin, IHeaders, ITopicConfig, Kafka } from "kafkajs";
import { FETCH_WAIT_MS } from "../kafka/client.ts";
import type { Topics } from "../kafka/topics.ts";

export const CONFIG_TOPIC = "detector-config.v1";
export const CONFIG_HEADERS = { hash: "fundguard-config-hash", setBy: "fundguard-set-by" } as const;

export function configTopicName(prefix = ""): string {
  return `${prefix}${CONFIG_TOPIC}`;
}

/** The config topic next to `topics` (same prefix). */
export function configTopicFor(topics: Topics): string {
  return configTopicName(topics.settlements.slice(0, -"settlements.v1".length));
}

/** One partition: a total order of changes, and every reader needs all keys anyway. */
export function configTopicConfig(topic: string): ITopicConfig {
  return {
    topic,
    numPartitions: 1,
    configEntries: [
      { name: "cleanup.policy", value: "compact" },
      { name: "min.cleanable.dirty.ratio", value: "0.1" },
    ],
  };
}

export async function ensureConfigTopic(admin: Admin, topic: string): Promise<void> {
  const existing = new Set(await admin.listTopics());
  if (existing.has(topic)) return;
  try {
    await admin.createTopics({ topics: [configTopicConfig(topic)], waitForLeaders: true });
  } catch (e) {
    // Another process created it meanwhile.
    if (!(await admin.listTopics()).includes(topic)) throw e;
  }
}

/** A record of the config topic as read back. */
export interface ConfigRecord {
  offset: string;
  /** Record timestamp, ISO-8601. */
  at: string;
  detector: string;
  /** Parsed JSON value; null for a tombstone (reset to defaults). */
  value: unknown;
  /** Set when the value is not JSON. */
  parseError?: string;
  headers: Record<string, string>;
}

function headersOf(h: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h ?? {})) if (v !== undefined) out[k] = String(v);
  return out;
}

export function toConfigRecord(m: {
  offset: string;
  timestamp: string;
  key: Buffer | null;
  value: Buffer | null;
  headers?: IHeaders;
}): ConfigRecord {
  const base = {
    offset: m.offset,
    at: new Date(Number(m.timestamp)).toISOString(),
    detector: m.key?.toString() ?? "",
    headers: headersOf(m.headers),
  };
  if (m.value === null) return { ...base, value: null };
  try {
    return { ...base, value: JSON.parse(m.value.toString()) as unknown };
  } catch (e) {
    return { ...base, value: undefined, parseError: `value is not JSON: ${(e as Error).message}` };
  }
}

export interface ConfigFollower {
  /** Resolves once every record up to the end offset seen at start was delivered. */
  caughtUp: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Reads the topic from the beginning and keeps following it. kafkajs has no manual assignment,
 * so a throwaway consumer group (deleted at stop) stands in for it, as in worker/changelog.ts.
 * `onRecord` runs for every record in offset order; with `follow: false` the consumer stops at
 * the end offsets seen at start.
 */
export async function followConfigTopic(
  kafka: Kafka,
  topic: string,
  onRecord: (r: ConfigRecord) => void | Promise<void>,
  opts: { follow?: boolean; groupPrefix?: string } = {},
): Promise<ConfigFollower> {
  const admin = kafka.admin();
  await admin.connect();
  await ensureConfigTopic(admin, topic);
  const ends = new Map<number, bigint>();
  for (const p of await admin.fetchTopicOffsets(topic)) {
    if (BigInt(p.high) > BigInt(p.low)) ends.set(p.partition, BigInt(p.high));
  }
  const groupId = `${opts.groupPrefix ?? "fundguard-config"}-${randomUUID()}`;
  const consumer = kafka.consumer({
    groupId,
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
    maxWaitTimeInMs: FETCH_WAIT_MS,
  });
  let markCaughtUp: () => void = () => undefined;
  const caughtUp = new Promise<void>((resolve) => {
    markCaughtUp = resolve;
  });
  const check = () => {
    if (ends.size === 0) markCaughtUp();
  };
  check();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await consumer.disconnect().catch(() => undefined);
    await admin.deleteGroups([groupId]).catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
  };
  if (ends.size === 0 && opts.follow === false) {
    await stop();
    return { caughtUp, stop };
  }
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch, heartbeat }) => {
        const end = ends.get(batch.partition);
        for (const m of batch.messages) {
          if (opts.follow === false && (end === undefined || BigInt(m.offset) >= end)) break;
          await onRecord(toConfigRecord(m));
        }
        // Compaction leaves offset gaps: the batch's last offset, not a message's, marks the position.
        if (end !== undefined && BigInt(batch.lastOffset()) + 1n >= end) {
          ends.delete(batch.partition);
          check();
        }
        await heartbeat();
      },
    });
  } catch (e) {
    await stop();
    throw e;
  }
  return { caughtUp, stop };
}

/** Every record of the topic up to its end offsets now, in offset order. */
export async function readConfigTopic(kafka: Kafka, topic: string): Promise<ConfigRecord[]> {
  const out: ConfigRecord[] = [];
  const f = await followConfigTopic(kafka, topic, (r) => void out.push(r), { follow: false });
  try {
    await f.caughtUp;
  } finally {
    await f.stop();
  }
  return out;
}
