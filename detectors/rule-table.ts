// Rule tables (规则库): rules as rows a bureau edits, not code. One CSV file per version in
// `<reference>/rules/<version>.csv`, loaded at start-up with the catalogs and indexed by code
// prefix per kind, so a line costs one trie walk per kind whatever the table's size.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import type { Severity } from "../schemas/index.ts";
import { PrefixIndex } from "./prefix-index.ts";
import { remembered } from "./sdk.ts";

export const RULE_KINDS = [
  "quantity_limit",
  "exclusive_items",
  "diagnosis_required",
  "price_limit",
  "age_sex",
] as const;
export type RuleKind = (typeof RULE_KINDS)[number];

export const RULE_COLUMNS = [
  "id",
  "kind",
  "code_prefix",
  "params",
  "severity",
  "title_zh",
  "title_en",
  "source",
  "source_ref",
  "effective_from",
] as const;

interface RowBase {
  readonly id: string;
  readonly codePrefix: string;
  readonly severity: Severity;
  readonly titleZh: string;
  readonly titleEn: string;
  /** Provenance: the document, its article or item, and the date the rule applies from. */
  readonly source: string;
  readonly sourceRef: string;
  readonly effectiveFrom: string;
}
export type RuleRow = RowBase &
  (
    | { kind: "quantity_limit"; max: number; per: "day" | "stay" | "days"; days: number }
    | { kind: "exclusive_items"; with: string }
    | { kind: "diagnosis_required"; diagnoses: readonly string[] }
    | { kind: "price_limit"; limits: Readonly<Record<1 | 2 | 3, number | undefined>> }
    | {
        kind: "age_sex";
        target: "item" | "diagnosis";
        sex: "M" | "F" | undefined;
        minAge: number | undefined;
        maxAge: number | undefined;
      }
  );
export type RowOf<K extends RuleKind> = Extract<RuleRow, { kind: K }>;

export interface RuleTable {
  readonly version: string;
  readonly file: string;
  readonly rows: readonly RuleRow[];
  /** Item-code rows per kind (age_sex: target item), longest prefix wins: `lookup`, one kind at a time. */
  readonly items: { readonly [K in RuleKind]: { longest(code: string): RowOf<K> | undefined } };
  /** age_sex rows on diagnosis codes. */
  readonly diagnoses: PrefixIndex<RowOf<"age_sex">>;
  /** The age_sex row a diagnosis code falls under (the longest prefix), remembered per code. */
  diagnosisRow(code: string): RowOf<"age_sex"> | undefined;
  /** The row of each kind a line's code falls under (the longest prefix per kind), in one walk. */
  lookup(code: string): ItemRows;
  /** The `with` prefixes of exclusive_items rows that start `code` (a line of it may be their partner), remembered per code. */
  partnerOf(code: string): readonly string[];
}

/**
 * The item-code rows one code falls under, by kind (age_sex: target item). One class, every kind a
 * field from the start: evaluate reads these for every line, and objects of one shape keep those
 * reads monomorphic (objects built key by key in varying orders made them megamorphic).
 */
export class ItemRows {
  quantity_limit: RowOf<"quantity_limit"> | undefined = undefined;
  exclusive_items: RowOf<"exclusive_items"> | undefined = undefined;
  diagnosis_required: RowOf<"diagnosis_required"> | undefined = undefined;
  price_limit: RowOf<"price_limit"> | undefined = undefined;
  age_sex: RowOf<"age_sex"> | undefined = undefined;
  /** KIND_BIT of each kind with a row. */
  kinds = 0;

  set(row: ItemRow): void {
    (this as Record<RuleKind, RuleRow | undefined>)[row.kind] = row;
    this.kinds |= KIND_BIT[row.kind];
  }

  /** Takes `other`'s rows over these (a longer prefix's rows win). */
  take(other: ItemRows): void {
    for (const k of RULE_KINDS) {
      const row = other[k];
      if (row) this.set(row);
    }
  }
}

/** One bit per kind, for ItemRows.kinds. */
export const KIND_BIT: Readonly<Record<RuleKind, number>> = {
  quantity_limit: 1,
  exclusive_items: 2,
  diagnosis_required: 4,
  price_limit: 8,
  age_sex: 16,
};

