// The rule-table family: loading (errors name file, row and column), the longest-prefix index, the
// exact semantics of each kind at its boundaries, version switching, and order independence.
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  BUNDLED_REFERENCE_DIR,
  type Catalogs,
  loadCatalogs,
  PEDIATRIC_FILE,
  SEX_FILE,
} from "../../detectors/catalog.ts";
import { loadRuleTables, RULE_COLUMNS } from "../../detectors/rule-table.ts";
import { ruleTables } from "../../detectors/rule-tables.ts";
import type { LineItem, Settlement, Suspect } from "../../schemas/index.ts";
import { activate, Engine } from "../../services/engine/engine.ts";
import { line, reversal, settlement, stay } from "../fixtures/events.ts";
import { testPersonStore } from "../fixtures/person-store.ts";
import { asEvent, canonical } from "../fixtures/run.ts";

const HEADER = RULE_COLUMNS.join(",");
const row = (id: string, kind: string, prefix: string, params: string, severity = "WARN") =>
  `${id},${kind},${prefix},${params},${severity},标题${id},Title ${id},Test source,ref ${id},2025-01-01`;

function tablesDir(
  files: Record<string, string[]>,
  levels = ["institution_prefix,level,source", "H3415,2,test"],
) {
  const dir = mkdtempSync(join(tmpdir(), "fundguard-rules-"));
  mkdirSync(join(dir, "rules"));
  for (const [version, rows] of Object.entries(files))
    writeFileSync(join(dir, "rules", `${version}.csv`), `${[HEADER, ...rows].join("\n")}\n`);
  writeFileSync(join(dir, "rules", "institution-levels.csv"), `${levels.join("\n")}\n`);
  return dir;
}

const V1 = [
  row("Q-DAY", "quantity_limit", "001108", "max=1;per=day"),
  row("Q-DAY-LONG", "quantity_limit", "0011080000", "max=2;per=day", "BLOCK"),
  row("Q-STAY", "quantity_limit", "250101", "max=3;per=stay", "REMIND"),
  row("Q-DAYS", "quantity_limit", "XC10AA", "max=90;per=days;days=30"),
  row("E1", "exclusive_items", "310701022", "with=310701021"),
  row("D1", "diagnosis_required", "XA10BJ", "diagnoses=E11|E13"),
  row("P1", "price_limit", "311201", "level1=3000;level2=3500;level3=4000"),
  row("A-AGE", "age_sex", "ZA06", "max_age=17"),
  row("A-MIN", "age_sex", "XR05", "min_age=65"),
  row("A-SEX", "age_sex", "N40", "target=diagnosis;sex=M"),
  row("A-SEXI", "age_sex", "331", "sex=F"),
];
const V2 = V1.map((r) =>
  r.startsWith("Q-DAYS,") ? row("Q-DAYS", "quantity_limit", "XC10AA", "max=60;per=days;days=30") : r,
);
const base = loadCatalogs();
const catalogsOf = (dir: string): Catalogs => ({ ...base, ruleTables: loadRuleTables(dir) });
const catalogs = catalogsOf(tablesDir({ "2025.1": V1, "2025.2": V2 }));

function run(
  events: Settlement[],
  config: Record<string, unknown> = { version: "2025.1" },
  c = catalogs,
): Suspect[] {
  const engine = new Engine({
    store: testPersonStore(),
    detectors: activate([ruleTables], c, { rule_table: config }),
    clock: () => new Date("2026-01-01T00:00:00Z"),
  });
  for (const e of events) engine.process(asEvent(e));
  return [...engine.activeSuspects()];
}
const found = (events: Settlement[], config?: Record<string, unknown>) =>
  run(events, config)
    .map((s) => `${s.rule}:${s.settlement_ids.join(">")}`)
    .sort();

const item = (item_code: string, o: Partial<LineItem> = {}) =>
  line({ item_code, item_name: item_code, category: "SERVICE", service_date: "2025-03-01", ...o });
