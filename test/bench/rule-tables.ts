// The rule-table bench (issue 12), `npm run bench -- --only rules`: `detect` on the bench stream with
// a generated table of 56,500 rows across the five kinds against the same `detect` with no table
// (rule_table registered, judging nothing), through `--reference` folders that differ only in the
// table. Alternating runs in fresh processes, median of each.
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUNDLED_REFERENCE_DIR, loadCatalogs, PEDIATRIC_FILE, SEX_FILE } from "../../detectors/catalog.ts";
import { LEVELS_FILE, RULE_COLUMNS, RULE_KINDS, RULES_DIR } from "../../detectors/rule-table.ts";
import { Rng } from "../../services/generate/prng.ts";
import { DRUGS, MATERIALS, SERVICES } from "../../services/generate/reference-data.ts";

/**
 * A table of `rows` rows: prefixes of the generator's own codes (2%, so lines do match) and of codes
 * it never bills. age_sex rows that would restate a catalog (a load error) are not drawn.
 */
export function tableCsv(rows: number): string {
  const rng = new Rng("rule-table-bench");
  const catalogs = loadCatalogs();
  const codes = [...DRUGS, ...SERVICES, ...MATERIALS].map((s) => s.code);
  const used = new Map<string, Set<string>>(RULE_KINDS.map((k) => [k, new Set<string>()]));
  const out = [RULE_COLUMNS.join(",")];
  const digits = (n: number) => Array.from({ length: n }, () => rng.int(0, 9)).join("");
  for (let i = 0; out.length <= rows; i++) {
    const kind = RULE_KINDS[i % RULE_KINDS.length] as (typeof RULE_KINDS)[number];
    const real = rng.chance(0.02);
    const code = real ? (rng.pick(codes) as string) : rng.chance(0.5) ? `X${digits(12)}` : digits(15);
    // On the generator's codes rows hold, as a bureau's mostly do, but for one in a hundred, written
    // for its one code (so it binds that code only, as the longest prefix).
    const strict = !real || rng.chance(0.01);
    const prefix = real && strict ? code : code.slice(0, rng.int(6, code.length));
    const mine = used.get(kind) as Set<string>;
    if (mine.has(prefix)) continue;
    const ageSex = !strict ? "max_age=99" : rng.chance(0.5) ? "max_age=17" : "sex=F";
    const restates = ageSex.startsWith("sex")
      ? catalogs.sexItems.overlapping(prefix)
      : catalogs.pediatricDrugs.overlapping(prefix);
    if (kind === "age_sex" && restates) continue;
    mine.add(prefix);
    const params = {
      quantity_limit: rng.chance(0.5) ? "max=3;per=day" : "max=60;per=days;days=30",
      exclusive_items: `with=${strict ? rng.pick(codes).slice(0, 9) : `X${digits(8)}`}`,
      diagnosis_required: `diagnoses=${strict ? "E11|I10|J18" : "A|B|C|D|E|H|I|J|K|L|M|N|O|S"}`,
      price_limit: "level1=50000;level2=60000;level3=70000",
      age_sex: ageSex,
    }[kind];
    out.push(`B${i},${kind},${prefix},${params},WARN,规则${i},Rule ${i},bench,generated,`);
  }
  return `${out.join("\n")}\n`;
}

/** A reference folder: the bundled catalogs and institution levels, and `table` as the only version. */
function referenceDir(table: string | undefined): string {
  const dir = mkdtempSync(join(tmpdir(), "fundguard-rule-bench-"));
  mkdirSync(join(dir, RULES_DIR));
  for (const f of [PEDIATRIC_FILE, SEX_FILE]) copyFileSync(join(BUNDLED_REFERENCE_DIR, f), join(dir, f));
  copyFileSync(join(BUNDLED_REFERENCE_DIR, RULES_DIR, LEVELS_FILE), join(dir, RULES_DIR, LEVELS_FILE));
  if (table !== undefined) writeFileSync(join(dir, RULES_DIR, "bench.csv"), table);
  return dir;
}

interface DetectRun {
  /** dist (compiled) or tsx (the sources: dist was stale). */
  build: string;
  seconds: number;
  events: number;
  suspects: number;
  maxRssBytes: number;
  byRule: Record<string, number>;
}

/** `detect(referenceDir)` runs detect in a fresh process over the bench stream with that folder. */
export async function benchRuleTables(
  detect: (reference: string) => Promise<Record<string, unknown>>,
  o: { rows?: number; runs?: number } = {},
) {
  const rows = o.rows ?? 56_500;
  const runs = o.runs ?? 3;
  const table = tableCsv(rows);
  const withTable = referenceDir(table);
  const without = referenceDir(undefined);
  const loadStart = performance.now();
  loadCatalogs(withTable);
  const tableLoadSeconds = (performance.now() - loadStart) / 1000;
  const plain: DetectRun[] = [];
  const ruled: DetectRun[] = [];
  for (let i = 0; i < runs; i++) {
    plain.push((await detect(without)) as unknown as DetectRun);
    ruled.push((await detect(withTable)) as unknown as DetectRun);
  }
  const median = (xs: DetectRun[]) =>
    [...xs].sort((a, b) => a.seconds - b.seconds)[Math.floor(xs.length / 2)] as DetectRun;
  const a = median(plain);
  const b = median(ruled);
  const rest = (r: DetectRun) =>
    JSON.stringify(Object.entries(r.byRule).filter(([k]) => !k.startsWith("rule_table/")));
  return {
    rows,
    kinds: RULE_KINDS.length,
    build: b.build,
    events: b.events,
    tableLoadSeconds: Number(tableLoadSeconds.toFixed(2)),
    withoutSeconds: plain.map((r) => Number(r.seconds.toFixed(2))),
    withSeconds: ruled.map((r) => Number(r.seconds.toFixed(2))),
    ratio: Number((b.seconds / a.seconds).toFixed(3)),
    target: "≤ 1.3×",
    maxRssBytes: { without: a.maxRssBytes, with: b.maxRssBytes },
    suspects: { without: a.suspects, with: b.suspects },
    suspectsByKind: Object.fromEntries(
      Object.entries(b.byRule)
        .filter(([k]) => k.startsWith("rule_table/"))
        .map(([k, n]) => [k.slice("rule_table/".length), n]),
    ),
    // The table only adds rule_table's findings: every other detector finds the same in both runs.
    otherDetectorsUnchanged: plain.concat(ruled).every((r) => rest(r) === rest(a)),
  };
}
