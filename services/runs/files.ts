// A run over NDJSON files: the contract's merge (mergedEvents) into one engine (on a lane), exactly
// as `detect` reads them. Position = events taken from the merge; resuming re-reads the files and
// skips that many (parsing only), and bad lines already reported are not reported twice.
import { statSync } from "node:fs";
import { resolve } from "node:path";
import type { Limits } from "../../schemas/limits.ts";
import { type BadLine, mergedEvents } from "../ingest/ndjson-source.ts";
import { countLines, type Progress } from "./progress.ts";
import { RateLimiter, type RunSession, sleep } from "./session.ts";
import type { RunSourceFiles } from "./table.ts";

export interface FilePosition {
  events: number;
  /** file → highest bad line reported (bad lines are found in read-ahead, past `events`). */
  lastBadLine: Record<string, number>;
}

export interface FileIdentity {
  path: string;
  size: number;
  mtimeMs: number;
}

export function fileSource(settlements: string, deaths: string | undefined): RunSourceFiles {
  for (const f of [settlements, deaths]) if (f) statSync(f); // fail early on a missing file
  return { kind: "files", settlements: resolve(settlements), deaths: deaths ? resolve(deaths) : null };
}

export function identities(s: RunSourceFiles): FileIdentity[] {
  return [s.settlements, s.deaths]
    .filter((p): p is string => p !== null)
    .map((path) => {
      const st = statSync(path);
      return { path, size: st.size, mtimeMs: st.mtimeMs };
    });
}

/** Resuming needs the very same files: the position counts events of their merge. */
export function checkUnchanged(before: readonly FileIdentity[]): void {
  for (const f of before) {
    const st = statSync(f.path);
    if (st.size !== f.size || st.mtimeMs !== f.mtimeMs) {
      throw new Error(`${f.path} changed since the run started (size or modification time): cannot resume`);
    }
  }
}

export async function runFiles(
  session: RunSession,
  source: RunSourceFiles,
  opts: {
    from?: FilePosition;
    signal: AbortSignal;
    rate?: number;
    progress: Progress;
    onBad: (b: BadLine) => void;
    limits?: Limits;
  },
): Promise<"done" | "interrupted"> {
  const skip = opts.from?.events ?? 0;
  const lastBadLine: Record<string, number> = { ...opts.from?.lastBadLine };
  const position = (events: number): FilePosition => ({ events, lastBadLine: { ...lastBadLine } });
  const limiter = new RateLimiter(opts.rate);
  let total: number | undefined;
  if (process.stderr.isTTY) {
    // Only worth a pass over the files when a bar is drawn (counting lines is cheap next to the engine).
    const files = [source.settlements, source.deaths].filter((p): p is string => p !== null);
    total = (await Promise.all(files.map(countLines))).reduce((a, b) => a + b, 0);
  }
  let taken = 0;
  const onBad = (b: BadLine) => {
    if (b.line <= (lastBadLine[b.file] ?? 0)) return;
    lastBadLine[b.file] = b.line;
    session.bad();
    opts.onBad(b);
  };
  const events = mergedEvents(source.settlements, source.deaths ?? undefined, onBad, opts.limits);
  for await (const { event } of events) {
    if (taken < skip) {
      taken++;
      continue;
    }
    if (opts.signal.aborted) {
      await session.checkpoint(position(taken));
      return "interrupted";
    }
    session.event(0, event);
    taken++;
    const wait = limiter.delay();
    if (wait > 0) await sleep(wait);
    if ((taken & 1023) === 0) {
      opts.progress.update(taken + session.badEvents, total);
      await session.room();
    }
    if (session.due) await session.checkpoint(position(taken));
  }
  await session.checkpoint(position(taken));
  opts.progress.update(taken + session.badEvents, total);
  return "done";
}
