// A run over a time range of the live input topics. The range is of record timestamps: the start
// offsets are the first records at or after --from, the end offsets the first at or after --to
// (the end of the partition when there is none), looked up once when the run is created. A
// consumer in a group of its own (`<prefix>fundguard-run.<run>.<uuid>`, deleted afterwards)
// seeks to the start offsets and stops at the
// end offsets; it never commits, and the live workers' group is never touched.
// Like a worker, the run keeps one engine per partition (persons are co-partitioned).
import { randomUUID } from "node:crypto";
import type { Admin, EachBatchPayload, Kafka } from "kafkajs";
import type { EngineEvent } from "../engine/engine.ts";
import { Health } from "../health.ts";
import { type AvroSerde, type InputKind, RegistryUnavailableError } from "../kafka/serde.ts";
import { checkCoPartitioned, type Topics } from "../kafka/topics.ts";
import type { Logger } from "../log.ts";
import { type BackoffPolicy, DEFAULT_BACKOFF, tickingWait } from "../retry.ts";
import type { Progress } from "./progress.ts";
import { RateLimiter, type RunSession, sleep } from "./session.ts";
import type { RunSourceTopics } from "./table.ts";

export interface TopicPosition {
  /** "topic:partition" → next offset to process. */
  next: Record<string, string>;
}

const tpKey = (topic: string, partition: number) => `${topic}:${partition}`;

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

const RUN_SESSION_TIMEOUT_MS = 10_000;

/** Deletes a run's group, retrying while it still has a member (leaving, or dead until its session expires). */
async function deleteGroup(admin: Admin, groupId: string, log: Logger, patienceMs: number): Promise<void> {
  const until = Date.now() + patienceMs;
  for (;;) {
    try {
      await admin.deleteGroups([groupId]);
      return;
    } catch (e) {
      const groups = (e as { groups?: { error?: { type?: string } }[] }).groups ?? [];
      if (groups.some((g) => g.error?.type === "GROUP_ID_NOT_FOUND")) return;
      if (Date.now() >= until) {
        log.warn({ err: e, group: groupId }, "could not delete the run's consumer group");
        return;
      }
      await sleep(250);
    }
  }
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

  const groupPrefix = runGroupPrefix(source, opts.run);
  const groupId = `${groupPrefix}${randomUUID()}`;
  const consumer = opts.kafka.consumer({
    groupId,
    // A killed run's member leaves its group after this long; then the group can be deleted.
    sessionTimeout: RUN_SESSION_TIMEOUT_MS,
    heartbeatInterval: 1_000,
    maxBytesPerPartition: 4 << 20,
  });
  const admin = opts.kafka.admin();
  await admin.connect();
  // Groups left by a process of this run that was killed: deleted at the end, when the dead
  // member's session has surely expired.
  const stale = (await admin.listGroups()).groups
    .map((g) => g.groupId)
    .filter((g) => g.startsWith(groupPrefix));
  const startedAt = Date.now();
  const limiter = new RateLimiter(opts.rate);
  let finish: (how: "done" | "interrupted") => void = () => undefined;
  const finished = new Promise<"done" | "interrupted">((resolve) => {
    finish = resolve;
  });
  const onAbort = () => finish("interrupted");
  opts.signal.addEventListener("abort", onAbort, { once: true });
  let failure: unknown;
  const health = new Health({ log: opts.log, policy: opts.backoff ?? DEFAULT_BACKOFF });

  const markDone = (topic: string, partition: number) => {
    const k = tpKey(topic, partition);
    if (!remaining.delete(k)) return;
    next[k] = source.end[k] as string;
    consumer.pause([{ topic, partitions: [partition] }]);
    if (remaining.size === 0) finish("done");
  };

  const eachBatch = async ({ batch, heartbeat, isRunning, isStale }: EachBatchPayload) => {
    try {
      const k = tpKey(batch.topic, batch.partition);
      if (!remaining.has(k)) return;
      const end = BigInt(source.end[k] as string);
      const kind: InputKind = batch.topic === settlementsTopic ? "settlement" : "death";
      for (const m of batch.messages) {
        if (opts.signal.aborted || !isRunning() || isStale()) return;
        const offset = BigInt(m.offset);
        if (offset < BigInt(next[k] as string)) continue; // fetched before the seek took effect
        if (offset >= end) break;
        // An unreachable registry (or an id it does not know yet) is waited out, as the worker does.
        const decoded = await health.retry("registry", () => opts.serde.decode(kind, m.value), {
          retryable: (e) => e instanceof RegistryUnavailableError,
          wait: tickingWait(heartbeat),
          signal: opts.signal,
        });
        if (decoded.ok) session.process(batch.partition, { kind, value: decoded.value } as EngineEvent);
        else {
          session.bad();
          opts.log.warn(
            { topic: batch.topic, partition: batch.partition, offset: m.offset, reason: decoded.reason },
            "invalid record skipped",
          );
        }
        next[k] = (offset + 1n).toString();
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
      }
      // Compaction (deaths.v1) leaves offset gaps: the batch's last offset tells where the partition is.
      if (BigInt(batch.lastOffset()) + 1n >= end || BigInt(next[k] as string) >= end)
        markDone(batch.topic, batch.partition);
      await heartbeat();
    } catch (e) {
      if (!opts.signal.aborted) failure = e;
      finish("interrupted");
    }
  };

  consumer.on(consumer.events.CRASH, ({ payload }) => {
    // kafkajs restarts the consumer after retriable errors; anything else ends the run (as failed).
    if (!payload.restart) {
      failure = payload.error;
      finish("interrupted");
    }
  });

  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    for (const [topic, partitions] of Object.entries(payload.memberAssignment)) {
      for (const partition of partitions) {
        const k = tpKey(topic, partition);
        if (remaining.has(k)) consumer.seek({ topic, partition, offset: next[k] as string });
        else consumer.pause([{ topic, partitions: [partition] }]);
      }
    }
  });

  let outcome: "done" | "interrupted";
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: source.topics, fromBeginning: true });
    await consumer.run({ autoCommit: false, partitionsConsumedConcurrently: 1, eachBatch });
    outcome = await finished;
  } finally {
    opts.signal.removeEventListener("abort", onAbort);
    // Stop fetching first: the last batch finishes before the final checkpoint below.
    await consumer.stop().catch(() => undefined);
    await consumer.disconnect().catch(() => undefined);
    await deleteGroup(admin, groupId, opts.log, 5_000);
    const patience = RUN_SESSION_TIMEOUT_MS + 5_000 - (Date.now() - startedAt);
    for (const g of stale) await deleteGroup(admin, g, opts.log, Math.max(patience, 1_000));
    await admin.disconnect().catch(() => undefined);
  }
  if (failure) throw failure;
  await session.checkpoint(position());
  opts.progress.update(doneBefore + processed, total);
  return outcome;
}
