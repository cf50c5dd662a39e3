// The rule-table bench (issue 12): the engine over a generated stream with every registered
// detector, against the same plus `rule_table` judging a generated table of 56,500 rows across the
// five kinds. Events are parsed once, before timing, so the ratio is of detection alone (detect's
// reading and parsing, the same in both, would only lower it). Alternating runs, median of each.
//   tsx test/bench/rule-tables.ts [--settlements N] [--rows N] [--runs N]
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { BUNDLED_REFERENCE_DIR, loadCatalogs, PEDIATRIC_FILE, SEX_FILE } from "../../detectors/catalog.ts";
import { DETECTORS } from "../../detectors/index.ts";
import { LEVELS_FILE, RULE_COLUMNS, RULE_KINDS, RULES_DIR } from "../../detectors/rule-table.ts";
import { ruleTables } from "../../detectors/rule-tables.ts";
import type { AnyDetector } from "../../detectors/sdk.ts";
import { activate, Engine, type EngineEvent } from "../../services/engine/engine.ts";
import { generate } from "../../services/generate/generate.ts";
import { Rng } from "../../services/generate/prng.ts";
import { DRUGS, MATERIALS, SERVICES } from "../../services/generate/reference-data.ts";

const opts = new Command()
  .option("--settlements <n>", "settlement events in the generated stream", (v) => Number(v), 200_000)
  .option("--rows <n>", "rows of the generated rule table", (v) => Number(v), 56_500)
  .option("--runs <n>", "timed runs of each configuration", (v) => Number(v), 3)
  .parse()
  .opts<{ settlements: number; rows: number; runs: number }>();

/** A table of `rows` rows: prefixes of the generator's own codes (so lines do match) and of codes it never bills. */
function tableCsv(rows: number): string {
  const rng = new Rng("rule-table-bench");
  const codes = [...DRUGS, ...SERVICES, ...MATERIALS].map((s) => s.code);
  const used = new Map<string, Set<string>>(RULE_KINDS.map((k) => [k, new Set<string>()]));
  const out = [RULE_COLUMNS.join(",")];
  const digits = (n: number) => Array.from({ length: n }, () => rng.int(0, 9)).join("");
  for (let i = 0; out.length <= rows; i++) {
    const kind = RULE_KINDS[i % RULE_KINDS.length] as (typeof RULE_KINDS)[number];
    const real = rng.chance(0.02);
    const code = real ? (rng.pick(codes) as string) : rng.chance(0.5) ? `X${digits(12)}` : digits(15);
    const prefix = code.slice(0, rng.int(6, code.length));
    const mine = used.get(kind) as Set<string>;
    if (mine.has(prefix)) continue;
    mine.add(prefix);
    const params = {
      quantity_limit: rng.chance(0.5) ? "max=3;per=day" : "max=60;per=days;days=30",
      exclusive_items: `with=${rng.pick(codes).slice(0, 9)}`,
      diagnosis_required: "diagnoses=E11|I10|J18",
      price_limit: "level1=50000;level2=60000;level3=70000",
      age_sex: rng.chance(0.5) ? "max_age=17" : "sex=F",
    }[kind];
    out.push(`B${i},${kind},${prefix},${params},WARN,规则${i},Rule ${i},bench,generated,`);
  }
  return `${out.join("\n")}\n`;
}

function referenceWithTable(rows: number): string {
  const dir = mkdtempSync(join(tmpdir(), "fundguard-rule-bench-"));
  mkdirSync(join(dir, RULES_DIR));
  for (const f of [PEDIATRIC_FILE, SEX_FILE]) copyFileSync(join(BUNDLED_REFERENCE_DIR, f), join(dir, f));
  copyFileSync(join(BUNDLED_REFERENCE_DIR, RULES_DIR, LEVELS_FILE), join(dir, RULES_DIR, LEVELS_FILE));
  writeFileSync(join(dir, RULES_DIR, "bench.csv"), tableCsv(rows));
  return dir;
}

const gen = await generate({
  outDir: mkdtempSync(join(tmpdir(), "fundguard-rule-bench-stream-")),
  settlements: opts.settlements,
  seed: 1,
});
const read = (f: string) =>
  readFileSync(f, "utf8")
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l));
const events: EngineEvent[] = [
  ...read(gen.files.settlements).map((value) => ({ kind: "settlement" as const, value })),
  ...read(gen.files.deaths).map((value) => ({ kind: "death" as const, value })),
];
const at = (e: EngineEvent) => Date.parse(e.kind === "settlement" ? e.value.settled_at : e.value.reported_at);
events.sort((a, b) => at(a) - at(b));

const loadStart = performance.now();
const withTable = loadCatalogs(referenceWithTable(opts.rows));
const loadSeconds = (performance.now() - loadStart) / 1000;
const plain = loadCatalogs();

function once(detectors: readonly AnyDetector[], catalogs: typeof plain) {
  const engine = new Engine({ detectors: activate(detectors, catalogs) });
  const t = performance.now();
  for (const e of events) engine.process(e);
  const seconds = (performance.now() - t) / 1000;
  const byRule: Record<string, number> = {};
  for (const s of engine.activeSuspects())
    if (s.detector === "rule_table") byRule[s.rule] = (byRule[s.rule] ?? 0) + 1;
  return { seconds, byRule };
}

const without: number[] = [];
const withRules: number[] = [];
let byKind: Record<string, number> = {};
for (let i = 0; i < opts.runs; i++) {
  without.push(once(DETECTORS, plain).seconds);
  const r = once([...DETECTORS, ruleTables], withTable);
  withRules.push(r.seconds);
  byKind = r.byRule;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
process.stdout.write(
  `${JSON.stringify(
    {
      settlements: opts.settlements,
      events: events.length,
      rows: opts.rows,
      tableLoadSeconds: Number(loadSeconds.toFixed(2)),
      withoutSeconds: without.map((s) => Number(s.toFixed(2))),
      withSeconds: withRules.map((s) => Number(s.toFixed(2))),
      ratio: Number((median(withRules) / median(without)).toFixed(3)),
      suspectsByKind: byKind,
    },
    null,
    2,
  )}\n`,
);
