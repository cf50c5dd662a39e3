import { z } from "zod";
import {
  bySettledAt,
  defineDetector,
  type Finding,
  isStay,
  type PersonView,
  type SettlementRecord,
  STAY_LABELS,
  sharedText,
  stayEvidence,
} from "./sdk.ts";

/**
 * A billed line reduced to what makes two lines "the same" (item, date, quantity and unit
 * price, joined into one key) plus what the evidence shows.
 */
type Fingerprint = [key: string, line_no: number, amount_fen: number, item_name?: string];
const SEP = "\u0001";

/**
 * What is retained per settlement: a 53-bit hash per line for matching, and the lines as one
 * JSON string, parsed only when hashes match. Lines of every retained settlement are the
 * engine's largest state; a few objects per settlement instead of several per line keep it
 * cheap for the garbage collector. Matches are confirmed on the full key, so a hash
 * collision never makes a finding. The key holds the service date, so two settlements can only
 * share a line where their ranges of service dates meet: most pairs are ruled out by two compares.
 */
interface LineFacts {
  hashes: number[];
  /**
   * The fingerprints without their names: ASCII, so V8 keeps the string at a byte a character (one
   * Chinese name in it would double the whole). State written before names were apart has them in.
   */
  lines: string;
  /** Each line's item name, one shared copy per distinct name. */
  names?: string[];
  /** Earliest and latest service date (absent in state written before they were kept). */
  first?: string;
  last?: string;
}