const visit = (id: string, items: LineItem[], o: Partial<Settlement> = {}) =>
  settlement({
    settlement_id: id,
    admission_date: items[0]?.service_date ?? "2025-03-01",
    settled_at: `${items[0]?.service_date ?? "2025-03-01"}T10:00:00+08:00`,
    items: items.map((l, i) => ({ ...l, line_no: i + 1 })),
    ...o,
  });

describe("rule tables: loading", () => {
  it("loads every version of the folder; the bundled samples leave the catalogs' reasons to their detectors", () => {
    expect([...catalogs.ruleTables.versions.keys()]).toEqual(["2025.1", "2025.2"]);
    const bundled = base.ruleTables.versions;
    expect([...bundled.keys()]).toEqual(["2025.1", "2025.2"]);
    for (const t of bundled.values()) {
      expect(t.items.age_sex.longest("ZA06CAE0020010101748")).toBeUndefined();
      expect(t.diagnoses.longest("N40.x00")).toBeUndefined();
      expect(t.diagnoses.longest("H25.900")).toMatchObject({ id: "A0001", minAge: 40 });
    }
  });

  it("refuses an age_sex row giving a catalog's reason for a code the catalog covers", () => {
    const folder = (rows: string[]) => {
      const dir = tablesDir({ v: rows });
      for (const f of [PEDIATRIC_FILE, SEX_FILE]) copyFileSync(join(BUNDLED_REFERENCE_DIR, f), join(dir, f));
      return dir;
    };
    // An age ceiling on drugs of the pediatric catalog, narrower or broader than its prefixes.
    expect(() => loadCatalogs(folder([row("A", "age_sex", "ZA06", "max_age=17")]))).toThrow(
      /v\.csv: row 2, column code_prefix: ZA06 overlaps pediatric-drugs\.csv prefix ZA06\w+, which pediatric_drug already judges/,
    );
    expect(() => loadCatalogs(folder([row("A", "age_sex", "ZA06CAE0020010101748", "max_age=12")]))).toThrow(
      /row 2, column code_prefix: .* overlaps pediatric-drugs\.csv prefix ZA06CAE00200/,
    );
    // A sex on a sex-restricted diagnosis or item.
    expect(() =>
      loadCatalogs(folder([V1[0] as string, row("A", "age_sex", "N40", "target=diagnosis;sex=M")])),
    ).toThrow(
      /row 3, column code_prefix: N40 overlaps sex-restricted-codes\.csv prefix N40, which gender_mismatch/,
    );
    expect(() => loadCatalogs(folder([row("A", "age_sex", "003314000020000", "sex=F")]))).toThrow(
      /overlaps sex-restricted-codes\.csv prefix 003314000020000/,
    );
    // Another reason for the same code is the table's: a minimum age on a pediatric drug, an age on a sex-restricted diagnosis.
    const other = loadCatalogs(
      folder([
        row("A", "age_sex", "ZA06", "min_age=1"),
        row("B", "age_sex", "N40", "target=diagnosis;min_age=40"),
      ]),
    );
    expect(other.ruleTables.newest?.rows.map((r) => r.id)).toEqual(["A", "B"]);
  });

  it("names file, row and column of a bad cell", () => {
    const bad = (rows: string[]) => () => loadRuleTables(tablesDir({ v: rows }));
    expect(bad([row("X", "quantity_limit", "001", "max=1;per=week")])).toThrow(
      /v\.csv: row 2, column params: per=week/,
    );
    expect(bad([V1[0] as string, row("X", "nope", "001", "")])).toThrow(
      /v\.csv: row 3, column kind: "nope" is not one of/,
    );
    expect(bad([row("X", "price_limit", "001", "level9=1")])).toThrow(
      /row 2, column params: level9 is not a parameter/,
    );
    expect(bad([row("X", "quantity_limit", "001", "max=1", "LOUD")])).toThrow(/row 2, column severity/);
    expect(bad([V1[0] as string, V1[0] as string])).toThrow(
      /row 3, column id: Q-DAY is used by an earlier row/,
    );
    expect(
      bad([row("X", "quantity_limit", "001", "max=1"), row("Y", "quantity_limit", "001", "max=2")]),
    ).toThrow(/row 3, column code_prefix: 001 already has quantity_limit row X/);
    expect(bad([row("X", "diagnosis_required", "001", "diagnoses=")])).toThrow(
      /row 2, column params: diagnoses/,
    );
    expect(() => loadRuleTables(tablesDir({ v: [] }, ["institution_prefix,level,source", "H1,4,x"]))).toThrow(
      /institution-levels\.csv: row 2, column level: 4 is not 1, 2 or 3/,
    );
  });

  it("names the columns a header lacks, in a table or the levels file", () => {
    const dir = tablesDir({}, ["institution_prefix,source", "H1,x"]);
    expect(() => loadRuleTables(dir)).toThrow(
      /institution-levels\.csv: row 1, column level: missing from the header/,
    );
    writeFileSync(join(dir, "rules", "institution-levels.csv"), "institution_prefix,level\nH1,2\n");
    const header = RULE_COLUMNS.filter((c) => c !== "severity" && c !== "title_en").join(",");
    writeFileSync(join(dir, "rules", "v.csv"), `${header}\n`);
    expect(() => loadRuleTables(dir)).toThrow(
      /v\.csv: row 1, column severity, title_en: missing from the header/,
    );
  });

  it("looks codes up by their longest matching prefix, per kind", () => {
    const t = catalogs.ruleTables.versions.get("2025.1");
    expect(t?.items.quantity_limit.longest("001108000010000")?.id).toBe("Q-DAY-LONG");
    expect(t?.items.quantity_limit.longest("001108100010000")?.id).toBe("Q-DAY");
    expect(t?.items.quantity_limit.longest("001109000010000")).toBeUndefined();
  });
});

