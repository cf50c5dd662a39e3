// Reference catalogs: loaded once at start-up from CSV (bundled, or a folder given in configuration).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "csv-parse/sync";
import { z } from "zod";
import { PrefixIndex } from "./prefix-index.ts";
import { loadRuleTables, type RestatedCatalog, type RuleTables } from "./rule-table.ts";

export { PrefixIndex };

const pediatricRow = z.object({
  code_prefix: z.string().min(1),
  generic_name: z.string(),
  age_limit: z
    .string()
    .regex(/^\d*$/, "age_limit must be empty or a whole number")
    .transform((s) => (s === "" ? null : Number(s))),
  restriction: z.string(),
  source: z.string(),
});
export type PediatricEntry = z.infer<typeof pediatricRow>;

const sexRow = z.object({
  code_prefix: z.string().min(1),
  kind: z.enum(["DIAGNOSIS", "ITEM"]),
  allowed_sex: z.enum(["M", "F"]),
  description: z.string(),
  source: z.string(),
});
export type SexRestriction = z.infer<typeof sexRow>;

export interface Catalogs {
  readonly pediatricDrugs: PrefixIndex<PediatricEntry>;
  readonly sexDiagnoses: PrefixIndex<SexRestriction>;
  readonly sexItems: PrefixIndex<SexRestriction>;
  /** The rule tables of `<dir>/rules/`, every version (rule-table.ts). */
  readonly ruleTables: RuleTables;
  /** Where the catalogs came from, for evidence and the run record. */
  readonly source: string;
}

export const PEDIATRIC_FILE = "pediatric-drugs.csv";
export const SEX_FILE = "sex-restricted-codes.csv";
export const BUNDLED_REFERENCE_DIR = fileURLToPath(new URL("./reference/", import.meta.url));

function readRows<T>(file: string, row: z.ZodType<T>): T[] {
  const records: Record<string, string>[] = parse(readFileSync(file, "utf8"), {
    columns: true,
    skip_empty_lines: true,
    trim: true,
    bom: true,
  });
  return records.map((r, i) => {
    const parsed = row.safeParse(r);
    if (!parsed.success) {
      throw new Error(
        `${file}: row ${i + 2}: ${parsed.error.issues.map((x) => `${x.path.join(".")}: ${x.message}`).join("; ")}`,
      );
    }
    return parsed.data;
  });
}

/**
 * Catalogs list one generic name under several product names with the same prefix; such
 * repeats are kept once, but a repeat that changes the rule's meaning is an error.
 */
function addOnce<V>(
  index: PrefixIndex<V>,
  prefix: string,
  value: V,
  meaning: (v: V) => unknown,
  file: string,
): void {
  const existing = index.get(prefix);
  if (existing === undefined) index.add(prefix, value);
  else if (meaning(existing) !== meaning(value)) {
    throw new Error(`${file}: prefix ${prefix} is listed twice with different rules`);
  }
}

export function loadCatalogs(dir: string = BUNDLED_REFERENCE_DIR): Catalogs {
  const pediatricFile = join(dir, PEDIATRIC_FILE);
  const sexFile = join(dir, SEX_FILE);
  const pediatricDrugs = new PrefixIndex<PediatricEntry>();
  for (const r of readRows(pediatricFile, pediatricRow)) {
    addOnce(pediatricDrugs, r.code_prefix, r, (v) => v.age_limit, pediatricFile);
  }
  const sexDiagnoses = new PrefixIndex<SexRestriction>();
  const sexItems = new PrefixIndex<SexRestriction>();
  for (const r of readRows(sexFile, sexRow)) {
    addOnce(
      r.kind === "DIAGNOSIS" ? sexDiagnoses : sexItems,
      r.code_prefix,
      r,
      (v) => v.allowed_sex,
      sexFile,
    );
  }
  const restated: RestatedCatalog[] = [
    {
      file: PEDIATRIC_FILE,
      detector: "pediatric_drug",
      index: pediatricDrugs,
      judges: (r) => r.target === "item" && r.maxAge !== undefined,
    },
    {
      file: SEX_FILE,
      detector: "gender_mismatch",
      index: sexItems,
      judges: (r) => r.target === "item" && r.sex !== undefined,
    },
    {
      file: SEX_FILE,
      detector: "gender_mismatch",
      index: sexDiagnoses,
      judges: (r) => r.target === "diagnosis" && r.sex !== undefined,
    },
  ];
  return {
    pediatricDrugs,
    sexDiagnoses,
    sexItems,
    ruleTables: loadRuleTables(dir, restated),
    source: dir,
  };
}
