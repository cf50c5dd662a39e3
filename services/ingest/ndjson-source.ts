// Events from NDJSON files, merged as the contract says: each file in its own line order,
// the two merged by a stable two-way merge on settled_at / reported_at, never sorted.
import { DEFAULT_LIMITS, type Limits } from "../../schemas/limits.ts";
import type { EngineEvent } from "../engine/engine.ts";
import { type LineBatch, OverlongLine, readLineBatches } from "./lines.ts";
import { type Parsed, parseJsonLine, type Validators, validators } from "./validate.ts";

export interface BadLine {
  file: string;
  line: number;
  reason: string;
}

export interface SourcedEvent {
  event: EngineEvent;
  timeMs: number;
  file: string;
  line: number;
  /** The line as read (without its newline), for an archive of the input's own bytes. */
  text: string;
}

type Kind = EngineEvent["kind"];

/** One NDJSON line as an event, validated under the limits of `v`; undefined for a blank line. */
export function parseEventLine(
  kind: Kind,
  text: string | OverlongLine,
  v: Validators,
): Parsed<EngineEvent> | undefined {
  if (text instanceof OverlongLine) return { ok: false, reason: text.reason };
  if (text.trim() === "") return undefined;
  const json = parseJsonLine(text);
  const parsed = json.ok ? (v[kind] as (x: unknown) => Parsed<EngineEvent["value"]>)(json.value) : json;
  return parsed.ok ? { ok: true, value: { kind, value: parsed.value } as EngineEvent } : parsed;
}

export interface ReadOptions {
  limits?: Limits;
  /** Bytes of the file read so far (compressed bytes for .gz), for progress bars. */
  onRead?: (bytes: number) => void;
}

/** Reads one file's valid events in line order; bad lines go to `onBad` and are skipped. */
export async function* fileEvents(
  file: string,
  kind: Kind,
  onBad: (b: BadLine) => void,
  o: ReadOptions = {},
): AsyncGenerator<SourcedEvent[]> {
  const limits = o.limits ?? DEFAULT_LIMITS;
  const v = validators(limits);
  for await (const batch of readLineBatches(file, o.onRead, limits.maxMessageBytes))
    yield parseBatch(file, kind, batch, onBad, v);
}

function parseBatch(
  file: string,
  kind: Kind,
  batch: LineBatch,
  onBad: (b: BadLine) => void,
  v: Validators,
): SourcedEvent[] {
  const out: SourcedEvent[] = [];
  for (let i = 0; i < batch.lines.length; i++) {
    const line = batch.firstLine + i;
    const parsed = parseEventLine(kind, batch.lines[i] as string | OverlongLine, v);
    if (!parsed) continue;
    if (!parsed.ok) {
      onBad({ file, line, reason: parsed.reason });
      continue;
    }
    const event = parsed.value;
    const timeMs = Date.parse(event.kind === "settlement" ? event.value.settled_at : event.value.reported_at);
    out.push({ event, timeMs, file, line, text: batch.lines[i] as string });
  }
  return out;
}

/** A pull cursor over batches, so the merge below stays synchronous per item. */
class Cursor<T> {
  private batch: T[] = [];
  private i = 0;
  private done = false;
  constructor(private readonly source: AsyncIterator<T[]> | undefined) {
    if (!source) this.done = true;
  }
  async head(): Promise<T | undefined> {
    while (this.i >= this.batch.length && !this.done) {
      const r = await (this.source as AsyncIterator<T[]>).next();
      if (r.done) this.done = true;
      else {
        this.batch = r.value;
        this.i = 0;
      }
    }
    return this.batch[this.i];
  }
  advance(): void {
    this.i++;
  }
}

/** The contract's stable two-way merge of two sources in their own order: on equal times `a` goes first. */
export async function* mergeByTime<T extends { timeMs: number }>(
  a: AsyncIterator<T[]>,
  b: AsyncIterator<T[]> | undefined,
): AsyncGenerator<T> {
  const x = new Cursor(a);
  const y = new Cursor(b);
  for (;;) {
    const u = await x.head();
    const v = await y.head();
    if (!u && !v) return;
    if (u && (!v || u.timeMs <= v.timeMs)) {
      x.advance();
      yield u;
    } else if (v) {
      y.advance();
      yield v;
    }
  }
}

/** Valid events of the two files in the contract's merge order; bad lines go to `onBad`. */
export function mergedEvents(
  settlementsFile: string,
  deathsFile: string | undefined,
  onBad: (b: BadLine) => void,
  limits: Limits = DEFAULT_LIMITS,
): AsyncGenerator<SourcedEvent> {
  return mergeByTime(
    fileEvents(settlementsFile, "settlement", onBad, { limits }),
    deathsFile ? fileEvents(deathsFile, "death", onBad, { limits }) : undefined,
  );
}