describe("rule tables: kinds", () => {
  it("quantity_limit per day: above max on one service date; the longest prefix's row decides", () => {
    const bed = (d: string, q = 1) => item("001108100010000", { service_date: d, quantity: q });
    const bed2 = (d: string, q = 1) => item("001108000010000", { service_date: d, quantity: q });
    const s = (items: LineItem[]) => stay("2025-03-01", "2025-03-03", { settlement_id: "S", items });
    expect(found([s([bed("2025-03-01"), bed("2025-03-02")])])).toEqual([]);
    expect(found([s([bed("2025-03-01"), bed("2025-03-01")])])).toEqual(["quantity_limit:S"]);
    // The longer prefix allows 2 a day, and its row is BLOCK.
    expect(found([s([bed2("2025-03-01", 2)])])).toEqual([]);
    const [x] = run([s([bed2("2025-03-01", 3)])]);
    expect(x?.severity).toBe("BLOCK");
    expect(x?.evidence).toMatchObject({
      table_version: "2025.1",
      hits: [{ row_id: "Q-DAY-LONG", max: 2, total: 3 }],
    });
  });

  it("quantity_limit per stay: inpatient settlements only, the stay's total", () => {
    const cbc = (d: string) => item("250101001000000", { service_date: d });
    const lines = [cbc("2025-03-01"), cbc("2025-03-02"), cbc("2025-03-03")];
    expect(found([stay("2025-03-01", "2025-03-05", { settlement_id: "S", items: lines })])).toEqual([]);
    expect(
      found([stay("2025-03-01", "2025-03-05", { settlement_id: "S", items: [...lines, cbc("2025-03-04")] })]),
    ).toEqual(["quantity_limit:S"]);
    expect(
      found([
        visit(
          "O",
          [...lines, cbc("2025-03-01")].map((l) => ({ ...l, service_date: "2025-03-01" })),
        ),
      ]),
    ).toEqual([]);
  });

  it("quantity_limit per N days: the N days ending on the line's date, over the person's settlements", () => {
    const statin = (d: string, q: number) =>
      item("XC10AAA023A001010100932", { service_date: d, quantity: q, category: "DRUG" });
    expect(found([visit("A", [statin("2025-03-02", 45)]), visit("B", [statin("2025-03-31", 45)])])).toEqual(
      [],
    );
    expect(found([visit("A", [statin("2025-03-02", 45)]), visit("B", [statin("2025-03-31", 46)])])).toEqual([
      "quantity_limit:B>A",
    ]);
    expect(found([visit("A", [statin("2025-03-01", 45)]), visit("B", [statin("2025-03-31", 46)])])).toEqual(
      [],
    );
  });

  it("exclusive_items: same service date and institution only", () => {
    const holter = (d = "2025-03-01") => item("310701022000000", { service_date: d });
    const ecg = (d = "2025-03-01") => item("310701021000000", { service_date: d });
    expect(found([visit("A", [holter(), ecg()])])).toEqual(["exclusive_items:A"]);
    expect(found([visit("A", [holter()]), visit("B", [ecg()])])).toEqual(["exclusive_items:A>B"]);
    expect(found([visit("A", [holter()]), visit("B", [ecg("2025-03-02")])])).toEqual([]);
    expect(found([visit("A", [holter()]), visit("B", [ecg()], { institution_id: "H99" })])).toEqual([]);
    // Only the row's own item is the suspect; the pair's other side is not.
    expect(found([visit("B", [ecg()])])).toEqual([]);
  });

  it("diagnosis_required: fires unless some diagnosis starts with a listed prefix", () => {
    const glp = item("XA10BJA001A001010100001", { category: "DRUG" });
    const dx = (code: string) => [{ code, name: code, primary: true }];
    expect(found([visit("A", [glp], { diagnoses: dx("E11.900") })])).toEqual([]);
    expect(found([visit("A", [glp], { diagnoses: dx("E13.000") })])).toEqual([]);
    expect(found([visit("A", [glp], { diagnoses: dx("E10.900") })])).toEqual(["diagnosis_required:A"]);
  });

  it("price_limit: the standard of the institution's level (H3415… is level 2 here); equal is allowed", () => {
    const acu = (unit: number) => item("311201001000000", { unit_price_fen: unit, quantity: 2 });
    expect(found([visit("A", [acu(3500)])])).toEqual([]);
    const [s] = run([visit("A", [acu(3501)])]);
    expect(s?.rule).toBe("price_limit");
    expect(s?.amount_at_risk_fen).toBe(2);
    expect(found([visit("A", [acu(9999)], { institution_id: "X1" })])).toEqual([]);
  });

  it("age_sex: completed years on the service date, sex on items and diagnoses", () => {
    const syrup = (d: string) => item("ZA06CAE0020010101748", { service_date: d, category: "DRUG" });
    const born = { birth_date: "2007-03-01" };
    expect(found([visit("A", [syrup("2025-02-28")], born)])).toEqual([]);
    expect(found([visit("A", [syrup("2025-03-01")], born)])).toEqual(["age_sex:A"]);
    const elderly = item("XR05AAA001", { category: "DRUG", service_date: "2025-03-01" });
    expect(found([visit("A", [elderly], { birth_date: "1960-03-01" })])).toEqual([]);
    expect(found([visit("A", [elderly], { birth_date: "1960-03-02" })])).toEqual(["age_sex:A"]);
    const bph = [{ code: "N40.x00", name: "前列腺增生", primary: true }];
    expect(found([visit("A", [item("001102000010000")], { diagnoses: bph })])).toEqual([]);
    expect(found([visit("A", [item("001102000010000")], { diagnoses: bph, gender: "F" })])).toEqual([
      "age_sex:A",
    ]);
    expect(found([visit("A", [item("331000000000000")], { gender: "M" })])).toEqual(["age_sex:A"]);
  });
});

