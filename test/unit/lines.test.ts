import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import { LineSplitter, OverlongLine, readLineBatches } from "../../services/ingest/lines.ts";

type Seen = [number, string | number];

/** Runs `chunks` through a splitter: [line number, text] per line, [line number, bytes] per overlong one. */
function split(chunks: Buffer[], max: number): Seen[] {
  const seen: Seen[] = [];
  const s = new LineSplitter(max);
  const sink = {
    line: (buf: Buffer, start: number, end: number, n: number) =>
      seen.push([n, buf.toString("utf8", start, end)]),
    overlong: (n: number, o: OverlongLine) => seen.push([n, o.bytes]),
  };
  for (const c of chunks) s.push(c, sink);
  s.end(sink);
  return seen;
}

/** `bytes` cut at the given offsets. */
const cut = (bytes: Buffer, at: number[]) =>
  [0, ...[...new Set(at)].sort((a, b) => a - b), bytes.length].slice(0, -1).map((from, i, all) => {
    const to = all[i + 1] ?? bytes.length;
    return bytes.subarray(from, to);
  });

afterEach(() => vi.restoreAllMocks());

describe("LineSplitter", () => {
  it("gives each line once, whole, however the bytes are chunked (multi-byte characters split too)", () => {
    const text = fc.array(fc.string({ unit: fc.constantFrom("a", "中", "😀", "{", '"') }), { maxLength: 12 });
    fc.assert(
      fc.property(text, fc.array(fc.nat(400)), fc.boolean(), (lines, offsets, trailingNewline) => {
        const all = lines.join("\n") + (trailingNewline && lines.length > 0 ? "\n" : "");
        const bytes = Buffer.from(all, "utf8");
        // Text after the last newline is a line; an empty rest is not.
        const expected = all.split("\n");
        if (expected.at(-1) === "") expected.pop();
        const chunks = cut(
          bytes,
          offsets.filter((o) => o < bytes.length),
        );
        expect(split(chunks, 1 << 20)).toEqual(expected.map((l, i) => [i + 1, l]));
      }),
      { numRuns: 500 },
    );
  });

  it("skips a line over the limit with its exact size and number; the lines around it are intact", () => {
    const long = "x".repeat(10_000);
    const bytes = Buffer.from(`first\n${long}\nthird\n${"y".repeat(101)}`);
    for (const size of [1, 7, 100, 4096, bytes.length]) {
      const chunks = cut(
        bytes,
        Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => i * size),
      );
      expect(split(chunks, 100), `chunks of ${size}`).toEqual([
        [1, "first"],
        [2, 10_000],
        [3, "third"],
        [4, 101],
      ]);
    }
    expect(split([Buffer.from("x".repeat(100))], 100)).toEqual([[1, "x".repeat(100)]]);
  });

  it("copies a line that spans chunks once, when it completes, not once per chunk", () => {
    const concat = vi.spyOn(Buffer, "concat");
    const line = Buffer.alloc(512 << 10, 0x61);
    const chunks = cut(
      Buffer.concat([line, Buffer.from("\n")]),
      Array.from({ length: 512 }, (_, i) => i * 1024),
    );
    concat.mockClear();
    expect(split(chunks, 1 << 20).map(([n, t]) => [n, (t as string).length])).toEqual([[1, 512 << 10]]);
    const copied = concat.mock.calls.reduce((sum, [list]) => sum + list.reduce((s, b) => s + b.length, 0), 0);
    expect(copied).toBe(512 << 10);
  });

  it("keeps nothing of a line once it is over the limit", () => {
    const concat = vi.spyOn(Buffer, "concat");
    const chunk = Buffer.alloc(1 << 20, 0x61);
    const s = new LineSplitter(1 << 20);
    const sink = { line: () => undefined, overlong: vi.fn() };
    for (let i = 0; i < 64; i++) s.push(chunk, sink); // a 64 MiB line
    s.push(Buffer.from("\n"), sink);
    expect(sink.overlong).toHaveBeenCalledWith(1, new OverlongLine(64 << 20, 1 << 20));
    expect(concat).not.toHaveBeenCalled();
  });
});

describe("readLineBatches", () => {
  it.each([
    ["plain", (s: string) => Buffer.from(s)],
    ["gzip", (s: string) => gzipSync(s)],
  ])("reads a %s file, an overlong line in its place with the limit it broke", async (name, encode) => {
    const file = join(tmpdir(), `fg-lines-${process.pid}-${name}.ndjson${name === "gzip" ? ".gz" : ""}`);
    const lines = ["{}", "中".repeat(600_000), "", '{"a":1}'];
    writeFileSync(file, encode(lines.join("\n")));
    const got: (string | OverlongLine)[] = [];
    let first = 1;
    for await (const batch of readLineBatches(file, undefined, 1 << 20)) {
      expect(batch.firstLine).toBe(first);
      first += batch.lines.length;
      got.push(...batch.lines);
    }
    expect(got).toEqual(["{}", new OverlongLine(1_800_000, 1 << 20), "", '{"a":1}']);
    expect((got[1] as OverlongLine).reason).toBe(
      "line of 1800000 bytes is longer than the limit of 1048576 bytes (FUNDGUARD_MAX_MESSAGE_BYTES)",
    );
  });
});