type ItemRow = Exclude<RuleRow, { kind: "age_sex"; target: "diagnosis" }>;

/** What a code under no row looks up to (shared: it is never written). */
const NO_ROWS = new ItemRows();

/** Institution id prefix → level (1, 2, 3), for price_limit; `<reference>/rules/institution-levels.csv`. */
export type InstitutionLevels = PrefixIndex<1 | 2 | 3>;

export interface RuleTables {
  /** By version, in ascending version order. */
  readonly versions: ReadonlyMap<string, RuleTable>;
  /** The last version in file-name order, what an unconfigured detector judges by. */
  readonly newest: RuleTable | undefined;
  readonly levels: InstitutionLevels;
  /** The longest window of any per-days row of any version (1 without one): how far a line reaches into later days. */
  readonly reachDays: number;
  /** Whether a line or diagnosis code matters to some row of some version (what extract keeps). */
  relevantItem(code: string): boolean;
  relevantDiagnosis(code: string): boolean;
}

/**
 * A catalog whose own detector already judges one reason (pediatric_drug: an age ceiling on drugs;
 * gender_mismatch: a sex on items or diagnoses). An age_sex row giving that reason for a code the
 * catalog also covers is a load error: each suspect is found once for one reason, by one detector.
 */
export interface RestatedCatalog {
  readonly file: string;
  readonly detector: string;
  readonly index: PrefixIndex<{ readonly code_prefix: string }>;
  /** Whether the row gives the catalog's reason. */
  readonly judges: (row: RowOf<"age_sex">) => boolean;
}

export const RULES_DIR = "rules";

export const LEVELS_FILE = "institution-levels.csv";

class RowError extends Error {
  constructor(file: string, row: number, column: string, message: string) {
    super(`${file}: row ${row}, column ${column}: ${message}`);
  }
}

const SEVERITIES: readonly Severity[] = ["REMIND", "WARN", "BLOCK"];

function paramsOf(text: string, fail: (m: string) => never): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(";").map((p) => p.trim())) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    if (eq <= 0) fail(`expected key=value pairs separated by ';', got ${JSON.stringify(part)}`);
    const key = part.slice(0, eq).trim();
    if (out.has(key)) fail(`${key} is given twice`);
    out.set(key, part.slice(eq + 1).trim());
  }
  return out;
}

/** A CSV file's header and rows (as arrays: a 56,500-row table parses half again as fast as into objects). */
interface Csv {
  header: readonly string[];
  rows: readonly string[][];
}

function readCsv(file: string): Csv {
  const [header = [], ...rows] = parse(readFileSync(file, "utf8"), {
    skip_empty_lines: true,
    trim: true,
    bom: true,
  }) as string[][];
  return { header, rows };
}

/** Reads a row's cell by column name (empty when the row is short of it). */
function cellsOf(file: string, { header }: Csv, columns: readonly string[]) {
  // An empty file is an empty table; a header must name every column.
  const missing = header.length === 0 ? [] : columns.filter((c) => !header.includes(c));
  if (missing.length > 0) throw new RowError(file, 1, missing.join(", "), "missing from the header");
  const index = new Map(columns.map((c) => [c, header.indexOf(c)]));
  return (row: readonly string[], column: string): string => row[index.get(column) as number] ?? "";
}

