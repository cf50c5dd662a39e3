// Lanes, seen from the main thread (the worker's, detect's): each holds the engines of some
// partitions, in a worker thread (so one process uses every core) or inline on main. Main sends a
// partition's batches in source order and may run ahead of the lane by MAX_IN_FLIGHT batches
// (fetching and flushing meanwhile); past that it waits (the worker heartbeating) and reads nothing.
import { availableParallelism } from "node:os";
import { type TransferListItem, Worker } from "node:worker_threads";
import type { Settlement } from "../../schemas/index.ts";
import type { ConfigRecord } from "../dynamic-config/topic.ts";
import type { CheckAnswer } from "../engine/check.ts";
import type { EngineEvent } from "../engine/engine.ts";
import type { OutageListener } from "../health.ts";
import type { InputKind } from "../kafka/serde.ts";
import type { EntryArena } from "../worker/changelog.ts";
import type { LaneCore } from "./lane-core.ts";
import {
  type ActiveResult,
  type BatchResult,
  type DirtyResult,
  type FromLane,
  type LaneRequest,
  type LaneResult,
  type LaneSetup,
  type LocalCheckpoint,
  type OpenResult,
  packValues,
  type RecordArena,
  type ResumePolicy,
  type StateResult,
} from "./lane-protocol.ts";

/** Batches a lane may have unanswered before main waits for it: bounds memory, keeps the lane busy. */
const MAX_IN_FLIGHT = 4;

/** The default lane count: a thread per core but the one main needs, at most one per partition. */
export function laneCount(configured: number | undefined, partitions: number): number {
  if (configured !== undefined) return Math.min(configured, partitions);
  return Math.max(1, Math.min(availableParallelism() - 1, partitions));
}

// Compiled (dist/), a lane runs lane-thread.js itself; from the sources it needs an entry that registers tsx.
const LANE_ENTRY = new URL(
  import.meta.url.endsWith(".ts") ? "./lane-entry.js" : "./lane-thread.js",
  import.meta.url,
);

/** The buffers a request or result owns, moved rather than copied across threads. */
export function transferablesOf(x: LaneRequest | LaneResult): TransferListItem[] {
  const out: TransferListItem[] = [];
  const own = (a: ArrayBufferView) => {
    // Only a whole buffer moves: a view into a shared pool (Buffer's) would take the pool with it.
    if (a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && !out.includes(a.buffer as ArrayBuffer))
      out.push(a.buffer as ArrayBuffer);
  };
  const arena = (e: EntryArena) => {
    own(e.arena);
    own(e.keyEnds);
    own(e.valueEnds);
  };
  if ("op" in x) {
    if (x.op === "batch") {
      own(x.values.arena);
      own(x.values.ends);
    } else if (x.op === "lines") {
      own(x.lines.arena);
      own(x.lines.ends);
      own(x.meta);
    } else if (x.op === "restore") arena(x.entries);
  } else if ("states" in x) for (const s of x.states) arena(s);
  return out;
}

export class Lane {
  /** Partitions whose engines this lane holds. */
  readonly partitions = new Set<number>();
  private readonly worker: Worker | undefined;
  /** An inline lane's core, loaded on first use (a threaded lane's detectors stay off main). */
  private readonly inline: Promise<LaneCore> | undefined;
  private readonly pending = new Map<number, { resolve(r: LaneResult): void; reject(e: Error): void }>();
  private nextId = 0;
  private inFlight = 0;
  private waiters: (() => void)[] = [];
  private failure: Error | undefined;
  /** Ends an inline lane's registry wait (a thread's is ended by a message). */
  private readonly stopping = new AbortController();

