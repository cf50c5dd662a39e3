// `detect` on every core: the main thread reads both files, merges them as the contract says and
// routes each raw line by person to a shard (a partition of its own in a lane: a worker thread with
// its engine, the worker's lanes), the way the Kafka path partitions by person_id. Decoding,
// parsing, validation and detection run in the lanes.
//
// Each person's events reach one shard in the merged order, and the engine's result does not
// depend on how different persons' events interleave, so the final suspects are those of one
// engine. As for a Kafka partition, retention is measured from the newest event of the shard.
import { statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { DEFAULT_LIMITS, type Limits, type Suspect } from "../../schemas/index.ts";
import { addStats, type EngineStats, emptyStats } from "../engine/engine.ts";
import { type LineSink, LineSplitter, openNdjson } from "../ingest/lines.ts";
import { type BadLine, mergeByTime } from "../ingest/ndjson-source.ts";
import { keyNeedle, peekValue } from "../ingest/peek.ts";
import type { InputKind as Kind } from "../kafka/serde.ts";
import { encodeLineMeta, type LaneSetup, lineMetaKind, lineMetaLine } from "../pipeline/lane-protocol.ts";
import { type Lane, openLanes } from "../pipeline/lanes.ts";

export interface ShardedOptions {
  settlements: string;
  deaths?: string;
  reference?: string;
  retentionDays?: number;
  latenessDays?: number;
  /** Detector id → config, already checked (checkDetectorConfig); absent ids run on their defaults. */
  configs?: Record<string, unknown>;
  /**
   * Worker threads (default: the machine's available parallelism, at most 8; for an input under
   * INLINE_BYTES, one engine on the main thread, since starting threads would cost more than it saves).
   */
  shards?: number;
  limits?: Limits;
}

export interface ShardedResult {
  suspects: Suspect[];
  events: number;
  stats: EngineStats;
}

/** A batch's buffer, and the fill at which it is sent: lines up to the difference never need a bigger one. */
const BATCH_BYTES = 4 << 20;
const SEND_AT = BATCH_BYTES - (256 << 10);
const defaultShards = () => Math.max(1, Math.min(availableParallelism(), 8));
/** Inputs smaller than this (uncompressed, estimated) run on the main thread: a few thousand settlements. */
const INLINE_BYTES = 8 << 20;
const GZIP_RATIO = 8;

/** Whether `detect` with the default shard count runs its one engine on the main thread. */
export function runsInline(files: (string | undefined)[]): boolean {
  let n = 0;
  for (const f of files) if (f) n += statSync(f).size * (f.endsWith(".gz") ? GZIP_RATIO : 1);
  return n < INLINE_BYTES;
}

/** One raw line: bytes [start, end) of `chunk`, where it goes, and its time for the merge. */
interface Routed {
  chunk: Buffer;
  start: number;
  end: number;
  meta: number;
  timeMs: number;
  shard: number;
}

/**
 * FNV-1a over bytes: a stable spread of person ids over shards. Not kafkajs's murmur2 (the Kafka
 * partitioner): that one costs about 1.8 µs a key on the reading thread, FNV a fiftieth of it.
 */
function fnv1a(bytes: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) {
    h ^= bytes[i] as number;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const PERSON = keyNeedle("person_id");
const TIME_KEY: Record<Kind, string> = { settlement: "settled_at", death: "reported_at" };
const TIME: Record<Kind, Buffer> = { settlement: keyNeedle("settled_at"), death: keyNeedle("reported_at") };

/** Routing from a parsed line, for lines the byte peek declines: the same hash of the same bytes. */
function parsedRoute(line: Buffer, kind: Kind): { shardHash?: number; time?: string } {
  try {
    const v = JSON.parse(line.toString("utf8")) as Record<string, unknown> | null;
    const person = v?.person_id;
    const time = v?.[TIME_KEY[kind]];
    const bytes = typeof person === "string" ? Buffer.from(person, "utf8") : undefined;
    return {
      shardHash: bytes && fnv1a(bytes, 0, bytes.length),
      time: typeof time === "string" ? time : undefined,
    };
  } catch {
    return {};
  }
}

/**
 * Where a line goes and when it is merged. The person must be exact (it picks the engine); the
 * time only orders the merge, and the engine's result does not depend on the order, so the
 * cheaper first-occurrence peek does for it. A line with no person or time is bad (or blank)
 * whatever else it holds, so any shard can report (or skip) it: it goes by line number.
 */
function route(
  chunk: Buffer,
  start: number,
  end: number,
  lineNo: number,
  kind: Kind,
  shards: number,
): Routed {
  const line = chunk.subarray(start, end);
  const p = peekValue(line, PERSON, true);
  const t = peekValue(line, TIME[kind], false);
  let shardHash = p && fnv1a(line, p[0], p[1]);
  let time = t && line.toString("latin1", t[0], t[1]);
  if (shardHash === undefined || time === undefined) ({ shardHash, time } = parsedRoute(line, kind));
  const timeMs = time === undefined ? Number.NaN : Date.parse(time);
  const meta = encodeLineMeta(lineNo, kind);
  if (shardHash === undefined || Number.isNaN(timeMs)) {
    return { chunk, start, end, meta, timeMs: Number.NEGATIVE_INFINITY, shard: lineNo % shards };
  }
  return { chunk, start, end, meta, timeMs, shard: shardHash % shards };
}

/** The lines of a file (plain or gzip) as routed byte ranges, a chunk at a time; overlong ones go to `onBad`. */
async function* routedLines(
  file: string,
  kind: Kind,
  shards: number,
  maxLineBytes: number,
  onBad: (b: BadLine) => void,
): AsyncGenerator<Routed[]> {
  const stream: AsyncIterable<Buffer> = openNdjson(file);
  const splitter = new LineSplitter(maxLineBytes);
  let out: Routed[] = [];
  const sink: LineSink = {
    line: (buf, start, end, lineNo) => out.push(route(buf, start, end, lineNo, kind, shards)),
    overlong: (line, o) => onBad({ file, line, reason: o.reason }),
  };
  for await (const data of stream) {
    splitter.push(data, sink);
    yield out;
    out = [];
  }
  splitter.end(sink);
  yield out;
}

/** A lane's whole answer for its partition once every batch is in. */
interface ShardResult {
  suspects: Suspect[];
  stats: EngineStats;
  events: number;
}

/** A shard: the batch it is filling, and the lane (a worker thread, or inline) whose engine it feeds. */
class Shard {
  private bytes = Buffer.allocUnsafeSlow(BATCH_BYTES);
  private used = 0;
  private ends: number[] = [];
  private meta: number[] = [];
  private readonly unanswered = new Set<Promise<void>>();
  private failure: unknown;
  private events = 0;

  constructor(
    private readonly lane: Lane,
    /** Its partition in the lane. */
    private readonly index: number,
    private readonly files: Record<Kind, string>,
    private readonly onBad: (b: BadLine) => void,
  ) {}

  /** Queues a line; true when the batch is full and wants a flush. */
  push(r: Routed): boolean {
    const size = r.end - r.start;
    if (this.used + size > this.bytes.length) this.grow(size);
    r.chunk.copy(this.bytes, this.used, r.start, r.end);
    this.used += size;
    this.ends.push(this.used);
    this.meta.push(r.meta);
    return this.used >= SEND_AT;
  }

  async flush(): Promise<void> {
    if (this.ends.length > 0) {
      // Buffers of their own (allocUnsafeSlow, typed arrays), so they move to the lane without a copy.
      const meta = this.meta;
      const answered = this.lane
        .lines(this.index, { arena: this.bytes, ends: Int32Array.from(this.ends) }, Float64Array.from(meta))
        .then(
          (r) => {
            this.events += r.events;
            for (const b of r.bad) {
              const m = meta[b.index] as number;
              this.onBad({ file: this.files[lineMetaKind(m)], line: lineMetaLine(m), reason: b.reason });
            }
          },
          (e: unknown) => {
            this.failure ??= e;
          },
        );
      this.unanswered.add(answered);
      void answered.finally(() => this.unanswered.delete(answered));
      this.bytes = Buffer.allocUnsafeSlow(BATCH_BYTES);
      this.used = 0;
      this.ends = [];
      this.meta = [];
    }
    await this.lane.room();
    if (this.failure) throw this.failure;
  }

  async finish(): Promise<ShardResult> {
    await this.flush();
    await Promise.all(this.unanswered);
    if (this.failure) throw this.failure;
    const { suspects, stats } = await this.lane.active([this.index]);
    return { suspects, stats, events: this.events };
  }

  /** Room for a line longer than what is left. */
  private grow(size: number): void {
    const next = Buffer.allocUnsafeSlow(Math.max(this.bytes.length * 2, this.used + size));
    this.bytes.copy(next, 0, 0, this.used);
    this.bytes = next;
  }
}

export async function detectSharded(o: ShardedOptions, onBad: (b: BadLine) => void): Promise<ShardedResult> {
  const inline = o.shards === undefined && runsInline([o.settlements, o.deaths]);
  const n = o.shards ?? (inline ? 1 : defaultShards());
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`shards must be a positive integer, got ${n}`);
  const limits = o.limits ?? DEFAULT_LIMITS;
  const setup: LaneSetup = {
    limits,
    detectors: { reference: o.reference, configs: o.configs },
    retentionDays: o.retentionDays,
    latenessDays: o.latenessDays,
    changelog: false,
    changes: false,
  };
  const files: Record<Kind, string> = { settlement: o.settlements, death: o.deaths ?? "" };
  // Inline, the one engine is on this thread (loaded only then: threads keep the detectors off it).
  const lanes = openLanes(inline ? 0 : n, setup);
  try {
    await Promise.all(lanes.map((lane, i) => lane.open([i])));
    const shards = lanes.map((lane, i) => new Shard(lane, i, files, onBad));
    const lines = (file: string, kind: Kind) => routedLines(file, kind, n, limits.maxMessageBytes, onBad);
    const merged = mergeByTime(
      lines(o.settlements, "settlement"),
      o.deaths ? lines(o.deaths, "death") : undefined,
    );
    for await (const r of merged) {
      const shard = shards[r.shard] as Shard;
      if (shard.push(r)) await shard.flush();
    }
    const results = await Promise.all(shards.map((s) => s.finish()));
    const stats = emptyStats();
    for (const r of results) addStats(stats, r.stats);
    return {
      suspects: results.flatMap((r) => r.suspects),
      events: results.reduce((a, r) => a + r.events, 0),
      stats,
    };
  } finally {
    await Promise.all(lanes.map((l) => l.close()));
  }
}
