// `detect` on every core: the main thread reads both files, merges them as the contract says and
// routes each raw line by person to a shard (a worker thread with its own engine), the way the
// Kafka path partitions by person_id. Parsing, validation and detection run in the shards.
//
// Each person's events reach one shard in the merged order, and the engine's result does not
// depend on how different persons' events interleave, so the final suspects are those of one
// engine. As for a Kafka partition, retention is measured from the newest event of the shard.
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { Suspect } from "../../schemas/index.ts";
import type { EngineStats } from "../engine/engine.ts";
import { readLineBatches } from "../ingest/lines.ts";
import { type BadLine, mergeByTime } from "../ingest/ndjson-source.ts";
import { peekString } from "../ingest/peek.ts";
import { encodeMeta, type FromShard, type Kind, type ShardSetup, type ToShard } from "./protocol.ts";

export interface ShardedOptions {
  settlements: string;
  deaths?: string;
  reference?: string;
  retentionDays?: number;
  /** Worker threads (default: the machine's available parallelism, at most 8). */
  shards?: number;
}

export interface ShardedResult {
  suspects: Suspect[];
  events: number;
  stats: EngineStats;
}

const BATCH_LINES = 2_000;
/** Batches a shard may have queued before the reader waits for it: bounds memory, keeps shards busy. */
const MAX_IN_FLIGHT = 4;

export const defaultShards = () => Math.max(1, Math.min(availableParallelism(), 8));

interface Routed {
  text: string;
  meta: number;
  timeMs: number;
  shard: number;
}

/** FNV-1a: a stable spread of person ids over shards. */
function shardOf(personId: string, shards: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < personId.length; i++) {
    h ^= personId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % shards;
}

const TIME_KEY: Record<Kind, string> = { settlement: "settled_at", death: "reported_at" };

/**
 * Where a line goes and when it is merged. Lines the peek cannot read are parsed here; a line with
 * no person or time is bad whatever else it holds, so any shard can report it: it goes by line number.
 */
function route(text: string, line: number, kind: Kind, shards: number): Routed | undefined {
  if (text.length === 0 || (text.charCodeAt(0) <= 0x20 && text.trim() === "")) return undefined;
  // The person must be exact (it picks the engine); the time only orders the merge, and the
  // engine's result does not depend on the order, so the cheaper first-occurrence peek will do.
  let person = peekString(text, "person_id", true);
  let time = peekString(text, TIME_KEY[kind], false);
  if (person === undefined || time === undefined) {
    try {
      const v = JSON.parse(text) as Record<string, unknown> | null;
      person = typeof v?.person_id === "string" ? v.person_id : undefined;
      const t = v?.[TIME_KEY[kind]];
      time = typeof t === "string" ? t : undefined;
    } catch {
      person = undefined;
    }
  }
  const timeMs = time === undefined ? Number.NaN : Date.parse(time);
  const meta = encodeMeta(line, kind);
  if (person === undefined || Number.isNaN(timeMs)) {
    return { text, meta, timeMs: Number.NEGATIVE_INFINITY, shard: line % shards };
  }
  return { text, meta, timeMs, shard: shardOf(person, shards) };
}

async function* routedLines(file: string, kind: Kind, shards: number): AsyncGenerator<Routed[]> {
  for await (const batch of readLineBatches(file)) {
    const out: Routed[] = [];
    for (let i = 0; i < batch.lines.length; i++) {
      const r = route(batch.lines[i] as string, batch.firstLine + i, kind, shards);
      if (r) out.push(r);
    }
    yield out;
  }
}

/** A shard's worker thread, its outgoing batch and how many batches it has not acknowledged yet. */
class Shard {
  private readonly worker: Worker;
  private lines: string[] = [];
  private meta: number[] = [];
  private inFlight = 0;
  private wake: (() => void) | undefined;
  private failure: Error | undefined;
  readonly result: Promise<Extract<FromShard, { done: true }>>;

  constructor(setup: ShardSetup, onBad: (b: BadLine) => void) {
    this.worker = new Worker(new URL("./shard-entry.js", import.meta.url), { workerData: setup });
    this.result = new Promise((resolve, reject) => {
      const fail = (err: Error) => {
        this.failure = err;
        this.wake?.();
        reject(err);
      };
      this.worker.on("message", (m: FromShard) => {
        if ("done" in m) {
          resolve(m);
          return;
        }
        for (const b of m.bad) onBad(b);
        this.inFlight--;
        this.wake?.();
      });
      this.worker.on("error", fail);
      this.worker.on("exit", (code) => fail(new Error(`detect shard exited with code ${code}`)));
    });
    // Failures surface through push/finish; this keeps an early one from being unhandled meanwhile.
    this.result.catch(() => undefined);
  }

  /** Queues a line; true when the batch is full and wants a flush. */
  push(r: Routed): boolean {
    this.lines.push(r.text);
    this.meta.push(r.meta);
    return this.lines.length >= BATCH_LINES;
  }

  async flush(): Promise<void> {
    if (this.lines.length > 0) {
      this.send({ lines: this.lines, meta: this.meta });
      this.inFlight++;
      this.lines = [];
      this.meta = [];
    }
    while (this.inFlight >= MAX_IN_FLIGHT && !this.failure) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
    if (this.failure) throw this.failure;
  }

  async finish(): Promise<Extract<FromShard, { done: true }>> {
    await this.flush();
    this.send({ end: true });
    try {
      return await this.result;
    } finally {
      await this.worker.terminate();
    }
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }

  private send(m: ToShard): void {
    this.worker.postMessage(m);
  }
}

export async function detectSharded(o: ShardedOptions, onBad: (b: BadLine) => void): Promise<ShardedResult> {
  const n = o.shards ?? defaultShards();
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`shards must be a positive integer, got ${n}`);
  const setup: ShardSetup = {
    files: { settlement: o.settlements, death: o.deaths ?? "" },
    reference: o.reference,
    retentionDays: o.retentionDays,
  };
  const shards = Array.from({ length: n }, () => new Shard(setup, onBad));
  try {
    const merged = mergeByTime(
      routedLines(o.settlements, "settlement", n),
      o.deaths ? routedLines(o.deaths, "death", n) : undefined,
    );
    for await (const r of merged) {
      const shard = shards[r.shard] as Shard;
      if (shard.push(r)) await shard.flush();
    }
    const results = await Promise.all(shards.map((s) => s.finish()));
    const stats: EngineStats = { settlements: 0, reversals: 0, deaths: 0, duplicates: 0, tooLate: 0 };
    for (const r of results)
      for (const k of Object.keys(stats) as (keyof EngineStats)[]) stats[k] += r.stats[k];
    return {
      suspects: results.flatMap((r) => r.suspects),
      events: results.reduce((a, r) => a + r.events, 0),
      stats,
    };
  } finally {
    await Promise.all(shards.map((s) => s.terminate()));
  }
}
