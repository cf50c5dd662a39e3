import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUNDLED_REFERENCE_DIR, loadCatalogs, PEDIATRIC_FILE, SEX_FILE } from "../../detectors/catalog.ts";
import { DETECTORS } from "../../detectors/index.ts";
import { activate, Engine, type EngineEvent } from "../../services/engine/engine.ts";
import { tableCsv } from "./rule-tables.ts";

const dir = mkdtempSync(join(tmpdir(), "x-"));
mkdirSync(join(dir, "rules"));
for (const f of [PEDIATRIC_FILE, SEX_FILE]) copyFileSync(join(BUNDLED_REFERENCE_DIR, f), join(dir, f));
copyFileSync(
  join(BUNDLED_REFERENCE_DIR, "rules/institution-levels.csv"),
  join(dir, "rules/institution-levels.csv"),
);
writeFileSync(join(dir, "rules/bench.csv"), tableCsv(56500));
const read = (f: string) =>
  readFileSync(f, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));
const base = ".cache/bench/stream-20000-seed1/";
const events: EngineEvent[] = [
  ...read(base + "settlements.ndjson").map((value) => ({ kind: "settlement" as const, value })),
];
let t = performance.now();
const withT = loadCatalogs(dir);
console.log("load", (performance.now() - t) / 1000);
const empty = mkdtempSync(join(tmpdir(), "y-"));
mkdirSync(join(empty, "rules"));
for (const f of [PEDIATRIC_FILE, SEX_FILE]) copyFileSync(join(BUNDLED_REFERENCE_DIR, f), join(empty, f));
const none = loadCatalogs(empty);
for (const [name, c] of [["with", withT]] as const) {
  const e = new Engine({ detectors: activate(DETECTORS, c) });
  t = performance.now();
  for (const x of events) e.process(x);
  console.log(name, (performance.now() - t) / 1000);
}
