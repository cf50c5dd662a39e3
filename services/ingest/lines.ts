// Fast line reading for NDJSON files (plain or gzip): batches of lines, not one promise per line.
// A line is held to the contract's message limit while it is read: an unfinished line is kept as
// the pieces it arrived in (joined once, when its newline comes), and one past the limit is
// counted and skipped, never buffered whole, so a hostile file cannot exhaust memory.
import { createReadStream } from "node:fs";
import type { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { DEFAULT_LIMITS } from "../../schemas/limits.ts";

/** A line over the limit, in place of its text. */
export class OverlongLine {
  constructor(
    readonly bytes: number,
    readonly limit: number,
  ) {}
  get reason(): string {
    return `line of ${this.bytes} bytes is longer than the limit of ${this.limit} bytes (FUNDGUARD_MAX_MESSAGE_BYTES)`;
  }
}

export interface LineBatch {
  /** 1-based line number of lines[0]. */
  firstLine: number;
  lines: (string | OverlongLine)[];
}

export interface LineSink {
  /** A complete line: bytes [start, end) of `buf`, without its newline. */
  line(buf: Buffer, start: number, end: number, lineNo: number): void;
  overlong(lineNo: number, line: OverlongLine): void;
}

/** Splits a byte stream into lines chunk by chunk, keeping at most `maxBytes` of an unfinished line. */
export class LineSplitter {
  private pieces: Buffer[] = [];
  /** Bytes of the unfinished line so far, kept in `pieces` unless it is already over the limit. */
  private pending = 0;
  private lineNo = 1;

  constructor(private readonly maxBytes: number) {}

  push(data: Buffer, sink: LineSink): void {
    let pos = 0;
    for (let nl = data.indexOf(0x0a); nl >= 0; nl = data.indexOf(0x0a, pos)) {
      this.complete(data, pos, nl, sink);
      pos = nl + 1;
    }
    if (pos === data.length) return;
    this.pending += data.length - pos;
    if (this.pending <= this.maxBytes) this.pieces.push(data.subarray(pos));
    else this.pieces = [];
  }

  /** The last line, when the stream does not end with a newline. */
  end(sink: LineSink): void {
    if (this.pending > 0) this.complete(Buffer.alloc(0), 0, 0, sink);
  }

  private complete(data: Buffer, start: number, end: number, sink: LineSink): void {
    const size = this.pending + end - start;
    if (size > this.maxBytes) sink.overlong(this.lineNo, new OverlongLine(size, this.maxBytes));
    else if (this.pending === 0) sink.line(data, start, end, this.lineNo);
    else sink.line(Buffer.concat([...this.pieces, data.subarray(start, end)], size), 0, size, this.lineNo);
    this.pieces = [];
    this.pending = 0;
    this.lineNo++;
  }
}

/** An NDJSON file's bytes (decompressed for .gz), in 1 MiB reads; `onRead` as below. */
export function openNdjson(path: string, onRead?: (bytes: number) => void): Readable {
  const file = createReadStream(path, { highWaterMark: 1 << 20 });
  if (onRead) file.on("data", () => onRead(file.bytesRead));
  return path.endsWith(".gz") ? file.pipe(createGunzip()) : file;
}

/** `onRead` gets the bytes of the file read so far (compressed bytes for .gz), for progress bars. */
export async function* readLineBatches(
  path: string,
  onRead?: (bytes: number) => void,
  maxLineBytes = DEFAULT_LIMITS.maxMessageBytes,
): AsyncGenerator<LineBatch> {
  const splitter = new LineSplitter(maxLineBytes);
  let batch: LineBatch = { firstLine: 1, lines: [] };
  const sink: LineSink = {
    line: (buf, start, end) => batch.lines.push(buf.toString("utf8", start, end)),
    overlong: (_lineNo, line) => batch.lines.push(line),
  };
  let next = 1;
  const take = () => {
    const full = batch;
    next += full.lines.length;
    batch = { firstLine: next, lines: [] };
    return full;
  };
  for await (const chunk of openNdjson(path, onRead) as AsyncIterable<Buffer>) {
    splitter.push(chunk, sink);
    if (batch.lines.length > 0) yield take();
  }
  splitter.end(sink);
  if (batch.lines.length > 0) yield take();
}
