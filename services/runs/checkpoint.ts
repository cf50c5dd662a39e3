// Checkpoints of a run under the data directory, so an interrupted run resumes where it stopped.
//
// <data dir>/fundguard-checkpoints/<run>/
//   meta.json   what the run executes (source, detectors, configs), written once
//   state.log   append-only, like a compacted changelog: the engine state entries changed since
//               the previous commit (`<engine>\t<key JSON>\t<value JSON | null>`, from
//               Engine.takeDirty), then one commit line (`C\t<commit JSON>`: input position,
//               counters, highest row version written). Lines after the last commit are an
//               unfinished checkpoint and are discarded. When superseded lines outweigh the live
//               ones (and 64 MiB), the log is rewritten with only the live lines (streamed).
//   lock        pid of the process executing the run
//
// A checkpoint is committed only after the suspect changes up to its position are in the store,
// so the store is never behind a checkpoint; rows written after it are repaired on resume.
import { closeSync, existsSync, openSync, readFileSync, readSync, unlinkSync, writeFileSync } from "node:fs";
import { type FileHandle, mkdir, open, rename, rm, truncate } from "node:fs/promises";
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
  /** engine → state key → latest value (deleted entries are absent), in log order of those values. */
  states: Map<number, Map<string, unknown>>;
}

export interface CheckpointOptions {
  /** The log is compacted once its superseded lines exceed both this and the live lines (default 64 MiB). */
  minCompactBytes?: number;
}

const MIN_COMPACT_BYTES = 64 << 20;
const WRITE_CHUNK = 4 << 20;

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
      writeFileSync(path, String(process.pid), { flag: "wx", mode: 0o600 });
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

