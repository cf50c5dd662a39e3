// Code pools checked against the loaded catalogs, so the background is clean by construction:
// a background code never matches the pediatric catalog, and a sex-restricted one is only
// ever used for the sex the catalog allows. Scheme codes come from the catalogs themselves.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { BUNDLED_REFERENCE_DIR, type Catalogs, PEDIATRIC_FILE, SEX_FILE } from "../../detectors/catalog.ts";
import { hashSeed } from "./prng.ts";
import {
  type Category,
  DIAGNOSES,
  type DiagSeed,
  DRUGS,
  type ItemSeed,
  MATERIALS,
  SERVICES,
  SEXED_DIAGNOSES,
} from "./reference-data.ts";

export type Sex = "M" | "F";

export interface Item {
  key: string;
  code: string;
  name: string;
  category: Category;
  price: number;
  qty: readonly [number, number];
  halves: boolean;
  /** The only sex the catalog allows this code for; undefined when unrestricted. */
  sex?: Sex;
  /** Pediatric catalog drugs: the age (completed years) from which a line is a finding. */
  ageLimit?: number;
  /** Not covered by the fund at all (丙类): paid entirely out of pocket. */
  selfPay?: boolean;
  /** Billed at `price` everywhere (a scheme's own item), not scaled by the institution's prices. */
  fixedPrice?: boolean;
}

export interface Diag extends DiagSeed {
  sex?: Sex;
}

export interface CodedDiagnosis {
  code: string;
  name: string;
}

export interface Pools {
  item(key: string): Item;
  has(key: string): boolean;
  /** Pediatric-catalog drugs usable on their own (no sex restriction), by age limit. */
  pediatric: Item[];
  diagnoses: Diag[];
  /** Diagnosis codes the catalog restricts to the given sex. */
  sexDiagnoses: Record<Sex, CodedDiagnosis[]>;
  /** Item codes the catalog restricts to the given sex (and not in the pediatric catalog). */
  sexItems: Record<Sex, Item[]>;
  /** Self-pay oncology drugs for the out-of-pocket scheme. */
  selfPay: Item[];
  /** Covered drugs restricted to neither sex: what detector schemes bill. */
  drugs: Item[];
}

const SELF_PAY: readonly ItemSeed[] = [
  {
    key: "nab_paclitaxel",
    code: "XL01CDZ001B001010900101",
    name: "注射用紫杉醇(白蛋白结合型)",
    category: "DRUG",
    price: 398_000,
    qty: [1, 2],
  },
  {
    key: "osimertinib",
    code: "XL01EBA001A001010900102",
    name: "甲磺酸奥希替尼片",
    category: "DRUG",
    price: 510_000,
    qty: [1, 1],
  },
  {
    key: "pet_ct",
    code: "002399000010000",
    name: "正电子发射计算机断层显像(PET/CT)",
    category: "SERVICE",
    price: 720_000,
    qty: [1, 1],
  },
];

interface CatalogRow {
  code_prefix: string;
  generic_name?: string;
  age_limit?: string;
  kind?: string;
  allowed_sex?: string;
  description?: string;
}

function readCsv(file: string): CatalogRow[] {
  return parse(readFileSync(file, "utf8"), { columns: true, skip_empty_lines: true, trim: true, bom: true });
}

/** A full-length code for a catalog prefix: drugs are 23 (X) or 20 (Z) characters, service items 15. */
export function fullCode(prefix: string): string {
  const target = prefix.startsWith("X")
    ? 23
    : prefix.startsWith("Z")
      ? 20
      : /^\d/.test(prefix)
        ? 15
        : prefix.length + 6;
  if (prefix.length >= target) return prefix;
  return `${prefix}0101000000000000000000000`.slice(0, target);
}

function categoryOf(code: string): Category {
  return code.startsWith("X") || code.startsWith("Z") ? "DRUG" : /^\d/.test(code) ? "SERVICE" : "MATERIAL";
}

/** A stable pseudo-price for a catalog code, so the same code always has the same price. */
function priceFor(code: string, lo: number, hi: number): number {
  return lo + (hashSeed(code) % (hi - lo + 1));
}

