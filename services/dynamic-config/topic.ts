// detector-config.v1: the Flink "dynamic rules" pattern. A compacted topic, key = detector id,
// value = that detector's config as JSON (a tombstone resets it to the defaults). Every worker
// reads the whole topic, like a Kafka Streams GlobalKTable, and applies changes without a restart.

import type { Topics } from "../kafka/topics.ts";
import type { FetchedRecord, KafkaTransport, TopicSpec, TransportAdmin } from "../kafka/transport.ts";
import type { Logger } from "../log.ts";

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
export function configTopicConfig(topic: string): TopicSpec {
  return {
    topic,
    partitions: 1,
    configs: { "cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1" },
  };
}

export function ensureConfigTopic(admin: TransportAdmin, topic: string): Promise<void> {
  return admin.createTopics([configTopicConfig(topic)]);
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

export function toConfigRecord(r: FetchedRecord): ConfigRecord {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.headers ?? {})) headers[k] = v.toString();
  const base = {
    offset: r.offset.toString(),
    at: new Date(r.timestampMs ?? 0).toISOString(),
    detector: r.key?.toString() ?? "",
    headers,
  };
  if (r.value === null) return { ...base, value: null };
  try {
    return { ...base, value: JSON.parse(r.value.toString()) as unknown };
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
 * Reads the topic from its first record and keeps following it (no consumer group: nothing is
 * committed, nothing to clean up). `onRecord` runs for every record in offset order; with
 * `follow: false` the reader stops at the end offsets seen at start. A failure after the catch-up
 * (onRecord throwing, the broker gone for good) ends the following and is logged.
 */
export async function followConfigTopic(
  transport: KafkaTransport,
  topic: string,
  onRecord: (r: ConfigRecord) => void | Promise<void>,
  opts: { follow?: boolean; log?: Logger } = {},
): Promise<ConfigFollower> {
  const admin = transport.admin();
  const ranges = new Map<number, { from: bigint; to: "end" }>();
  try {
    await ensureConfigTopic(admin, topic);
    // The first retained record (timestamps are never before the epoch), or the end when none is.
    for (const [p, from] of await admin.offsetsAt(topic, 0)) ranges.set(p, { from, to: "end" });
  } finally {
    await admin.close();
  }
  const stopping = new AbortController();
  let markCaughtUp: () => void = () => undefined;
  const caughtUp = new Promise<void>((resolve) => {
    markCaughtUp = resolve;
  });
  const reading = (async () => {
    const follow = opts.follow === false ? undefined : { signal: stopping.signal, onCaughtUp: markCaughtUp };
    for await (const b of transport.readRange({ topic, ranges, ...(follow ? { follow } : {}) }))
      for (const r of b.records) await onRecord(toConfigRecord(r));
    markCaughtUp();
  })();
  const failed = reading.then(
    () => undefined,
    (err: unknown) => {
      opts.log?.error({ err, topic }, "stopped following the config topic");
      throw err;
    },
  );
  // A follower's caller awaits caughtUp once: a later failure must not become an unhandled rejection.
  failed.catch(() => undefined);
  return {
    caughtUp: Promise.race([caughtUp, failed]),
    stop: async () => {
      stopping.abort();
      await reading.catch(() => undefined);
    },
  };
}

/** Every record of the topic up to its end offsets now, in offset order. */
export async function readConfigTopic(transport: KafkaTransport, topic: string): Promise<ConfigRecord[]> {
  const out: ConfigRecord[] = [];
  const f = await followConfigTopic(transport, topic, (r) => void out.push(r), { follow: false });
  try {
    await f.caughtUp;
  } finally {
    await f.stop();
  }
  return out;
}
