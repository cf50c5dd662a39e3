import { z } from "zod";
import type { Severity } from "../schemas/index.ts";
import { addDays, ageOn } from "./dates.ts";
import {
  type ItemRows,
  KIND_BIT,
  type RowOf,
  type RuleRow,
  type RuleTable,
  type RuleTables,
} from "./rule-table.ts";
import { ruleTableScheme } from "./rule-table-scheme.ts";
import { bySettledAt, defineDetector, type Finding, type SettlementRecord, sharedText } from "./sdk.ts";

/** A line that some row of some loaded version may judge: [code, date, quantity, unit price, amount, line_no, name]. */
type Line = [
  code: string,
  date: string,
  quantity: number,
  unitFen: number,
  amountFen: number,
  lineNo: number,
  name: string,
];
/** Values per line in `RuleFacts.lines`, in Line's order. */
const STRIDE = 7;
interface RuleFacts {
  /**
   * The kept lines, flat (STRIDE values each): one array per settlement instead of one per line, as
   * a person's retained state is mostly these (read back as Line by linesOf).
   */
  lines: (string | number)[];
  /** Every diagnosis code of the settlement (diagnosis_required reads them all). */
  diagnoses: string[];
  /** The earliest and latest service date of `lines` ("" when there are none): rules that look at other settlements skip those out of reach. */
  first: string;
  last: string;
}

/** The line of a facts array at offset `k`, as a Line (for evidence: only hits are read back so). */
const lineAt = (lines: readonly (string | number)[], k: number): Line => lines.slice(k, k + STRIDE) as Line;

/** Whether some line of `f` may be dated within [from, to]. */
const reaches = (f: RuleFacts | undefined, from: string, to: string): f is RuleFacts =>
  f !== undefined && f.lines.length > 0 && f.first <= to && f.last >= from;

const RANK: Record<Severity, number> = { REMIND: 0, WARN: 1, BLOCK: 2 };

/** The table of the configured version; the newest loaded when none is configured. */
function tableOf(tables: RuleTables, version: string | undefined): RuleTable | undefined {
  return version !== undefined ? tables.versions.get(version) : tables.newest;
}

/** A line's evidence fields, written into `into` (after what it holds) and returned. */
function lineOf(
  [code, date, quantity, unit, amount, lineNo, name]: Line,
  into: Record<string, unknown> = {},
): Record<string, unknown> {
  into.line_no = lineNo;
  into.item_code = code;
  into.item_name = name;
  into.service_date = date;
  into.quantity = quantity;
  into.unit_price_fen = unit;
  into.amount_fen = amount;
  return into;
}

/** A line of some settlement's facts: the one at offset `k` of `f.lines`. */
interface LineAt {
  s: SettlementRecord;
  f: RuleFacts;
  k: number;
}

interface Hit {
  row: RuleRow;
  line: Line;
  /** Kind-specific values compared, for the evidence. */
  detail: Record<string, unknown>;
  amountFen: number;
  related?: SettlementRecord[];
}

/**
 * A hit as its evidence: the row, the line (not for a diagnosis) and what was compared, in that order.
 * Built member by member rather than by spreading three objects: a flagged settlement lists every row
 * it hits, and the spreads were a tenth of the detector's time.
 */
function hitEvidence({ row: r, line, detail }: Hit): Record<string, unknown> {
  const e: Record<string, unknown> = {
    row_id: r.id,
    code_prefix: r.codePrefix,
    title_zh: r.titleZh,
    title_en: r.titleEn,
    source: r.source,
    source_ref: r.sourceRef,
  };
  if (detail.target !== "diagnosis") lineOf(line, e);
  for (const k in detail) e[k] = detail[k];
  return e;
}

/**
 * quantity_limit rows per N days: each line's row summed over the person's lines of that row in the
 * N days ending on its date. Those lines are gathered once per evaluation and sorted (date,
 * settlement id, line), so each window is found by binary search and summed in one order.
 */
