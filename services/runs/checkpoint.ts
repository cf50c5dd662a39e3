// Checkpoints of a run under the data directory, so an interrupted run resumes where it stopped.
//
// <data dir>/fundguard-checkpoints/<run>/
//   meta.json   what the run executes (source, detectors, configs), written once
//   state.log   append-only, like a compacted changelog: the engine state entries changed since
//               the previous commit (`<engine>\t<key JSON>\t<value JSON | null>`, from
//               Engine.takeDirty), then one commit line (`C\t<commit JSON>`: input position,
//               counters, highest row version written).
//               Lines after the last commit are an unfinished checkpoint and are discarded.
//               When the log outgrows twice its live size it is folded into one commit.
//   lock        pid of the process executing the run
//
// A checkpoint is committed only after the suspect changes up to its position are in the store,
// so the store is never behind a checkpoint; rows written after it are repaired on resume.
import { closeSync, existsSync, openSync, readFileSync, readSync, unlinkSync, writeFileSync } from "node:fs";
import { type FileHandle, mkdir, open, rename, rm, stat, truncate } from "node:fs/promises";
import { join } from "node:path";
import type { EngineStats } from "../engine/engine.ts";

export interface CommitRecord {
  /** Source position after the last event processed: see the source modules. */
  position: unknown;
  events: number;
  badEvents: number;
  /** Per engine key. */
  stats: Record<string, EngineStats>;
  /** Highest suspect row version written before this commit. */
  maxVersion: number;
  at: string;
}

/** A state entry of one engine, as Engine.takeDirty gives it (null value: deleted). */
export interface DirtyEntry {
  engine: number;
  key: string;
  value: unknown;
}

export interface LoadedCheckpoint<M> {
  meta: M;
  commit: CommitRecord | undefined;
  /** engine → state key → latest value (deleted entries are absent), in first-written order. */
  states: Map<number, Map<string, unknown>>;
}

const MIN_COMPACT_BYTES = 64 << 20;

export function checkpointDir(dataDir: string, run: string): string {
  return join(dataDir, "fundguard-checkpoints", run);
}

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
};

/** The pid of the live process executing `run` (from its lock), if any. */
export function runHolder(dataDir: string, run: string): number | undefined {
  const path = join(checkpointDir(dataDir, run), "lock");
  if (!existsSync(path)) return undefined;
  const pid = Number(readFileSync(path, "utf8").trim());
  return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
}

/** Takes the run's lock; fails if another live process holds it. */
function lock(dir: string, run: string): void {
  const path = join(dir, "lock");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, String(process.pid), { flag: "wx" });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const pid = Number(readFileSync(path, "utf8").trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new Error(`run ${run} is being executed by process ${pid} (lock ${path})`);
      }
      unlinkSync(path); // left by a process that died
    }
  }
  throw new Error(`could not take the lock ${path}`);
}

/** Splits the log into committed content; returns the byte length of the committed prefix. */
function* logLines(path: string): Generator<{ line: string; end: number }> {
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(1 << 20);
    let carry = Buffer.alloc(0);
    let offset = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      let chunk = Buffer.concat([carry, buf.subarray(0, n)]);
      let nl = chunk.indexOf(10);
      while (nl >= 0) {
        const line = chunk.subarray(0, nl).toString("utf8");
        offset += nl + 1;
        yield { line, end: offset };
        chunk = chunk.subarray(nl + 1);
        nl = chunk.indexOf(10);
      }
      carry = Buffer.from(chunk);
    }
  } finally {
    closeSync(fd);
  }
}

/** Folds the log: the latest line per (engine, key) up to the last commit, and that commit. */
function fold(path: string): {
  latest: Map<string, string>;
  commit: string | undefined;
  committedBytes: number;
} {
  const latest = new Map<string, string>();
  let pending = new Map<string, string>();
  let commit: string | undefined;
  let committedBytes = 0;
  if (!existsSync(path)) return { latest, commit, committedBytes };
  for (const { line, end } of logLines(path)) {
    if (line.startsWith("C\t")) {
      for (const [k, v] of pending) latest.set(k, v);
      pending = new Map();
      commit = line;
      committedBytes = end;
      continue;
    }
    const second = line.indexOf("\t", line.indexOf("\t") + 1);
    if (second < 0) break; // torn write: nothing after it was committed
    pending.set(line.slice(0, second), line);
  }
  return { latest, commit, committedBytes };
}

export class Checkpoint {
  private handle: FileHandle | undefined;
  private bytes = 0;
  private compactAt = MIN_COMPACT_BYTES;

  private constructor(
    readonly dir: string,
    private readonly run: string,
  ) {}

  private get logPath(): string {
    return join(this.dir, "state.log");
  }

  static exists(dir: string): boolean {
    return existsSync(join(dir, "meta.json"));
  }

