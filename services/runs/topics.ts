// A run over a time range of the live input topics. The range is of record timestamps: the start
// offsets are the first records at or after --from, the end offsets the first at or after --to
// (the end of the partition when there is none), looked up once when the run is created. A
// consumer in a group of its own (`<prefix>fundguard-run.<run>.<uuid>`, deleted afterwards)
// seeks to the start offsets and stops at the
// end offsets; it never commits, and the live workers' group is never touched.
// Like a worker, the run keeps one engine per partition (persons are co-partitioned).
import type { Kafka } from "kafkajs";
import type { EngineEvent } from "../engine/engine.ts";
import { Health } from "../health.ts";
import type { ConsumerTiming } from "../kafka/connection.ts";
import { type RangeRecord, readRange } from "../kafka/read-range.ts";
import { type AvroSerde, type InputKind, RegistryUnavailableError } from "../kafka/serde.ts";
import { checkCoPartitioned, type Topics } from "../kafka/topics.ts";
import { tpKey } from "../kafka/transport.ts";
import type { Logger } from "../log.ts";
import { type BackoffPolicy, DEFAULT_BACKOFF, tickingWait } from "../retry.ts";
import type { Progress } from "./progress.ts";
import { RateLimiter, type RunSession, sleep } from "./session.ts";
import type { RunSourceTopics } from "./table.ts";

export interface TopicPosition {
  /** "topic:partition" → next offset to process. */
  next: Record<string, string>;
}

function parseTime(label: string, iso: string): number {
  const ms = Date.parse(iso);
  if (!/^\d{4}-\d{2}-\d{2}/.test(iso) || Number.isNaN(ms)) {
    throw new Error(
      `${label} must be an ISO-8601 time such as 2026-01-31T00:00:00+08:00, got ${JSON.stringify(iso)}`,
    );
  }
  return ms;
}

export async function topicSource(
  kafka: Kafka,
  topics: Topics,
  from: string,
  to: string,
): Promise<RunSourceTopics> {
  const fromMs = parseTime("--from", from);
  const toMs = parseTime("--to", to);
  if (toMs <= fromMs) throw new Error("--to must be later than --from");
  const admin = kafka.admin();
  await admin.connect();
  try {
    await checkCoPartitioned(admin, topics);
    const names = [topics.settlements, topics.deaths];
    const start: Record<string, string> = {};
    const end: Record<string, string> = {};
    for (const topic of names) {
      for (const p of await admin.fetchTopicOffsetsByTimestamp(topic, fromMs))
        start[tpKey(topic, p.partition)] = p.offset;
      for (const p of await admin.fetchTopicOffsetsByTimestamp(topic, toMs))
        end[tpKey(topic, p.partition)] = p.offset;
    }
    return {
      kind: "topics",
      from: new Date(fromMs).toISOString(),
      to: new Date(toMs).toISOString(),
      topics: names,
      start,
      end,
    };
  } finally {
    await admin.disconnect();
  }
}

/** `<topic prefix>fundguard-run.<run>.`: the run's consumer groups, one per process (uuid suffix). */
export function runGroupPrefix(source: RunSourceTopics, run: string): string {
  const settlements = source.topics[0] ?? "";
  return `${settlements.slice(0, settlements.length - "settlements.v1".length)}fundguard-run.${run}.`;
}

/** Events in the range (end − start summed), for the progress bar. */
export function rangeSize(s: RunSourceTopics): number {
  let n = 0;
  for (const [k, e] of Object.entries(s.end)) n += Math.max(0, Number(BigInt(e) - BigInt(s.start[k] ?? e)));
  return n;
}

export async function runTopics(
  session: RunSession,
  source: RunSourceTopics,
  opts: {
    kafka: Kafka;
    serde: AvroSerde;
    run: string;
    from?: TopicPosition;
    signal: AbortSignal;
    rate?: number;
    progress: Progress;
    log: Logger;
    backoff?: BackoffPolicy;
    timing?: ConsumerTiming;
  },
): Promise<"done" | "interrupted"> {
  const [settlementsTopic] = source.topics;
  const next: Record<string, string> = { ...source.start, ...opts.from?.next };
  const remaining = new Set(
    Object.keys(source.end).filter((k) => BigInt(next[k] ?? "0") < BigInt(source.end[k] ?? "0")),
  );
  const position = (): TopicPosition => ({ next: { ...next } });
  const total = rangeSize(source);
  const doneBefore =
    total - [...remaining].reduce((n, k) => n + Number(BigInt(source.end[k] ?? 0) - BigInt(next[k] ?? 0)), 0);
  let processed = 0;
  opts.progress.update(doneBefore, total);
  if (remaining.size === 0) {
    await session.checkpoint(position());
    return "done";
  }

  const limiter = new RateLimiter(opts.rate);
  const health = new Health({ log: opts.log, policy: opts.backoff ?? DEFAULT_BACKOFF });

  const onRecord = async ({ topic, partition, message: m }: RangeRecord, heartbeat: () => Promise<void>) => {
    const kind: InputKind = topic === settlementsTopic ? "settlement" : "death";
    // An unreachable registry (or an id it does not know yet) is waited out, as the worker does.
    const decoded = await health.retry("registry", () => opts.serde.decode(kind, m.value), {
      retryable: (e) => e instanceof RegistryUnavailableError,
      wait: tickingWait(heartbeat),
      signal: opts.signal,
    });
    if (decoded.ok) session.process(partition, { kind, value: decoded.value } as EngineEvent);
    else {
      session.bad();
      opts.log.warn({ topic, partition, offset: m.offset, reason: decoded.reason }, "invalid record skipped");
    }
    next[tpKey(topic, partition)] = (BigInt(m.offset) + 1n).toString();
    processed++;
    const wait = limiter.delay();
    if (wait > 0) {
      await sleep(wait);
      await heartbeat();
    }
    if ((processed & 1023) === 0) opts.progress.update(doneBefore + processed, total);
    if (session.due) {
      await session.checkpoint(position());
      await heartbeat();
    }
  };

  const outcome = await readRange(opts.kafka, {
    topics: source.topics,
    from: next,
    to: source.end,
    groupPrefix: runGroupPrefix(source, opts.run),
    // A killed run's member leaves its group after the session timeout; then the group can be deleted.
    deleteStale: true,
    timing: opts.timing,
    maxBytesPerPartition: 4 << 20,
    signal: opts.signal,
    log: opts.log,
    onRecord,
    // Compaction (deaths.v1) leaves offset gaps: the end, not the last record, is where the partition is.
    onPartitionEnd: (topic, partition) => {
      const k = tpKey(topic, partition);
      next[k] = source.end[k] as string;
    },
  });
  await session.checkpoint(position());
  opts.progress.update(doneBefore + processed, total);
  return outcome;
}