/** cyrb53: a fast, well-mixed 53-bit string hash. */
function hash53(str: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < str.length; i++) {
    const c = str.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

function lineOf([key, line_no, amount_fen, item_name]: Fingerprint) {
  const [item_code, service_date, quantity, unit_price_fen] = key.split(SEP) as [
    string,
    string,
    string,
    string,
  ];
  return {
    line_no,
    item_code,
    item_name,
    service_date,
    quantity: Number(quantity),
    unit_price_fen: Number(unit_price_fen),
    amount_fen,
  };
}

const lineFacts = (s: SettlementRecord) => s.facts.duplicate_billing as LineFacts | undefined;
const fingerprints = (s: SettlementRecord): Fingerprint[] => {
  const f = lineFacts(s);
  if (!f) return [];
  const lines = JSON.parse(f.lines) as Fingerprint[];
  const names = f.names;
  if (names)
    lines.forEach((l, i) => {
      l[3] = names[i];
    });
  return lines;
};

/** Tests other settlements for a line in common with one settlement's lines. */
class LineProbe {
  private hashes: Set<number> | undefined;
  constructor(private readonly facts: LineFacts | undefined) {}

  shares(s: SettlementRecord): boolean {
    const mine = this.facts;
    const theirs = lineFacts(s);
    if (!mine || !theirs) return false;
    const { first, last } = mine;
    if (first && last && theirs.first && theirs.last && (theirs.last < first || last < theirs.first))
      return false;
    this.hashes ??= new Set(mine.hashes);
    const hashes = this.hashes;
    return theirs.hashes.some((h) => hashes.has(h));
  }
}

const isVisit = (s: SettlementRecord) => s.visitType === "OUTPATIENT" || s.visitType === "PHARMACY";
const overlaps = (a: SettlementRecord, b: SettlementRecord) =>
  a.admission < b.discharge && b.admission < a.discharge;
const during = (visit: SettlementRecord, stay: SettlementRecord) =>
  stay.admission < visit.admission && visit.admission < stay.discharge;

/** Stays are ordered by admission, then by settlement time: the later one is the suspect. */
function byAdmission(a: SettlementRecord, b: SettlementRecord): number {
  return a.admission < b.admission ? -1 : a.admission > b.admission ? 1 : bySettledAt(a, b);
}

function duplicateLine(subject: SettlementRecord, person: PersonView): Finding | undefined {
  const facts = lineFacts(subject);
  if (!facts) return undefined;
  let probe: LineProbe | undefined;
  let mine: Fingerprint[] | undefined;
  let keys: Set<string> | undefined;
  // Only a copy settled before the subject can make it a duplicate; keep the first such copy per line.
  let first: Map<string, { settlement: SettlementRecord; line: Fingerprint }> | undefined;
  for (const other of person.settlements) {
    if (other.id === subject.id || other.institutionId !== subject.institutionId) continue;
    if (bySettledAt(other, subject) >= 0) continue;
    probe ??= new LineProbe(facts);
    if (!probe.shares(other)) continue;
    mine ??= fingerprints(subject);
    keys ??= new Set(mine.map((f) => f[0]));
    first ??= new Map();
    for (const g of fingerprints(other)) {
      if (!keys.has(g[0])) continue;
      const current = first.get(g[0]);
      if (!current || bySettledAt(other, current.settlement) < 0)
        first.set(g[0], { settlement: other, line: g });
    }
  }
  if (!first || first.size === 0 || !mine) return undefined;
  const lines: Record<string, unknown>[] = [];
  const related: string[] = [];
  let amount = 0;
  for (const f of mine) {
    const copy = first.get(f[0]);
    if (!copy) continue;
    lines.push({
      ...lineOf(f),
      first_settlement_id: copy.settlement.id,
      first_settled_at: copy.settlement.settledAt,
      first_line_no: copy.line[1],
    });
    amount += f[2];
    if (!related.includes(copy.settlement.id)) related.push(copy.settlement.id);
  }
  return { rule: "duplicate_line", related, amountAtRiskFen: amount, evidence: { lines } };
}

export const duplicateBilling = defineDetector({
  id: "duplicate_billing",
  version: "1.0.0",
  description: "重复收费: the same line billed twice, overlapping stays, outpatient visits during a stay.",
  rules: {
    duplicate_line: { severity: "WARN", title: "Same line billed in two settlements", titleZh: "重复收费" },
    overlapping_stays: { severity: "BLOCK", title: "Overlapping inpatient stays", titleZh: "住院时间重叠" },
    outpatient_during_stay: {
      severity: "WARN",
      title: "Outpatient or pharmacy claim during a stay",
      titleZh: "住院期间门诊/购药",
    },
  },
  labels: {
    ...STAY_LABELS,
    lines: { zh: "费用明细", en: "Lines" },
    first_settlement_id: { zh: "首次结算ID", en: "First settlement" },
    first_settled_at: { zh: "首次结算时间", en: "First settled at" },
    first_line_no: { zh: "首次结算行号", en: "First line" },
    overlapping_stays: { zh: "重叠住院", en: "Overlapping stays" },
  },
  config: z.object({}),
  extract(s): LineFacts | undefined {
    if (s.items.length === 0) return undefined;
    const lines = s.items.map(
      (i): Fingerprint => [
        `${i.item_code}${SEP}${i.service_date}${SEP}${i.quantity}${SEP}${i.unit_price_fen}`,
        i.line_no,
        i.amount_fen,
      ],
    );
    let first = s.items[0]?.service_date as string;
    let last = first;
    for (const i of s.items) {
      if (i.service_date < first) first = i.service_date;
      if (i.service_date > last) last = i.service_date;
    }
    return {
      hashes: lines.map((l) => hash53(l[0])),
      lines: JSON.stringify(lines),
      names: s.items.map((i) => sharedText(i.item_name)),
      first,
      last,
    };
  },
  affected(changed, person) {
    const probe = new LineProbe(lineFacts(changed));
    const stay = isStay(changed);
    const out: SettlementRecord[] = [];
    for (const s of person.settlements) {
      if (s.id === changed.id) continue;
      if (
        s.institutionId === changed.institutionId
          ? probe.shares(s)
          : stay && isStay(s) && overlaps(s, changed)
      )
        out.push(s);
      else if (stay && isVisit(s) && during(s, changed)) out.push(s);
    }
    return out;
  },
  evaluate(subject, person): Finding[] {
    const findings: Finding[] = [];
    const dup = duplicateLine(subject, person);
    if (dup) findings.push(dup);

    if (isStay(subject)) {
      const earlier = person.settlements
        .filter(
          (t) =>
            isStay(t) &&
            t.institutionId !== subject.institutionId &&
            overlaps(t, subject) &&
            byAdmission(t, subject) < 0,
        )
        .sort(byAdmission);
      if (earlier.length > 0) {
        findings.push({
          rule: "overlapping_stays",
          related: earlier.map((t) => t.id),
          amountAtRiskFen: subject.fundPaidFen,
          evidence: { stay: stayEvidence(subject), overlapping_stays: earlier.map(stayEvidence) },
        });
      }
    }

    if (isVisit(subject)) {
      // Visits are most settlements and seldom fall in a stay: no array unless one does.
      let stays: SettlementRecord[] | undefined;
      for (const t of person.settlements) {
        if (!isStay(t) || !during(subject, t)) continue;
        stays ??= [];
        stays.push(t);
      }
      if (stays) {
        stays.sort(byAdmission);
        findings.push({
          rule: "outpatient_during_stay",
          related: stays.map((t) => t.id),
          amountAtRiskFen: subject.fundPaidFen,
          evidence: {
            visit_type: subject.visitType,
            service_date: subject.admission,
            institution_id: subject.institutionId,
            institution_name: subject.institutionName,
            stays: stays.map(stayEvidence),
          },
        });
      }
    }
    return findings;
  },
});
