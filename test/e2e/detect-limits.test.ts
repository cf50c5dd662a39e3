// The contract's limits on NDJSON input: a line over a limit is a bad line reported with its line
// number, the valid lines around it are detected exactly, and an overlong line is never held whole.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import type { DeathRecord, Settlement } from "../../schemas/index.ts";
import { generate } from "../../services/generate/generate.ts";
import { type BadLine, mergedEvents } from "../../services/ingest/ndjson-source.ts";
import { line } from "../fixtures/events.ts";
import { diagnoses, flagged, pediatricLine } from "../fixtures/hostile.ts";
import { canonical, run } from "../fixtures/run.ts";
import { cli } from "../integration/harness.ts";

const suspect = (id: string, patch: Partial<Settlement>) => JSON.stringify(flagged(id, patch));
const items = (n: number) => Array.from({ length: n }, (_, i) => pediatricLine(i + 1));

/** Each hostile line, the limits it is read under, and the reason it must be reported with. */
const HOSTILE: [string, string, RegExp][] = [
  [
    "overlong line",
    suspect("H1", { institution_name: "中".repeat(700_000) }),
    /^line of 2100\d{3} bytes is longer than the limit of 1048576 bytes \(FUNDGUARD_MAX_MESSAGE_BYTES\)$/,
  ],
  [
    "1,001 diagnoses",
    suspect("H2", { diagnoses: diagnoses(1_001) }),
    /diagnoses: more than the limit of 1000 entries/,
  ],
  [
    "a 70,000-byte string",
    suspect("H3", { items: [line({ item_name: "x".repeat(70_000), category: "DRUG" })] }),
    /items\.0\.item_name: longer than the limit of 65536 bytes/,
  ],
  [
    "a 40 MiB line",
    `{"settlement_id":"H4","pad":"${"x".repeat(40 << 20)}"}`,
    /^line of 41943\d{3} bytes is longer/,
  ],
];

describe("detect under the contract's limits", () => {
  let dir: string;
  let clean: { settlements: string; deaths: string };
  let hostile: string;
  let badAt: Map<number, RegExp>;
  let expected: string[];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "fundguard-limits-"));
    const g = await generate({ outDir: dir, settlements: 2_000, seed: "limits", schemeRate: 0.1 });
    clean = { settlements: g.files.settlements, deaths: g.files.deaths };
    const read = (f: string) => readFileSync(f, "utf8").split("\n").filter(Boolean);
    const good = read(clean.settlements);
    expected = canonical(
      run([
        ...good.map((l) => JSON.parse(l) as Settlement),
        ...read(clean.deaths).map((l) => JSON.parse(l) as DeathRecord),
      ]),
    );
    const out: string[] = [];
    badAt = new Map();
    good.forEach((l, i) => {
      out.push(l);
      const h = i % 400 === 0 ? HOSTILE[i / 400] : undefined;
      if (h) {
        out.push(h[1]);
        badAt.set(out.length, h[2]);
      }
    });
    hostile = join(dir, "hostile.ndjson");
    writeFileSync(hostile, `${out.join("\n")}\n`);
  }, 120_000);

  it("reports each line over a limit with its number, and finds exactly the valid lines' suspects", async () => {
    const r = await cli(["detect", "--settlements", hostile, "--deaths", clean.deaths, "--shards", "2"], {});
    expect(
      canonical(
        r.stdout
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l)),
      ),
    ).toEqual(expected);
    const reported = [...r.stderr.matchAll(/^(.+):(\d+): skipped: (.*)$/gm)];
    expect(reported.map((m) => Number(m[2])).sort((a, b) => a - b)).toEqual([...badAt.keys()]);
    for (const m of reported) {
      expect(m[1]).toBe(hostile);
      expect(m[3]).toMatch(badAt.get(Number(m[2])) as RegExp);
    }
    expect(r.stderr).toMatch(/bad lines 4,/);
  }, 120_000);

  it("takes its limits from FUNDGUARD_MAX_*", async () => {
    const file = join(dir, "small-limits.ndjson");
    writeFileSync(
      file,
      [suspect("L1", { items: items(3) }), suspect("L2", { items: items(4) }), suspect("L3", {})].join("\n"),
    );
    const r = await cli(["detect", "--settlements", file], {
      FUNDGUARD_MAX_ITEMS: "3",
      FUNDGUARD_MAX_MESSAGE_BYTES: String(Buffer.byteLength(suspect("L1", { items: items(3) }))),
    });
    expect(r.stderr).toContain(`${file}:2: skipped: line of`);
    const ids = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l).settlement_ids[0]);
    expect(ids.sort()).toEqual(["L1", "L3"]);
    const items4 = await cli(["detect", "--settlements", file], { FUNDGUARD_MAX_ITEMS: "3" });
    expect(items4.stderr).toContain(
      `${file}:2: skipped: contract violation: items: more than the limit of 3`,
    );
  }, 120_000);

  it("holds `start` and `replay --run` (the merged file events) to the same limits", async () => {
    const bad: BadLine[] = [];
    const events = [];
    for await (const e of mergedEvents(hostile, clean.deaths, (b) => bad.push(b))) events.push(e.event.value);
    expect(canonical(run(events))).toEqual(expected);
    expect(bad.map((b) => b.line)).toEqual([...badAt.keys()]);
    for (const b of bad) expect(b.reason).toMatch(badAt.get(b.line) as RegExp);
  }, 120_000);
});