function perDaysHits(
  subject: SettlementRecord,
  settlements: readonly SettlementRecord[],
  facts: (s: SettlementRecord) => RuleFacts | undefined,
  look: readonly ItemRows[],
  table: RuleTable,
  reachDays: number,
  hits: Hit[],
): void {
  const mine = facts(subject) as RuleFacts;
  const dateOf = (d: LineAt) => d.f.lines[d.k + 1] as string;
  // The settlement's per-days rows (a few) and the person's lines of each.
  const perDays: RowOf<"quantity_limit">[] = [];
  const linesOf: LineAt[][] = [];
  for (const rows of look) {
    const row = rows.quantity_limit;
    if (row?.per === "days" && !perDays.includes(row)) {
      perDays.push(row);
      linesOf.push([]);
    }
  }
  // Lines of other settlements count in windows that end on this one's dates at the latest.
  const from = addDays(mine.first, 1 - reachDays);
  for (const s of settlements) {
    const theirs = facts(s);
    if (!reaches(theirs, from, mine.last)) continue;
    for (let k = 0; k < theirs.lines.length; k += STRIDE) {
      const date = theirs.lines[k + 1] as string;
      if (date < from || date > mine.last) continue;
      const row = table.lookup(theirs.lines[k] as string).quantity_limit;
      const at = row ? perDays.indexOf(row) : -1;
      if (at >= 0) linesOf[at]?.push({ s, f: theirs, k });
    }
  }
  const order = (a: LineAt, b: LineAt) => {
    const da = dateOf(a);
    const db = dateOf(b);
    if (da !== db) return da < db ? -1 : 1;
    if (a.s.id !== b.s.id) return a.s.id < b.s.id ? -1 : 1;
    return (a.f.lines[a.k + 5] as number) - (b.f.lines[b.k + 5] as number);
  };
  for (const list of linesOf) list.sort(order);
  /** The first index of `list` whose date is not before `date` (after it, with `after`). */
  const bound = (list: LineAt[], date: string, after: boolean) => {
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const d = dateOf(list[mid] as LineAt);
      if (d < date || (after && d === date)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  for (let i = 0; i < look.length; i++) {
    const row = look[i]?.quantity_limit;
    if (row?.per !== "days") continue;
    const k = i * STRIDE;
    const date = mine.lines[k + 1] as string;
    const start = addDays(date, 1 - row.days);
    const list = linesOf[perDays.indexOf(row)] as LineAt[];
    const window = list.slice(bound(list, start, false), bound(list, date, true));
    let total = 0;
    for (const o of window) total += o.f.lines[o.k + 2] as number;
    if (total > row.max)
      hits.push({
        row,
        line: lineAt(mine.lines, k),
        amountFen: mine.lines[k + 4] as number,
        related: [...new Set(window.map((o) => o.s))].filter((s) => s !== subject),
        detail: { max: row.max, per: `${row.days} days`, total, window_from: start },
      });
  }
}

export const ruleTables = defineDetector({
  id: "rule_table",
  version: "1.0.0",
  description:
    "规则库: bureau-configured rules as rows of a versioned table (quantity limits, exclusive items, diagnosis-restricted payment, price limits, age and sex).",
  rules: {
    quantity_limit: { severity: "WARN", title: "Quantity above the table's limit", titleZh: "超数量限制" },
    exclusive_items: { severity: "WARN", title: "Mutually exclusive items on one day", titleZh: "互斥项目" },
    diagnosis_required: {
      severity: "WARN",
      title: "Item without a diagnosis the table requires",
      titleZh: "限定支付范围",
    },
    price_limit: { severity: "WARN", title: "Unit price above the standard", titleZh: "超标准收费" },
    age_sex: { severity: "WARN", title: "Item or diagnosis outside its age or sex", titleZh: "限年龄/性别" },
  },
  labels: {
    table_version: { zh: "规则库版本", en: "Table version" },
    hits: { zh: "命中规则", en: "Rows hit" },
    row_id: { zh: "规则编号", en: "Row" },
    code_prefix: { zh: "规则编码前缀", en: "Code prefix" },
    title_zh: { zh: "规则(中文)", en: "Rule (Chinese)" },
    title_en: { zh: "规则(英文)", en: "Rule (English)" },
    source_ref: { zh: "依据条目", en: "Source reference" },
    max: { zh: "上限", en: "Limit" },
    per: { zh: "计量单位", en: "Per" },
    total: { zh: "合计", en: "Total" },
    window_from: { zh: "窗口起始日期", en: "Window from" },
    with_prefix: { zh: "互斥项目前缀", en: "Exclusive with" },
    partner: { zh: "互斥明细", en: "Exclusive line" },
    required_diagnoses: { zh: "限定诊断", en: "Required diagnoses" },
    level: { zh: "机构等级", en: "Institution level" },
    limit_fen: { zh: "标准单价", en: "Standard price" },
    age: { zh: "年龄", en: "Age" },
    allowed: { zh: "允许范围", en: "Allowed" },
    allowed_sex: { zh: "限定性别", en: "Allowed sex" },
    min_age: { zh: "最低年龄", en: "Minimum age" },
    max_age: { zh: "最高年龄", en: "Maximum age" },
    target: { zh: "对象", en: "Target" },
  },
  config: z.object({
    /** The table version to judge by (a file name under rules/, without .csv); absent: the newest loaded. */
    version: z.string().min(1).optional(),
  }),
  // Lines any version's rows may judge are kept, so a version switch applies to retained state.
  extract(s, { catalogs }): RuleFacts | undefined {
    const t = catalogs.ruleTables;
    const lines: (string | number)[] = [];
    let first = "";
    let last = "";
    for (const i of s.items) {
      if (!t.relevantItem(i.item_code)) continue;
      const date = i.service_date;
      if (first === "" || date < first) first = date;
      if (date > last) last = date;
      lines.push(
        sharedText(i.item_code),
        sharedText(date),
        i.quantity,
        i.unit_price_fen,
        i.amount_fen,
        i.line_no,
        sharedText(i.item_name),
      );
    }
    if (lines.length === 0 && !s.diagnoses.some((d) => t.relevantDiagnosis(d.code))) return undefined;
    return { lines, diagnoses: s.diagnoses.map((d) => sharedText(d.code)), first, last };
  },
  // Per-days limits and exclusive pairs look at other settlements: those with a line on a day the changed one reaches.
  affected(changed, person, { catalogs, facts }) {
    const f = facts(changed);
    if (!f || f.lines.length === 0) return [];
    const days = catalogs.ruleTables.reachDays;
    const dates = new Set<string>();
    for (let k = 1; k < f.lines.length; k += STRIDE) dates.add(f.lines[k] as string);
    const spans = [...dates].map((e) => [e, addDays(e, days - 1)] as const);
    const to = addDays(f.last, days - 1);
    const out: SettlementRecord[] = [];
    for (const s of person.settlements) {
      if (s.id === changed.id) continue;
      const theirs = facts(s);
      if (!reaches(theirs, f.first, to)) continue;
      for (let k = 1; k < theirs.lines.length; k += STRIDE) {
        const d = theirs.lines[k] as string;
        if (spans.some(([from, to]) => from <= d && d <= to)) {
          out.push(s);
          break;
        }
      }
    }
    return out;
  },
  // Per-days windows; exclusive pairs are on one day, the other kinds on the settlement alone.
  reachDays: ({ catalogs }) => catalogs.ruleTables.reachDays,
  evaluate(subject, person, { catalogs, config, facts }): Finding[] {
    const mine = facts(subject);
    const table = tableOf(catalogs.ruleTables, config.version);
    if (!mine || !table) return [];
    const hits: Hit[] = [];
    const lines = mine.lines;
    const n = lines.length / STRIDE;
    // The rows of each of the settlement's lines, looked up once for every kind.
    const look: ItemRows[] = [];
    let kinds = 0;
    for (let k = 0; k < lines.length; k += STRIDE) {
      const rows = table.lookup(lines[k] as string);
      look.push(rows);
      kinds |= rows.kinds;
    }
    const dateOf = (i: number) => lines[i * STRIDE + 1] as string;
    const quantityOf = (i: number) => lines[i * STRIDE + 2] as number;
    const amountOf = (i: number) => lines[i * STRIDE + 4] as number;
    const lineOfMine = (i: number) => lineAt(lines, i * STRIDE);

    // quantity_limit: sums per row, per day or stay within the settlement (a group is its lines of
    // one row, on one date unless per stay, summed in line order), per N days over the person's.
    let perDaysRows = false;
    if (kinds & KIND_BIT.quantity_limit) {
      const grouped = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const row = look[i]?.quantity_limit;
        if (!row || grouped[i]) continue;
        if (row.per === "days") {
          perDaysRows = true;
          continue;
        }
        if (row.per === "stay" && subject.visitType !== "INPATIENT") continue;
        const date = row.per === "day" ? dateOf(i) : undefined;
        let total = 0;
        for (let j = i; j < n; j++)
          if (look[j]?.quantity_limit === row && (date === undefined || dateOf(j) === date)) {
            grouped[j] = 1;
            total += quantityOf(j);
          }
        if (total <= row.max) continue;
        for (let j = i; j < n; j++)
          if (look[j]?.quantity_limit === row && (date === undefined || dateOf(j) === date))
            hits.push({
              row,
              line: lineOfMine(j),
              amountFen: amountOf(j),
              detail: { max: row.max, per: row.per, total },
            });
      }
    }
    if (perDaysRows)
      perDaysHits(subject, person.settlements, facts, look, table, catalogs.ruleTables.reachDays, hits);

    // exclusive_items: a line of the row's prefix and one of its `with` prefix, same day, same
    // institution. The person's lines there on this settlement's dates, by the `with` prefixes that
    // start them, gathered once: each row then reads its own candidates.
    let byWith: Map<string, LineAt[]> | undefined;
    for (let i = 0; kinds & KIND_BIT.exclusive_items && i < n; i++) {
      const row = look[i]?.exclusive_items;
      if (!row) continue;
      if (!byWith) {
        byWith = new Map();
        for (const s of person.settlements) {
          const theirs = facts(s);
          if (s.institutionId !== subject.institutionId || !reaches(theirs, mine.first, mine.last)) continue;
          for (let k = 0; k < theirs.lines.length; k += STRIDE) {
            const d = theirs.lines[k + 1] as string;
            if (d < mine.first || d > mine.last) continue;
            for (const w of table.partnerOf(theirs.lines[k] as string)) {
              const list = byWith.get(w);
              if (list) list.push({ s, f: theirs, k });
              else byWith.set(w, [{ s, f: theirs, k }]);
            }
          }
        }
      }
      const candidates = byWith.get(row.with);
      if (!candidates) continue;
      const date = dateOf(i);
      const lineNo = lines[i * STRIDE + 5] as number;
      const partners: LineAt[] = [];
      for (const o of candidates)
        if (o.f.lines[o.k + 1] === date && !(o.s === subject && o.f.lines[o.k + 5] === lineNo))
          partners.push(o);
      if (partners.length === 0) continue;
      partners.sort(
        (a, b) => bySettledAt(a.s, b.s) || (a.f.lines[a.k + 5] as number) - (b.f.lines[b.k + 5] as number),
      );
      const first = partners[0] as LineAt;
      hits.push({
        row,
        line: lineOfMine(i),
        amountFen: amountOf(i),
        related: partners.map((p) => p.s).filter((s) => s !== subject),
        detail: {
          with_prefix: row.with,
          partner: lineOf(lineAt(first.f.lines, first.k), { settlement_id: first.s.id }),
        },
      });
    }

    // diagnosis_required: none of the settlement's diagnoses starts with a listed prefix (judged
    // once per row: a settlement's lines often share one).
    let covered: Map<RowOf<"diagnosis_required">, boolean> | undefined;
    for (let i = 0; kinds & KIND_BIT.diagnosis_required && i < n; i++) {
      const row = look[i]?.diagnosis_required;
      if (!row) continue;
      covered ??= new Map();
      let yes = covered.get(row);
      if (yes === undefined) {
        yes = mine.diagnoses.some((d) => row.diagnoses.some((p) => d.startsWith(p)));
        covered.set(row, yes);
      }
      if (yes) continue;
      hits.push({
        row,
        line: lineOfMine(i),
        amountFen: amountOf(i),
        detail: { required_diagnoses: row.diagnoses, diagnoses: mine.diagnoses },
      });
    }

    // price_limit: unit price above the standard for the institution's level; at risk is the excess.
    const level =
      kinds & KIND_BIT.price_limit ? catalogs.ruleTables.levels.longest(subject.institutionId) : undefined;
    for (let i = 0; level !== undefined && i < n; i++) {
      const row = look[i]?.price_limit;
      const limit = row && level !== undefined ? row.limits[level] : undefined;
      const unit = lines[i * STRIDE + 3] as number;
      if (!row || limit === undefined || unit <= limit) continue;
      hits.push({
        row,
        line: lineOfMine(i),
        amountFen: Math.round((unit - limit) * quantityOf(i)),
        detail: { level, limit_fen: limit },
      });
    }

    // age_sex: completed years on the line's service date (a diagnosis: on admission), and sex.
    const outside = (r: RowOf<"age_sex">, age: number) =>
      (r.sex !== undefined && r.sex !== subject.gender) ||
      (r.minAge !== undefined && age < r.minAge) ||
      (r.maxAge !== undefined && age > r.maxAge);
    const allowed = (r: RowOf<"age_sex">) => ({
      allowed_sex: r.sex ?? null,
      min_age: r.minAge ?? null,
      max_age: r.maxAge ?? null,
    });
    // Lines share dates: the age is worked out again only when the date changes.
    let ageDate = "";
    let age = 0;
    for (let i = 0; kinds & KIND_BIT.age_sex && i < n; i++) {
      const row = look[i]?.age_sex;
      if (!row) continue;
      if (dateOf(i) !== ageDate) {
        ageDate = dateOf(i);
        age = ageOn(subject.birthDate, ageDate);
      }
      if (outside(row, age))
        hits.push({
          row,
          line: lineOfMine(i),
          amountFen: amountOf(i),
          detail: { target: "item", age, gender: subject.gender, allowed: allowed(row) },
        });
    }
    for (const code of mine.diagnoses) {
      const row = table.diagnosisRow(code);
      if (!row) continue;
      const ageIn = ageOn(subject.birthDate, subject.admission);
      if (!outside(row, ageIn)) continue;
      hits.push({
        row,
        line: [code, subject.admission, 0, 0, 0, 0, code],
        amountFen: subject.fundPaidFen,
        detail: { target: "diagnosis", code, age: ageIn, gender: subject.gender, allowed: allowed(row) },
      });
    }

    // One finding per kind: every row hit listed, the severity of the gravest row.
    const findings: Finding[] = [];
    if (hits.length === 0) return findings;
    for (const kind of [
      "quantity_limit",
      "exclusive_items",
      "diagnosis_required",
      "price_limit",
      "age_sex",
    ] as const) {
      const mineHits = hits.filter((h) => h.row.kind === kind);
      if (mineHits.length === 0) continue;
      const related = new Set<SettlementRecord>();
      for (const h of mineHits) for (const s of h.related ?? []) related.add(s);
      const severity = mineHits.reduce<Severity>(
        (a, h) => (RANK[h.row.severity] > RANK[a] ? h.row.severity : a),
        "REMIND",
      );
      // A diagnosis puts the whole payment in doubt: it is not added to the lines' amounts.
      const amount = mineHits.some((h) => h.detail.target === "diagnosis")
        ? subject.fundPaidFen
        : mineHits.reduce((n, h) => n + h.amountFen, 0);
      findings.push({
        rule: kind,
        severity,
        related: [...related].sort(bySettledAt).map((s) => s.id),
        amountAtRiskFen: amount,
        evidence: {
          table_version: table.version,
          hits: mineHits.map(hitEvidence),
        },
      });
    }
    return findings;
  },
  // Codes of the bundled sample rows (E0001, D0001, P0001 above every level's standard, A0003 for
  // the world's person who turns 18 in it); its institutions H1 and H2 have levels 1 and 2.
  testWorld: {
    items: [
      {
        item_code: "XJ01MAM088A001010100001",
        item_name: "盐酸莫西沙星片",
        category: "DRUG",
        quantities: [1],
      },
      { item_code: "310701022", item_name: "动态心电图", category: "SERVICE", quantities: [1] },
      { item_code: "310701021", item_name: "常规心电图", category: "SERVICE", quantities: [1] },
      {
        item_code: "XA10BJL001B002010100001",
        item_name: "利拉鲁肽注射液",
        category: "DRUG",
        quantities: [1],
      },
      {
        item_code: "311201001",
        item_name: "普通针刺",
        category: "SERVICE",
        quantities: [1],
        unitPriceFen: 4_500,
      },
    ],
  },
  scheme: ruleTableScheme,
});
