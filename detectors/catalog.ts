// Reference catalogs: loaded once at start-up from CSV (bundled, or a folder given in configuration).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "csv-parse/sync";
import { z } from "zod";

interface TrieNode<V> {
  children: Map<number, TrieNode<V>>;
  value: V | undefined;
}

/**
 * Longest-prefix lookup: a walk down a character trie, at most one step per character of the
 * code and no allocation, never a scan over all prefixes.
 */
export class PrefixIndex<V> {
  private readonly root: TrieNode<V> = { children: new Map(), value: undefined };
  private count = 0;

  get(prefix: string): V | undefined {
    let node: TrieNode<V> | undefined = this.root;
    for (let i = 0; i < prefix.length && node; i++) node = node.children.get(prefix.charCodeAt(i));
    return node?.value;
  }

  add(prefix: string, value: V): void {
    let node = this.root;
    for (let i = 0; i < prefix.length; i++) {
      const c = prefix.charCodeAt(i);
      let next = node.children.get(c);
      if (!next) {
        next = { children: new Map(), value: undefined };
        node.children.set(c, next);
      }
      node = next;
    }
    if (node.value === undefined) this.count++;
    node.value = value;
  }

  longest(code: string): V | undefined {
    let found: V | undefined;
    let node: TrieNode<V> | undefined = this.root;
    for (let i = 0; i < code.length; i++) {
      node = node.children.get(code.charCodeAt(i));
      if (!node) break;
      if (node.value !== undefined) found = node.value;
    }
    return found;
  }

  get size(): number {
    return this.count;
  }
}

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
  return { pediatricDrugs, sexDiagnoses, sexItems, source: dir };
}
