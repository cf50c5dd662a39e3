// `detect` reads on the main thread and runs the engine in shards (worker threads) routed by
// person. Whatever the shard count and however a valid line is spelled, the suspects are those of
// one engine over the valid events, and every bad line is reported once, with its line number.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { beforeAll, describe, expect, it } from "vitest";
import type { DeathRecord, Settlement } from "../../schemas/index.ts";
import { runDetect } from "../../services/cli/detect.ts";
import { runsInline } from "../../services/detect/sharded.ts";
import { generate } from "../../services/generate/generate.ts";
import type { BadLine } from "../../services/ingest/ndjson-source.ts";
import { canonical, run } from "../fixtures/run.ts";

const lines = (file: string) =>
  readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.length > 0);

/** Valid JSON for the same event, in spellings a plain-text peek could misread. */
const RESPELL: ((line: string) => string)[] = [
  // Keys in reverse order: person_id and settled_at come after the nested items.
  (l) => JSON.stringify(Object.fromEntries(Object.entries(JSON.parse(l)).reverse())),
  // A unicode escape inside the routing key's value.
  (l) => l.replace(/"person_id":"P/, '"person_id":"\\u0050'),
  // Spaces around the colon.
  (l) => l.replace('"person_id":', '"person_id" :  ').replace('"settled_at":', ' "settled_at"\t: '),
  // The key twice: JSON.parse keeps the last, which is the real one.
  (l) => `{"person_id":"NOBODY",${l.slice(1)}`,
  // Escapes inside the time.
  (l) => l.replace(/"settled_at":"2/, '"settled_at":"\\u0032'),
];

const BAD = [
  "{not json",
  '{"settlement_id":"X1"}',
  "[1,2,3]",
  '{"person_id":42,"settled_at":"2025-01-01T00:00:00+08:00"}',
  "null",
];

describe("detect in shards", () => {
  let dir: string;
  let clean: { settlements: string; deaths: string };
  let hostile: { settlements: string; deaths: string };
  let badAt: string[];
  let expected: string[];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "fundguard-shards-"));
    const g = await generate({ outDir: dir, settlements: 8_000, seed: "shards", schemeRate: 0.1 });
    clean = { settlements: g.files.settlements, deaths: g.files.deaths };
    const settlements = lines(clean.settlements);
    const deaths = lines(clean.deaths);
    expected = canonical(
      run([
        ...settlements.map((l) => JSON.parse(l) as Settlement),
        ...deaths.map((l) => JSON.parse(l) as DeathRecord),
      ]),
    );

    badAt = [];
    const write = (name: string, source: string[]) => {
      const out: string[] = [];
      source.forEach((l, i) => {
        out.push(i % 7 === 0 ? (RESPELL[(i / 7) % RESPELL.length] as (s: string) => string)(l) : l);
        if (i % 97 === 0) {
          out.push(BAD[out.length % BAD.length] as string);
          badAt.push(`${join(dir, name)}:${out.length}`);
        }
        if (i % 131 === 0) out.push("   ");
      });
      writeFileSync(join(dir, name), `${out.join("\n")}\n`);
      return join(dir, name);
    };
    hostile = { settlements: write("hostile-settlements.ndjson", settlements), deaths: clean.deaths };
  }, 120_000);

  it("finds what one engine finds over the valid events, for any number of shards", async () => {
    expect(expected.length).toBeGreaterThan(50);
    for (const shards of [1, 2, 3]) {
      const r = await runDetect({ ...clean, shards }, () => undefined);
      expect(canonical(r.suspects), `${shards} shards`).toEqual(expected);
    }
  }, 120_000);

  it("runs a small input's one engine on the main thread, with the same result", async () => {
    // The first persons' events of the stream, under the inline threshold; the threaded run is the reference.
    const persons = new Set(
      lines(clean.settlements)
        .slice(0, 300)
        .map((l) => (JSON.parse(l) as Settlement).person_id),
    );
    const keep = (file: string, name: string) => {
      const kept = lines(file).filter((l) => persons.has((JSON.parse(l) as { person_id: string }).person_id));
      writeFileSync(join(dir, name), `${kept.join("\n")}\n`);
      return join(dir, name);
    };
    const small = {
      settlements: keep(clean.settlements, "small-s.ndjson"),
      deaths: keep(clean.deaths, "small-d.ndjson"),
    };
    expect(runsInline([small.settlements, small.deaths])).toBe(true);
    expect(runsInline([clean.settlements, clean.deaths])).toBe(false);
    const threaded = canonical((await runDetect({ ...small, shards: 2 }, () => undefined)).suspects);
    expect(threaded.length).toBeGreaterThan(5);
    expect(canonical((await runDetect(small, () => undefined)).suspects)).toEqual(threaded);
  }, 120_000);

  it("reads every valid spelling of an event, and reports each bad line once with its number", async () => {
    for (const shards of [1, 3]) {
      const bad: BadLine[] = [];
      const r = await runDetect({ ...hostile, shards }, (b) => bad.push(b));
      expect(canonical(r.suspects), `${shards} shards`).toEqual(expected);
      expect(bad.map((b) => `${b.file}:${b.line}`).sort()).toEqual([...badAt].sort());
      for (const b of bad) expect(b.reason).toMatch(/^(invalid JSON|contract violation): /);
      expect(r.summary.badLines).toBe(badAt.length);
    }
  }, 120_000);

  it("reads gzip and CRLF files, the last line without a newline, the same way", async () => {
    const text = readFileSync(hostile.settlements, "utf8").replace(/\n$/, "").replaceAll("\n", "\r\n");
    const gz = join(dir, "hostile-crlf.ndjson.gz");
    writeFileSync(gz, gzipSync(text));
    const bad: BadLine[] = [];
    const r = await runDetect({ settlements: gz, deaths: hostile.deaths, shards: 2 }, (b) => bad.push(b));
    expect(canonical(r.suspects)).toEqual(expected);
    expect(bad.map((b) => `${b.file}:${b.line}`).sort()).toEqual(
      badAt.map((at) => at.replace(hostile.settlements, gz)).sort(),
    );
  }, 120_000);

  it("rejects a shard count that is not a positive integer", async () => {
    await expect(runDetect({ ...clean, shards: 0 }, () => undefined)).rejects.toThrow(/positive integer/);
  });
});