  /** A fresh checkpoint for a new run (an old one in `dir` is replaced). */
  static async create(dir: string, run: string, meta: unknown): Promise<Checkpoint> {
    await mkdir(dir, { recursive: true });
    lock(dir, run);
    const c = new Checkpoint(dir, run);
    await rm(c.logPath, { force: true });
    await writeAtomic(join(dir, "meta.json"), `${JSON.stringify(meta, null, 2)}\n`);
    c.handle = await open(c.logPath, "a");
    return c;
  }

  /** Opens an existing checkpoint for resuming: the committed state, with any unfinished tail cut off. */
  static async resume<M>(
    dir: string,
    run: string,
  ): Promise<{ checkpoint: Checkpoint; loaded: LoadedCheckpoint<M> }> {
    if (!Checkpoint.exists(dir)) throw new Error(`run ${run} has no checkpoint in ${dir}: nothing to resume`);
    lock(dir, run);
    const c = new Checkpoint(dir, run);
    const meta = JSON.parse(readFileSync(join(dir, "meta.json"), "utf8")) as M;
    const { latest, commit, committedBytes } = fold(c.logPath);
    if (existsSync(c.logPath)) await truncate(c.logPath, committedBytes);
    const states = new Map<number, Map<string, unknown>>();
    let live = 0;
    for (const line of latest.values()) {
      const [e, k, v] = splitEntry(line);
      if (v === "null") continue;
      live += line.length + 1;
      let m = states.get(Number(e));
      if (!m) {
        m = new Map();
        states.set(Number(e), m);
      }
      m.set(JSON.parse(k) as string, JSON.parse(v) as unknown);
    }
    c.bytes = committedBytes;
    c.compactAt = Math.max(MIN_COMPACT_BYTES, 2 * live);
    c.handle = await open(c.logPath, "a");
    return {
      checkpoint: c,
      loaded: { meta, commit: commit ? (JSON.parse(commit.slice(2)) as CommitRecord) : undefined, states },
    };
  }

  /** Appends the changed entries and a commit line, durably; folds the log when it has grown. */
  async commit(dirty: readonly DirtyEntry[], record: CommitRecord): Promise<void> {
    const h = this.handle;
    if (!h) throw new Error("checkpoint is closed");
    let chunk: string[] = [];
    let size = 0;
    const write = async () => {
      const text = chunk.join("");
      await h.write(text);
      this.bytes += Buffer.byteLength(text);
      chunk = [];
      size = 0;
    };
    for (const d of dirty) {
      const value = d.value === null || d.value === undefined ? "null" : JSON.stringify(d.value);
      const line = `${d.engine}\t${JSON.stringify(d.key)}\t${value}\n`;
      chunk.push(line);
      size += line.length;
      if (size >= 4 << 20) await write();
    }
    chunk.push(`C\t${JSON.stringify(record)}\n`);
    await write();
    await h.datasync();
    if (this.bytes >= this.compactAt) await this.compact();
  }

  /** Rewrites the log as its live content plus the last commit (write, fsync, rename). */
  private async compact(): Promise<void> {
    await this.handle?.close();
    const { latest, commit } = fold(this.logPath);
    const tmp = `${this.logPath}.tmp`;
    const out = await open(tmp, "w");
    let live = 0;
    try {
      let chunk: string[] = [];
      let size = 0;
      for (const line of latest.values()) {
        if (line.endsWith("\tnull")) continue;
        chunk.push(`${line}\n`);
        size += line.length + 1;
        if (size >= 4 << 20) {
          await out.write(chunk.join(""));
          live += size;
          chunk = [];
          size = 0;
        }
      }
      if (commit) chunk.push(`${commit}\n`);
      await out.write(chunk.join(""));
      live += size;
      await out.datasync();
    } finally {
      await out.close();
    }
    await rename(tmp, this.logPath);
    this.bytes = (await stat(this.logPath)).size;
    this.compactAt = Math.max(MIN_COMPACT_BYTES, 2 * live);
    this.handle = await open(this.logPath, "a");
  }

  /** Releases the lock; the checkpoint stays for a later resume. */
  async close(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
    await rm(join(this.dir, "lock"), { force: true });
  }

  /** Deletes the checkpoint (the run finished). */
  async remove(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
    await rm(this.dir, { recursive: true, force: true });
  }

  get logBytes(): number {
    return this.bytes;
  }

  get name(): string {
    return this.run;
  }
}

function splitEntry(line: string): [string, string, string] {
  const a = line.indexOf("\t");
  const b = line.indexOf("\t", a + 1);
  return [line.slice(0, a), line.slice(a + 1, b), line.slice(b + 1)];
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  const h = await open(tmp, "w");
  try {
    await h.write(text);
    await h.datasync();
  } finally {
    await h.close();
  }
  await rename(tmp, path);
}

/** Deletes a run's checkpoint directory if there is one (runs drop). */
export async function removeCheckpoint(dataDir: string, run: string): Promise<void> {
  await rm(checkpointDir(dataDir, run), { recursive: true, force: true });
}