/** Parses one version's rows; every error names the file, the row (as a spreadsheet counts it) and the column. */
export function parseRuleTable(
  version: string,
  file: string,
  csv: Csv,
  catalogs: readonly RestatedCatalog[] = [],
): RuleTable {
  const cell = cellsOf(file, csv, RULE_COLUMNS);
  const rows: RuleRow[] = [];
  const diagnoses = new PrefixIndex<RowOf<"age_sex">>();
  const merged = new PrefixIndex<ItemRows>();
  const partners = new PrefixIndex<string>();
  const ids = new Set<string>();
  csv.rows.forEach((r, i) => {
    const at = i + 2;
    const fail = (column: string, m: string): never => {
      throw new RowError(file, at, column, m);
    };
    const text = (column: (typeof RULE_COLUMNS)[number], required = true) => {
      const v = cell(r, column);
      if (required && v === "") fail(column, "is empty");
      return v;
    };
    const id = text("id");
    if (ids.has(id)) fail("id", `${id} is used by an earlier row`);
    ids.add(id);
    const kind = text("kind") as RuleKind;
    if (!RULE_KINDS.includes(kind))
      fail("kind", `${JSON.stringify(kind)} is not one of ${RULE_KINDS.join(", ")}`);
    const severity = text("severity") as Severity;
    if (!SEVERITIES.includes(severity))
      fail("severity", `${JSON.stringify(severity)} is not one of ${SEVERITIES.join(", ")}`);
    const effectiveFrom = text("effective_from", false);
    if (effectiveFrom !== "" && !/^\d{4}-\d{2}-\d{2}$/.test(effectiveFrom))
      fail("effective_from", "expected YYYY-MM-DD or empty");
    const base: RowBase = {
      id,
      codePrefix: text("code_prefix"),
      severity,
      titleZh: text("title_zh"),
      titleEn: text("title_en"),
      source: text("source"),
      sourceRef: text("source_ref", false),
      effectiveFrom,
    };
    const p = paramsOf(text("params", false), (m) => fail("params", m));
    const known = (...keys: string[]) => {
      for (const k of p.keys())
        if (!keys.includes(k)) fail("params", `${k} is not a parameter of ${kind} (${keys.join(", ")})`);
    };
    const num = (key: string, required: boolean): number | undefined => {
      const v = p.get(key);
      if (v === undefined) return required ? fail("params", `${key} is required for ${kind}`) : undefined;
      const n = Number(v);
      if (v === "" || !Number.isFinite(n) || n < 0) fail("params", `${key}=${v} is not a number ≥ 0`);
      return n;
    };
    let row: RuleRow;
    switch (kind) {
      case "quantity_limit": {
        known("max", "per", "days");
        const per = p.get("per") ?? "day";
        if (per !== "day" && per !== "stay" && per !== "days")
          fail("params", `per=${per}: expected day, stay or days`);
        const days = per === "days" ? (num("days", true) as number) : 1;
        if (!Number.isInteger(days) || days < 1) fail("params", `days=${days} is not a whole number ≥ 1`);
        row = { ...base, kind, max: num("max", true) as number, per: per as "day" | "stay" | "days", days };
        break;
      }
      case "exclusive_items": {
        known("with");
        const w = p.get("with") ?? "";
        if (w === "") fail("params", "with (the other item's code prefix) is required for exclusive_items");
        row = { ...base, kind, with: w };
        break;
      }
      case "diagnosis_required": {
        known("diagnoses");
        const list = (p.get("diagnoses") ?? "")
          .split("|")
          .map((d) => d.trim())
          .filter(Boolean);
        if (list.length === 0) fail("params", "diagnoses (prefixes separated by '|') is required");
        row = { ...base, kind, diagnoses: list };
        break;
      }
      case "price_limit": {
        known("level1", "level2", "level3");
        const limits = { 1: num("level1", false), 2: num("level2", false), 3: num("level3", false) };
        if (limits[1] === undefined && limits[2] === undefined && limits[3] === undefined)
          fail("params", "price_limit needs level1, level2 or level3 (unit price in fen)");
        row = { ...base, kind, limits };
        break;
      }
      case "age_sex": {
        known("target", "sex", "min_age", "max_age");
        const target = p.get("target") ?? "item";
        if (target !== "item" && target !== "diagnosis")
          fail("params", `target=${target}: expected item or diagnosis`);
        const sex = p.get("sex");
        if (sex !== undefined && sex !== "M" && sex !== "F") fail("params", `sex=${sex}: expected M or F`);
        const minAge = num("min_age", false);
        const maxAge = num("max_age", false);
        if (sex === undefined && minAge === undefined && maxAge === undefined)
          fail("params", "age_sex needs sex, min_age or max_age");
        row = {
          ...base,
          kind,
          target: target as "item" | "diagnosis",
          sex: sex as "M" | "F" | undefined,
          minAge,
          maxAge,
        };
        for (const c of catalogs) {
          const entry = c.judges(row) ? c.index.overlapping(row.codePrefix) : undefined;
          if (entry)
            fail(
              "code_prefix",
              `${row.codePrefix} overlaps ${c.file} prefix ${entry.code_prefix}, which ${c.detector} already judges: one reason, one detector (drop the row or the catalog entry)`,
            );
        }
        break;
      }
    }
    const onDiagnosis = row.kind === "age_sex" && row.target === "diagnosis";
    const sameCode = onDiagnosis ? undefined : (merged.get(row.codePrefix) ?? new ItemRows());
    const other = sameCode ? sameCode[row.kind] : diagnoses.get(row.codePrefix);
    if (other)
      fail(
        "code_prefix",
        `${row.codePrefix} already has ${kind} row ${other.id}: one row per prefix and kind`,
      );
    if (sameCode) {
      sameCode.set(row as ItemRow);
      merged.add(row.codePrefix, sameCode);
    } else diagnoses.add(row.codePrefix, row as RowOf<"age_sex">);
    if (row.kind === "exclusive_items") partners.add(row.with, row.with);
    rows.push(row);
  });
  const lookup = remembered((code: string): ItemRows => {
    let found: ItemRows | undefined;
    merged.eachPrefix(code, (at) => {
      found ??= new ItemRows();
      found.take(at);
    });
    return found ?? NO_ROWS;
  });
  const items = Object.fromEntries(
    RULE_KINDS.map((k) => [k, { longest: (code: string) => lookup(code)[k] }]),
  ) as unknown as RuleTable["items"];
  const partnerOf = remembered((code: string) => {
    const out: string[] = [];
    partners.eachPrefix(code, (w) => out.push(w));
    return out;
  });
  const diagnosisRow = remembered((code: string) => diagnoses.longest(code));
  return { version, file, rows, items, diagnoses, lookup, partnerOf, diagnosisRow };
}