describe("rule tables: versions and order", () => {
  const statin = (d: string, q: number) =>
    item("XC10AAA023A001010100932", { service_date: d, quantity: q, category: "DRUG" });
  const events = [visit("A", [statin("2025-03-02", 30)]), visit("B", [statin("2025-03-20", 31)])];

  it("judges by the configured version, the newest by default, and nothing for a version not loaded", () => {
    expect(found(events, { version: "2025.1" })).toEqual([]);
    expect(found(events, { version: "2025.2" })).toEqual(["quantity_limit:B>A"]);
    expect(found(events, {})).toEqual(["quantity_limit:B>A"]);
    expect(found(events, { version: "1999" })).toEqual([]);
    const [s] = run(events, { version: "2025.2" });
    expect(s?.evidence).toMatchObject({
      table_version: "2025.2",
      hits: [{ row_id: "Q-DAYS", title_zh: "标题Q-DAYS" }],
    });
  });

  it("switches version on a running engine: retained state is judged by the new table when an event re-evaluates it", () => {
    const active = activate([ruleTables], catalogs, { rule_table: { version: "2025.1" } });
    const engine = new Engine({ store: testPersonStore(), detectors: active });
    for (const e of events) engine.process(asEvent(e));
    expect([...engine.activeSuspects()]).toEqual([]);
    const a = active[0] as (typeof active)[number];
    a.ctx = { ...a.ctx, config: ruleTables.config.parse({ version: "2025.2" }) };
    // C (a day before B) re-evaluates B: 30 + 1 + 31 units is above 2025.2's 60, under 2025.1's 90.
    engine.process(asEvent(visit("C", [statin("2025-03-19", 1)])));
    expect([...engine.activeSuspects()].map((s) => s.settlement_ids.join(">"))).toEqual(["B>A>C"]);
  });

  it("finds the same in any order, with reversals (property)", () => {
    const seen = new Set<string>();
    const codes = ["XC10AAA023A001010100932", "310701022000000", "310701021000000", "001108100010000"];
    const settlementArb = fc.record({
      day: fc.integer({ min: 0, max: 40 }),
      inst: fc.constantFrom("H3415001", "H3415002"),
      lines: fc.array(fc.record({ code: fc.constantFrom(...codes), qty: fc.constantFrom(1, 2, 40) }), {
        minLength: 1,
        maxLength: 3,
      }),
    });
    fc.assert(
      fc.property(
        fc.array(settlementArb, { minLength: 1, maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 3 }),
        fc.nat(),
        (specs, reversed, seed) => {
          const s = specs.map((x, i) => {
            const d = new Date(Date.UTC(2025, 2, 1 + x.day)).toISOString().slice(0, 10);
            return visit(
              `S${i}`,
              x.lines.map((l) => item(l.code, { service_date: d, quantity: l.qty })),
              { institution_id: x.inst },
            );
          });
          const all = [
            ...s,
            ...[...new Set(reversed.map((i) => i % s.length))].map((i) => reversal(s[i] as Settlement)),
          ];
          const permuted = fc.sample(
            fc.shuffledSubarray(all, { minLength: all.length, maxLength: all.length }),
            { seed, numRuns: 1 },
          )[0] as Settlement[];
          const want = canonical(run(all, { version: "2025.2" }));
          expect(canonical(run(permuted, { version: "2025.2" }))).toEqual(want);
          for (const x of run(all, { version: "2025.2" }))
            seen.add(`${x.rule}/${x.settlement_ids.length > 1}`);
        },
      ),
      { numRuns: 200 },
    );
    // Not vacuous: findings within one settlement and across settlements both occur.
    expect([...seen].sort()).toEqual([
      "exclusive_items/false",
      "exclusive_items/true",
      "quantity_limit/false",
      "quantity_limit/true",
    ]);
  });
});