  constructor(setup: LaneSetup, outages: OutageListener, o: { thread: boolean }) {
    if (!o.thread) {
      this.inline = import("./lane-core.ts").then(
        (m) => new m.LaneCore(setup, outages, this.stopping.signal),
      );
      return;
    }
    const worker = new Worker(LANE_ENTRY, { workerData: setup });
    this.worker = worker;
    worker.on("message", (m: FromLane) => {
      if ("outage" in m) {
        if (m.outage === "failing") outages.failing(m.dependency, new Error(m.reason), m.attempt, m.delayMs);
        else outages.recovered(m.dependency);
        return;
      }
      const waiting = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.ok) waiting?.resolve(m.result);
      else waiting?.reject(new Error(`lane failed: ${m.error}`));
    });
    const fail = (e: Error) => {
      this.failure ??= e;
      for (const w of this.pending.values()) w.reject(e);
      this.pending.clear();
      this.wake();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`lane thread exited with code ${code}`)));
  }

  /** Per partition, what its engine's store resumed from under `resume`, or null when it starts empty. */
  async open(partitions: number[], resume?: ResumePolicy): Promise<unknown[]> {
    for (const p of partitions) this.partitions.add(p);
    return ((await this.request({ op: "open", partitions, ...(resume ? { resume } : {}) })) as OpenResult)
      .resumed;
  }

  /** Commits the stores with the state of every batch sent before (see the request). */
  commit(note: unknown): Promise<void> {
    return this.request({ op: "commit", note }).then(() => undefined);
  }

  checkpointed(partition: number, checkpoint: LocalCheckpoint): void {
    this.request({ op: "checkpointed", partition, checkpoint }).catch(() => undefined);
  }

  restore(partition: number, entries: EntryArena): Promise<void> {
    return this.request({ op: "restore", partition, entries }).then(() => undefined);
  }

  drop(partitions: number[]): void {
    for (const p of partitions) this.partitions.delete(p);
    this.request({ op: "drop", partitions }).catch(() => undefined);
  }

  /** Sends a batch of Kafka values; the promise is its result. Call `room()` before the next. */
  batch(partition: number, kind: InputKind, values: readonly (Buffer | null)[]): Promise<BatchResult> {
    return this.counted({ op: "batch", partition, kind, values: packValues(values) });
  }

  /**
   * Sends NDJSON lines (their buffers move to the lane: the caller must not touch them again); the
   * promise is the batch's result. Call `room()` before the next.
   */
  lines(partition: number, lines: RecordArena, meta: Float64Array): Promise<BatchResult> {
    return this.counted({ op: "lines", partition, lines, meta });
  }

  /** Sends events decoded already (see the request); the promise is the batch's result. Call `room()` before the next. */
  events(partition: number, events: EngineEvent[]): Promise<BatchResult> {
    return this.counted({ op: "events", partition, events });
  }

  private counted(request: LaneRequest): Promise<BatchResult> {
    this.inFlight++;
    return (this.request(request) as Promise<BatchResult>).finally(() => {
      this.inFlight--;
      this.wake();
    });
  }

  /** Resolves once fewer than MAX_IN_FLIGHT batches are unanswered (at once if so already). */
  room(): Promise<void> {
    if (this.inFlight < MAX_IN_FLIGHT || this.failure) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  state(): Promise<StateResult> {
    return this.request({ op: "state" }) as Promise<StateResult>;
  }

  dirty(): Promise<DirtyResult> {
    return this.request({ op: "dirty" }) as Promise<DirtyResult>;
  }

  active(partitions: number[]): Promise<ActiveResult> {
    return this.request({ op: "active", partitions }) as Promise<ActiveResult>;
  }

  check(partition: number, settlement: Settlement): Promise<CheckAnswer> {
    return this.request({ op: "check", partition, settlement }) as Promise<CheckAnswer>;
  }

  config(record: ConfigRecord): void {
    this.request({ op: "config", record }).catch(() => undefined);
  }

  /**
   * Ends a registry wait under way (its batch fails) and every later one: on a stop, the final
   * flush takes what the lane processed before it.
   */
  abort(): void {
    this.stopping.abort(new Error("lane stopped while waiting for the registry"));
    this.worker?.postMessage({ abort: true });
  }

  /** Closes the lane's stores, then its thread. */
  async close(): Promise<void> {
    await this.request({ op: "close" }).catch(() => undefined);
    await this.worker?.terminate();
  }

  private request(request: LaneRequest): Promise<LaneResult> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.inline) return this.inline.then((core) => core.handle(request));
    const id = this.nextId++;
    const worker = this.worker as Worker;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, request }, transferablesOf(request));
    });
  }

  private wake(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }
}

/** Lanes fed no Avro (NDJSON lines, decoded events) wait out no registry: nothing to report. */
const NO_OUTAGES: OutageListener = { failing: () => undefined, recovered: () => undefined };

/** `count` lanes in threads, or one inline when `count` is 0; their registry waits told to `outages`. */
export function openLanes(count: number, setup: LaneSetup, outages: OutageListener = NO_OUTAGES): Lane[] {
  if (count === 0) return [new Lane(setup, outages, { thread: false })];
  return Array.from({ length: count }, () => new Lane(setup, outages, { thread: true }));
}

/** The lane a new partition goes to: the one holding the fewest. */
export const leastLoaded = (lanes: readonly Lane[]): Lane =>
  lanes.reduce((a, b) => (b.partitions.size < a.partitions.size ? b : a));