/** Complete lines of a file (a torn last line without its newline is not returned), with byte offsets. */
function* logLines(path: string, limit = Number.POSITIVE_INFINITY): Generator<{ line: string; end: number }> {
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
        if (offset + nl + 1 > limit) return;
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

/** The `<engine>\t<key JSON>` prefix of an entry line, or undefined for a torn line. */
function entryKey(line: string): string | undefined {
  const second = line.indexOf("\t", line.indexOf("\t") + 1);
  return second < 0 ? undefined : line.slice(0, second);
}

/** Per key: its lines in the log, the size of the latest, and whether the latest deletes it. */
interface KeyInfo {
  count: number;
  bytes: number;
  deleted: boolean;
}

/** Pass 1 over the log: the keys up to the last commit, that commit, and where it ends. */
function scan(path: string): {
  keys: Map<string, KeyInfo>;
  commit: string | undefined;
  committedBytes: number;
} {
  const keys = new Map<string, KeyInfo>();
  let pending: { key: string; bytes: number; deleted: boolean }[] = [];
  let commit: string | undefined;
  let committedBytes = 0;
  if (!existsSync(path)) return { keys, commit, committedBytes };
  for (const { line, end } of logLines(path)) {
    if (line.startsWith("C\t")) {
      for (const p of pending) {
        const k = keys.get(p.key);
        if (k) {
          k.count++;
          k.bytes = p.bytes;
          k.deleted = p.deleted;
        } else keys.set(p.key, { count: 1, bytes: p.bytes, deleted: p.deleted });
      }
      pending = [];
      commit = line;
      committedBytes = end;
      continue;
    }
    const key = entryKey(line);
    if (key === undefined) break; // torn write: nothing after it was committed
    pending.push({ key, bytes: Buffer.byteLength(line) + 1, deleted: line.endsWith("\tnull") });
  }
  return { keys, commit, committedBytes };
}

export class Checkpoint {
  private handle: FileHandle | undefined;
  private bytes = 0;
  /** Every key in the log; live = not deleted. Only keys and sizes, never values, stay in memory. */
  private keys = new Map<string, KeyInfo>();
  private liveBytes = 0;
  private readonly minCompactBytes: number;
  /** Compactions done by this process (for tests and logs). */
  compactions = 0;

  private constructor(
    readonly dir: string,
    private readonly run: string,
    opts: CheckpointOptions,
  ) {
    this.minCompactBytes = opts.minCompactBytes ?? MIN_COMPACT_BYTES;
  }

  private get logPath(): string {
    return join(this.dir, "state.log");
  }

  static exists(dir: string): boolean {
    return existsSync(join(dir, "meta.json"));
  }

  /** A fresh checkpoint for a new run (an old one in `dir` is replaced). */
  static async create(
    dir: string,
    run: string,
    meta: unknown,
    opts: CheckpointOptions = {},
  ): Promise<Checkpoint> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    lock(dir, run);
    const c = new Checkpoint(dir, run, opts);
    await rm(c.logPath, { force: true });
    await writeAtomic(join(dir, "meta.json"), `${JSON.stringify(meta, null, 2)}\n`);
    c.handle = await open(c.logPath, "a", 0o600);
    return c;
  }

  /** Opens an existing checkpoint for resuming: the committed state, with any unfinished tail cut off. */
  static async resume<M>(
    dir: string,
    run: string,
    opts: CheckpointOptions = {},
  ): Promise<{ checkpoint: Checkpoint; loaded: LoadedCheckpoint<M> }> {
    if (!Checkpoint.exists(dir)) throw new Error(`run ${run} has no checkpoint in ${dir}: nothing to resume`);
    lock(dir, run);
    const c = new Checkpoint(dir, run, opts);
    const meta = JSON.parse(readFileSync(join(dir, "meta.json"), "utf8")) as M;
    const { keys, commit, committedBytes } = scan(c.logPath);
    // Pass 2: parse only the latest line of each live key.
    const states = new Map<number, Map<string, unknown>>();
    if (committedBytes > 0) {
      const seen = new Map<string, number>();
      for (const { line } of logLines(c.logPath, committedBytes)) {
        if (line.startsWith("C\t")) continue;
        const key = entryKey(line) as string;
        const info = keys.get(key) as KeyInfo;
        const n = (seen.get(key) ?? 0) + 1;
        seen.set(key, n);
        if (n < info.count || info.deleted) continue;
        const engine = Number(key.slice(0, key.indexOf("\t")));
        let m = states.get(engine);
        if (!m) {
          m = new Map();
          states.set(engine, m);
        }
        m.set(
          JSON.parse(key.slice(key.indexOf("\t") + 1)) as string,
          JSON.parse(line.slice(key.length + 1)) as unknown,
        );
      }
    }
    if (existsSync(c.logPath)) await truncate(c.logPath, committedBytes);
    c.keys = keys;
    c.bytes = committedBytes;
    for (const k of keys.values()) if (!k.deleted) c.liveBytes += k.bytes;
    c.handle = await open(c.logPath, "a", 0o600);
    return {
      checkpoint: c,
      loaded: { meta, commit: commit ? (JSON.parse(commit.slice(2)) as CommitRecord) : undefined, states },
    };
  }

  /** Appends the changed entries and a commit line, durably; compacts the log when it is mostly dead. */
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
      const deleted = d.value === null || d.value === undefined;
      const prefix = `${d.engine}\t${JSON.stringify(d.key)}`;
      const line = `${prefix}\t${deleted ? "null" : JSON.stringify(d.value)}\n`;
      const bytes = Buffer.byteLength(line);
      const k = this.keys.get(prefix);
      if (k && !k.deleted) this.liveBytes -= k.bytes;
      if (k) {
        k.count++;
        k.bytes = bytes;
        k.deleted = deleted;
      } else this.keys.set(prefix, { count: 1, bytes, deleted });
      if (!deleted) this.liveBytes += bytes;
      chunk.push(line);
      size += line.length;
      if (size >= WRITE_CHUNK) await write();
    }
    chunk.push(`C\t${JSON.stringify(record)}\n`);
    await write();
    await h.datasync();
    const dead = this.bytes - this.liveBytes;
    if (dead > this.minCompactBytes && dead > this.liveBytes) await this.compact();
  }

  /** Rewrites the log as its live lines plus the last commit, streaming (write, fsync, rename). */
  private async compact(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
    const tmp = `${this.logPath}.tmp`;
    const out = await open(tmp, "w", 0o600);
    let written = 0;
    try {
      const seen = new Map<string, number>();
      let lastCommit = "";
      let chunk: string[] = [];
      let size = 0;
      for (const { line } of logLines(this.logPath)) {
        if (line.startsWith("C\t")) {
          lastCommit = line;
          continue;
        }
        const key = entryKey(line) as string;
        const info = this.keys.get(key) as KeyInfo;
        const n = (seen.get(key) ?? 0) + 1;
        seen.set(key, n);
        if (n < info.count || info.deleted) continue;
        chunk.push(`${line}\n`);
        size += line.length + 1;
        if (size >= WRITE_CHUNK) {
          const text = chunk.join("");
          await out.write(text);
          written += Buffer.byteLength(text);
          chunk = [];
          size = 0;
        }
      }
      chunk.push(`${lastCommit}\n`);
      const text = chunk.join("");
      await out.write(text);
      written += Buffer.byteLength(text);
      await out.datasync();
    } finally {
      await out.close();
    }
    await rename(tmp, this.logPath);
    for (const [key, info] of this.keys) {
      if (info.deleted) this.keys.delete(key);
      else info.count = 1;
    }
    this.bytes = written;
    this.compactions++;
    this.handle = await open(this.logPath, "a", 0o600);
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

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  const h = await open(tmp, "w", 0o600);
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
