// detector-config.v1: the Flink "dynamic rules" pattern. A compacted topic, key = detector id,
// value = that detector's config as JSON (a tombstone resets it to the defaults). Every worker
// reads the whole topic, like a Kafka Streams GlobalKTable, and applies changes without a restart.

import type { Admin, IHeaders, ITopicConfig, Kafka } from "kafkajs";
import type { ConsumerTiming } from "../kafka/connection.ts";
import { openRange } from "../kafka/read-range.ts";
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
 * Reads the topic from the beginning and keeps following it, in a group of its own (see
 * kafka/read-range.ts) deleted at stop. `onRecord` runs for every record in offset order; with
 * `follow: false` the reader stops at the end offsets seen at start.
 */
export async function followConfigTopic(
  kafka: Kafka,
  topic: string,
  onRecord: (r: ConfigRecord) => void | Promise<void>,
  opts: { follow?: boolean; groupPrefix?: string; timing?: ConsumerTiming } = {},
): Promise<ConfigFollower> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureConfigTopic(admin, topic);
  } finally {
    await admin.disconnect();
  }
  const reader = await openRange(kafka, {
    topics: [topic],
    follow: opts.follow !== false,
    groupPrefix: `${opts.groupPrefix ?? "fundguard-config"}-`,
    timing: opts.timing,
    onRecord: ({ message }) => onRecord(toConfigRecord(message)),
  });
  return { caughtUp: reader.caughtUp, stop: reader.stop };
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
