// Streaming NDJSON output with bounded memory: lines are batched into chunks, the writer
// honours back-pressure, and settlements wait in a small heap only until their write time
// (late arrivals are written up to a few days after their settled_at).
import { once } from "node:events";
import { createWriteStream, type WriteStream } from "node:fs";
import type { Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { createGzip } from "node:zlib";

const CHUNK_CHARS = 1 << 18;

/** Where one generated stream goes: a file, or a caller's function. */
export interface LineOutput {
  write(line: string): void;
  readonly needsDrain: boolean;
  drain(): Promise<void>;
  close(): Promise<void>;
  readonly lines: number;
  readonly bytes: number;
}

/** Hands each line to a function, synchronously, in stream order. */
export class CallbackOutput implements LineOutput {
  lines = 0;
  bytes = 0;
  readonly needsDrain = false;
  constructor(private readonly fn: (line: string) => void) {}
  write(line: string): void {
    this.lines++;
    this.bytes += line.length + 1;
    this.fn(line);
  }
  async drain(): Promise<void> {}
  async close(): Promise<void> {}
}

export class NdjsonWriter implements LineOutput {
  private readonly file: WriteStream;
  private readonly stream: Writable;
  private chunk: string[] = [];
  private size = 0;
  private waiting = false;
  lines = 0;

  constructor(
    readonly path: string,
    gzip: boolean,
  ) {
    this.file = createWriteStream(path);
    if (gzip) {
      const gz = createGzip({ level: 4 });
      gz.pipe(this.file);
      this.stream = gz;
    } else this.stream = this.file;
  }

  write(line: string): void {
    this.chunk.push(line, "\n");
    this.size += line.length + 1;
    this.lines++;
    if (this.size >= CHUNK_CHARS) this.flushChunk();
  }

  private flushChunk(): void {
    if (this.size === 0) return;
    const text = this.chunk.join("");
    this.chunk = [];
    this.size = 0;
    if (!this.stream.write(text)) this.waiting = true;
  }

  get needsDrain(): boolean {
    return this.waiting;
  }

  async drain(): Promise<void> {
    if (!this.waiting) return;
    if (this.stream.writableNeedDrain) await once(this.stream, "drain");
    this.waiting = false;
  }

  async close(): Promise<void> {
    this.flushChunk();
    this.stream.end();
    await finished(this.file);
  }

  get bytes(): number {
    return this.file.bytesWritten;
  }
}

interface Pending {
  ms: number;
  seq: number;
  line: string;
}

/** Binary min-heap on (write time, sequence): stable for equal times. */
export class WriteQueue {
  private readonly heap: Pending[] = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  push(ms: number, line: string): void {
    const h = this.heap;
    h.push({ ms, seq: this.seq++, line });
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!less(h[i] as Pending, h[parent] as Pending)) break;
      [h[i], h[parent]] = [h[parent] as Pending, h[i] as Pending];
      i = parent;
    }
  }

  /** Pops entries due strictly before `ms`. */
  *due(ms: number): Generator<string> {
    const h = this.heap;
    while (h.length > 0 && (h[0] as Pending).ms < ms) {
      const top = h[0] as Pending;
      const last = h.pop() as Pending;
      if (h.length > 0) {
        h[0] = last;
        let i = 0;
        for (;;) {
          const l = 2 * i + 1;
          const r = l + 1;
          let m = i;
          if (l < h.length && less(h[l] as Pending, h[m] as Pending)) m = l;
          if (r < h.length && less(h[r] as Pending, h[m] as Pending)) m = r;
          if (m === i) break;
          [h[i], h[m]] = [h[m] as Pending, h[i] as Pending];
          i = m;
        }
      }
      yield top.line;
    }
  }
}

const less = (a: Pending, b: Pending) => a.ms < b.ms || (a.ms === b.ms && a.seq < b.seq);