function loadLevels(file: string): InstitutionLevels {
  const levels: InstitutionLevels = new PrefixIndex();
  if (!existsSync(file)) return levels;
  const csv = readCsv(file);
  const cell = cellsOf(file, csv, ["institution_prefix", "level"]);
  csv.rows.forEach((r, i) => {
    const prefix = cell(r, "institution_prefix");
    if (prefix === "") throw new RowError(file, i + 2, "institution_prefix", "is empty");
    const level = Number(cell(r, "level"));
    if (level !== 1 && level !== 2 && level !== 3)
      throw new RowError(file, i + 2, "level", `${cell(r, "level")} is not 1, 2 or 3`);
    levels.add(prefix, level);
  });
  return levels;
}

/**
 * Every `<version>.csv` of `<dir>/rules` (none when the folder is absent), and the institution
 * levels; rows restating `catalogs` are refused.
 */
export function loadRuleTables(dir: string, catalogs: readonly RestatedCatalog[] = []): RuleTables {
  const folder = join(dir, RULES_DIR);
  const versions = new Map<string, RuleTable>();
  const files = existsSync(folder)
    ? readdirSync(folder)
        .filter((f) => f.endsWith(".csv") && f !== LEVELS_FILE)
        .sort()
    : [];
  for (const f of files) {
    const file = join(folder, f);
    versions.set(f.slice(0, -4), parseRuleTable(f.slice(0, -4), file, readCsv(file), catalogs));
  }
  const tables = [...versions.values()];
  let reachDays = 1;
  for (const t of tables)
    for (const r of t.rows)
      if (r.kind === "quantity_limit" && r.per === "days") reachDays = Math.max(reachDays, r.days);
  return {
    versions,
    levels: loadLevels(join(folder, LEVELS_FILE)),
    reachDays,
    newest: tables.at(-1),
    // Through each version's own remembered lookups (the ones evaluate makes), not an index of their own.
    relevantItem: remembered((code) =>
      tables.some((t) => t.lookup(code).kinds !== 0 || t.partnerOf(code).length > 0),
    ),
    relevantDiagnosis: remembered((code) => tables.some((t) => t.diagnosisRow(code) !== undefined)),
  };
}
