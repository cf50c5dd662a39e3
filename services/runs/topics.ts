// A run over a time range of the live input topics. The range is of record timestamps: the start
// offsets are the first records at or after --from, the end offsets the first at or after --to
// (the end of the partition when there is none), looked up once when the run is created. The
// transport reads the ranges by offset, in no consumer group: the run commits nothing, and the live
// workers' group is never touched. The two topics' batches alternate, as a group consumer's fetches would.
// Like a worker, the run keeps one engine per partition (persons are co-partitioned), on lanes that
// decode the Avro values themselves.
import type { InputKind } from "../kafka/serde.ts";
import { checkCoPartitioned, type Topics } from "../kafka/topics.ts";
import { type FetchedBatch, type KafkaTransport, tpKey } from "../kafka/transport.ts";
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
  transport: KafkaTransport,
  topics: Topics,
  from: string,
  to: string,
): Promise<RunSourceTopics> {
  const fromMs = parseTime("--from", from);
  const toMs = parseTime("--to", to);
  if (toMs <= fromMs) throw new Error("--to must be later than --from");
  const admin = transport.admin();
  try {
    await checkCoPartitioned((topic) => admin.partitions(topic), topics);
    const names = [topics.settlements, topics.deaths];
    const start: Record<string, string> = {};
    const end: Record<string, string> = {};
    for (const topic of names) {
      for (const [p, o] of await admin.offsetsAt(topic, fromMs)) start[tpKey(topic, p)] = o.toString();
      for (const [p, o] of await admin.offsetsAt(topic, toMs)) end[tpKey(topic, p)] = o.toString();
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
    await admin.close();
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
    transport: KafkaTransport;
    from?: TopicPosition;
    signal: AbortSignal;
    rate?: number;
    progress: Progress;
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
  // An unreachable registry (or an id it does not know yet) is waited out in the lanes, as a worker's
  // are; a stop ends the wait, and the run ends without a checkpoint after its last one.
  const stop = () => session.abort();
  opts.signal.addEventListener("abort", stop, { once: true });

  const onBatch = async ({ topic, partition, records }: FetchedBatch): Promise<boolean> => {
    const kind: InputKind = topic === settlementsTopic ? "settlement" : "death";
    for (const r of records) {
      if (opts.signal.aborted) return false;
      session.value(partition, kind, r.value, { topic, offset: String(r.offset) });
      next[tpKey(topic, partition)] = (r.offset + 1n).toString();
      processed++;
      const wait = limiter.delay();
      if (wait > 0) await sleep(wait);
      if ((processed & 1023) === 0) {
        opts.progress.update(doneBefore + processed, total);
        await session.room();
      }
      if (session.due) await session.checkpoint(position());
    }
    return true;
  };

  const readers = source.topics.map((topic) => {
    const ranges = new Map<number, { from: bigint; to: bigint }>();
    for (const k of remaining) {
      if (!k.startsWith(`${topic}:`)) continue;
      ranges.set(Number(k.slice(topic.length + 1)), {
        from: BigInt(next[k] as string),
        to: BigInt(source.end[k] as string),
      });
    }
    return { topic, ranges, batches: opts.transport.readRange({ topic, ranges })[Symbol.asyncIterator]() };
  });
  let outcome: "done" | "interrupted" = "done";
  try {
    let live = readers.filter((r) => r.ranges.size > 0);
    while (live.length > 0 && outcome === "done") {
      for (const reader of live) {
        const step = await reader.batches.next();
        if (step.done) {
          // Compaction (deaths.v1) leaves offset gaps: the end, not the last record, is where the partition is.
          for (const p of reader.ranges.keys())
            next[tpKey(reader.topic, p)] = source.end[tpKey(reader.topic, p)] as string;
          reader.ranges.clear();
        } else if (!(await onBatch(step.value))) {
          outcome = "interrupted";
          break;
        }
      }
      live = live.filter((r) => r.ranges.size > 0);
    }
  } finally {
    opts.signal.removeEventListener("abort", stop);
    await Promise.all(readers.map((r) => r.batches.return?.()));
  }
  if (opts.signal.aborted) outcome = "interrupted";
  await session.checkpoint(position());
  opts.progress.update(doneBefore + processed, total);
  return outcome;
}
