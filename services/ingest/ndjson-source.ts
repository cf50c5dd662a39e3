// Events from NDJSON files, merged as the contract says: each file in its own line order,
// the two merged by a stable two-way merge on settled_at / reported_at, never sorted.
import type { EngineEvent } from "../engine/engine.ts";
import { type LineBatch, readLineBatches } from "./lines.ts";
import { type Parsed, parseJsonLine, validateDeathRecord, validateSettlement } from "./validate.ts";

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
}

type Kind = EngineEvent["kind"];

const validators: Record<Kind, (v: unknown) => Parsed<EngineEvent["value"]>> = {
  settlement: validateSettlement,
  death: validateDeathRecord,
};

/** One NDJSON line as an event; undefined for a blank line. */
export function parseEventLine(kind: Kind, text: string): Parsed<EngineEvent> | undefined {
  if (text.trim() === "") return undefined;
  const json = parseJsonLine(text);
  const parsed = json.ok ? validators[kind](json.value) : json;
  return parsed.ok ? { ok: true, value: { kind, value: parsed.value } as EngineEvent } : parsed;
}

/** Reads one file's valid events in line order; bad lines go to `onBad` and are skipped. */
async function* fileEvents(
  file: string,
  kind: Kind,
  onBad: (b: BadLine) => void,
): AsyncGenerator<SourcedEvent[]> {
  for await (const batch of readLineBatches(file)) yield parseBatch(file, kind, batch, onBad);
}

function parseBatch(file: string, kind: Kind, batch: LineBatch, onBad: (b: BadLine) => void): SourcedEvent[] {
  const out: SourcedEvent[] = [];
  for (let i = 0; i < batch.lines.length; i++) {
    const line = batch.firstLine + i;
    const parsed = parseEventLine(kind, batch.lines[i] as string);
    if (!parsed) continue;
    if (!parsed.ok) {
      onBad({ file, line, reason: parsed.reason });
      continue;
    }
    const event = parsed.value;
    const timeMs = Date.parse(event.kind === "settlement" ? event.value.settled_at : event.value.reported_at);
    out.push({ event, timeMs, file, line });
  }
  return out;
}

/** A pull cursor over batches, so the merge below stays synchronous per event. */
class Cursor {
  private batch: SourcedEvent[] = [];
  private i = 0;
  private done = false;
  constructor(private readonly source: AsyncGenerator<SourcedEvent[]> | undefined) {
    if (!source) this.done = true;
  }
  async head(): Promise<SourcedEvent | undefined> {
    while (this.i >= this.batch.length && !this.done) {
      const r = await (this.source as AsyncGenerator<SourcedEvent[]>).next();
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

/** Stable two-way merge: on equal times the settlement goes first. */
export async function* mergedEvents(
  settlementsFile: string,
  deathsFile: string | undefined,
  onBad: (b: BadLine) => void,
): AsyncGenerator<SourcedEvent> {
  const a = new Cursor(fileEvents(settlementsFile, "settlement", onBad));
  const b = new Cursor(deathsFile ? fileEvents(deathsFile, "death", onBad) : undefined);
  for (;;) {
    const x = await a.head();
    const y = await b.head();
    if (!x && !y) return;
    if (x && (!y || x.timeMs <= y.timeMs)) {
      a.advance();
      yield x;
    } else if (y) {
      b.advance();
      yield y;
    }
  }
}
