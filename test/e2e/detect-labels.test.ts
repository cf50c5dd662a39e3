// The generator's promise, checked end to end: `detect` over a generated stream finds exactly the
// labelled findings (precision = recall = 1 per detector and rule). Needs no Kafka or ClickHouse.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { DETECTORS } from "../../detectors/index.ts";
import type { Suspect } from "../../schemas/index.ts";
import { runDetect } from "../../services/cli/detect.ts";
import { type GenerateSummary, generate } from "../../services/generate/generate.ts";
import { Rng } from "../../services/generate/prng.ts";

interface Label {
  detector: string;
  rule: string;
  settlement_id: string;
  related: string[];
  scheme: string;
}

const root = fileURLToPath(new URL("../../", import.meta.url));
const readNdjson = <T>(file: string): T[] =>
  readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as T);
const ruleOf = (x: { detector: string; rule: string }) => `${x.detector}/${x.rule}`;
const keyOf = (detector: string, rule: string, id: string) => `${detector}/${rule}:${id}`;

interface Score {
  rule: string;
  labelled: number;
  found: number;
  truePositives: number;
  precision: number;
  recall: number;
}

function score(
  labels: Label[],
  suspects: Suspect[],
): { scores: Score[]; falsePositives: string[]; falseNegatives: string[] } {
  const want = new Set(labels.map((l) => keyOf(l.detector, l.rule, l.settlement_id)));
  const got = new Set(suspects.map((s) => keyOf(s.detector, s.rule, s.settlement_ids[0] as string)));
  const rules = new Set([...labels.map(ruleOf), ...suspects.map(ruleOf)]);
  const scores = [...rules].sort().map((rule) => {
    const w = [...want].filter((k) => k.startsWith(`${rule}:`));
    const g = [...got].filter((k) => k.startsWith(`${rule}:`));
    const tp = g.filter((k) => want.has(k)).length;
    return {
      rule,
      labelled: w.length,
      found: g.length,
      truePositives: tp,
      precision: g.length === 0 ? 1 : tp / g.length,
      recall: w.length === 0 ? 1 : tp / w.length,
    };
  });
  return {
    scores,
    falsePositives: [...got].filter((k) => !want.has(k)),
    falseNegatives: [...want].filter((k) => !got.has(k)),
  };
}

describe("detect on a generated stream", () => {
  let gen: GenerateSummary;
  let labels: Label[];
  let suspects: Suspect[];
  let badLines = 0;

  beforeAll(async () => {
    gen = await generate({
      outDir: mkdtempSync(join(tmpdir(), "fundguard-e2e-")),
      settlements: 50_000,
      seed: 2025,
      schemeRate: 0.05,
    });
    labels = readNdjson<Label>(gen.files.labels);
    const result = await runDetect(
      { settlements: gen.files.settlements, deaths: gen.files.deaths },
      () => badLines++,
    );
    suspects = result.suspects;
    expect(result.summary.engine.tooLate).toBe(0);
  }, 300_000);

  it("has a few hundred labelled findings, covering every rule of every detector", () => {
    expect(badLines).toBe(0);
    expect(labels.length).toBeGreaterThan(150);
    const everyRule = DETECTORS.flatMap((d) => Object.keys(d.rules).map((r) => `${d.id}/${r}`)).sort();
    expect([...new Set(labels.map(ruleOf))].sort()).toEqual(everyRule);
  });

  it("scores precision = recall = 1 for every detector and rule", () => {
    const { scores, falsePositives, falseNegatives } = score(labels, suspects);
    const show = (keys: string[]) =>
      keys.slice(0, 10).map((k) => {
        const id = k.slice(k.indexOf(":") + 1);
        const s = suspects.find((x) => x.settlement_ids[0] === id);
        const l = labels.find((x) => x.settlement_id === id);
        return { key: k, scheme: l?.scheme, evidence: s?.evidence };
      });
    expect({ falsePositives: show(falsePositives), falseNegatives: show(falseNegatives) }).toEqual({
      falsePositives: [],
      falseNegatives: [],
    });
    for (const s of scores) {
      expect({ rule: s.rule, precision: s.precision, recall: s.recall }).toEqual({
        rule: s.rule,
        precision: 1,
        recall: 1,
      });
    }
  });

  it("names the related settlements the labels expect (settlement_ids[1..])", () => {
    const byKey = new Map(suspects.map((s) => [keyOf(s.detector, s.rule, s.settlement_ids[0] as string), s]));
    const wrong = labels
      .map((l) => ({ l, s: byKey.get(keyOf(l.detector, l.rule, l.settlement_id)) }))
      .filter(({ l, s }) => s && JSON.stringify(s.settlement_ids.slice(1)) !== JSON.stringify(l.related))
      .map(({ l, s }) => ({ label: l, got: s?.settlement_ids }));
    expect(wrong).toEqual([]);
  });

  it("finds the same when the stream arrives in another order (shuffled lines)", async () => {
    // The contract: final suspects do not depend on arrival order (within the retention).
    const rng = new Rng("shuffle");
    const lines = readFileSync(gen.files.settlements, "utf8")
      .split("\n")
      .filter((l) => l.length > 0);
    for (let i = lines.length - 1; i > 0; i--) {
      const j = rng.int(0, i);
      [lines[i], lines[j]] = [lines[j] as string, lines[i] as string];
    }
    const dir = mkdtempSync(join(tmpdir(), "fundguard-shuffled-"));
    writeFileSync(join(dir, "settlements.ndjson"), `${lines.join("\n")}\n`);
    const deaths = readFileSync(gen.files.deaths, "utf8")
      .split("\n")
      .filter((l) => l.length > 0)
      .reverse();
    writeFileSync(join(dir, "deaths.ndjson"), `${deaths.join("\n")}\n`);
    const shuffled = await runDetect(
      { settlements: join(dir, "settlements.ndjson"), deaths: join(dir, "deaths.ndjson") },
      () => badLines++,
    );
    const { falsePositives, falseNegatives } = score(labels, shuffled.suspects);
    expect({ falsePositives, falseNegatives }).toEqual({ falsePositives: [], falseNegatives: [] });
  }, 300_000);
});

describe("the fundguard CLI on a generated stream", () => {
  it("generates and detects in child processes: exit 0, suspects as NDJSON matching the labels", () => {
    const dir = mkdtempSync(join(tmpdir(), "fundguard-cli-"));
    const cli = join(root, "bin/fundguard.js");
    execFileSync(
      process.execPath,
      [
        cli,
        "generate",
        "--out-dir",
        dir,
        "--settlements",
        "4000",
        "--seed",
        "cli",
        "--scheme-rate",
        "0.1",
        "--quiet",
      ],
      { cwd: root, stdio: ["ignore", "ignore", "pipe"], timeout: 120_000 },
    );
    const stdout = execFileSync(
      process.execPath,
      [
        cli,
        "detect",
        "--settlements",
        join(dir, "settlements.ndjson"),
        "--deaths",
        join(dir, "deaths.ndjson"),
      ],
      { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 120_000 },
    );
    // execFileSync throws on a non-zero exit status, so reaching here means exit 0.
    const suspects = stdout
      .split("\n")
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as Suspect);
    const labels = readNdjson<Label>(join(dir, "labels.ndjson"));
    expect(labels.length).toBeGreaterThan(5);
    for (const s of suspects) expect(s.suspect_id).toMatch(/^[0-9a-f]{32}$/);
    const { falsePositives, falseNegatives } = score(labels, suspects);
    expect({ falsePositives, falseNegatives }).toEqual({ falsePositives: [], falseNegatives: [] });
  }, 240_000);
});
