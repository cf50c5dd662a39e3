// Fast line reading for NDJSON files (plain or gzip): batches of lines, not one promise per line.
import { createReadStream } from "node:fs";
import type { Readable } from "node:stream";
import { createGunzip } from "node:zlib";

export interface LineBatch {
  /** 1-based line number of lines[0]. */
  firstLine: number;
  lines: string[];
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
): AsyncGenerator<LineBatch> {
  const stream = openNdjson(path, onRead);
  stream.setEncoding("utf8");
  let carry = "";
  let next = 1;
  for await (const chunk of stream as AsyncIterable<string>) {
    const lines = (carry + chunk).split("\n");
    carry = lines.pop() ?? "";
    if (lines.length > 0) {
      yield { firstLine: next, lines };
      next += lines.length;
    }
  }
  if (carry.length > 0) yield { firstLine: next, lines: [carry] };
}