export function buildPools(catalogs: Catalogs, referenceDir: string = BUNDLED_REFERENCE_DIR): Pools {
  const items = new Map<string, Item>();
  const problems: string[] = [];
  for (const seed of [...DRUGS, ...SERVICES, ...MATERIALS, ...SELF_PAY]) {
    if (catalogs.pediatricDrugs.longest(seed.code)) {
      // Only the catalog decides what is pediatric: such a code cannot be background.
      problems.push(seed.code);
      continue;
    }
    const sex = catalogs.sexItems.longest(seed.code)?.allowed_sex;
    items.set(seed.key, { ...seed, halves: seed.halves ?? false, ...(sex ? { sex } : {}) });
  }
  for (const k of SELF_PAY) {
    const it = items.get(k.key);
    if (it) it.selfPay = true;
  }

  const diagnoses: Diag[] = DIAGNOSES.map((d) => {
    const sex = catalogs.sexDiagnoses.longest(d.code)?.allowed_sex;
    return sex ? { ...d, sex } : { ...d };
  });

  const pediatric: Item[] = [];
  const seen = new Set<string>();
  for (const row of readCsv(join(referenceDir, PEDIATRIC_FILE))) {
    const code = fullCode(row.code_prefix);
    const entry = catalogs.pediatricDrugs.longest(code);
    if (!entry || seen.has(code) || catalogs.sexItems.longest(code)) continue;
    if (!code.startsWith("X") && !code.startsWith("Z")) continue;
    seen.add(code);
    pediatric.push({
      key: `ped:${code}`,
      code,
      name: entry.generic_name,
      category: "DRUG",
      price: priceFor(code, 900, 4800),
      qty: [1, 2],
      halves: false,
      ageLimit: entry.age_limit ?? 18,
    });
  }

  const sexDiagnoses: Record<Sex, CodedDiagnosis[]> = { M: [], F: [] };
  for (const d of SEXED_DIAGNOSES) {
    if (catalogs.sexDiagnoses.longest(d.code)?.allowed_sex === d.sex)
      sexDiagnoses[d.sex].push({ code: d.code, name: d.name });
  }
  const sexRows = readCsv(join(referenceDir, SEX_FILE));
  for (const sex of ["M", "F"] as const) {
    if (sexDiagnoses[sex].length > 0) continue;
    // Catalog without the curated codes: derive codes from its own prefixes.
    for (const row of sexRows) {
      if (row.kind !== "DIAGNOSIS" || row.allowed_sex !== sex) continue;
      const p = row.code_prefix;
      const code = p.length <= 3 ? `${p}.900` : p.length === 5 ? `${p}00` : p;
      if (catalogs.sexDiagnoses.longest(code)?.allowed_sex === sex) {
        sexDiagnoses[sex].push({ code, name: row.description ?? code });
      }
      if (sexDiagnoses[sex].length >= 12) break;
    }
  }

  const sexItems: Record<Sex, Item[]> = { M: [], F: [] };
  const itemRows = sexRows.filter((r) => r.kind === "ITEM");
  // Spread the picks over the catalog, not just its first rows.
  const stride = Math.max(1, Math.floor(itemRows.length / 120));
  for (let i = 0; i < itemRows.length; i += stride) {
    const row = itemRows[i] as CatalogRow;
    const code = fullCode(row.code_prefix);
    const entry = catalogs.sexItems.longest(code);
    if (!entry || catalogs.pediatricDrugs.longest(code)) continue;
    const category = categoryOf(code);
    const list = sexItems[entry.allowed_sex];
    if (list.some((x) => x.code === code)) continue;
    list.push({
      key: `sex:${code}`,
      code,
      name: entry.description,
      category,
      price: category === "DRUG" ? priceFor(code, 1200, 6800) : priceFor(code, 5000, 38000),
      qty: [1, 1],
      halves: false,
      sex: entry.allowed_sex,
    });
  }

  if (problems.length > 0 && items.size < 20) {
    throw new Error(`generator item codes collide with the pediatric catalog: ${problems.join(", ")}`);
  }

  return {
    item(key: string): Item {
      const it = items.get(key);
      if (!it) throw new Error(`unknown item ${key}`);
      return it;
    },
    has: (key: string) => items.has(key),
    pediatric,
    diagnoses,
    sexDiagnoses,
    sexItems,
    selfPay: SELF_PAY.map((s) => items.get(s.key)).filter((x): x is Item => x !== undefined),
    drugs: DRUGS.map((d) => items.get(d.key)).filter((x): x is Item => x !== undefined && !x.sex),
  };
}
