// The detector SDK: everything a detector author needs, and nothing that does I/O.
import type { z } from "zod";
import type { DeathRecord, Settlement, Severity } from "../schemas/index.ts";
import type { Catalogs } from "./catalog.ts";
import type { DetectorScheme } from "./scheme-kit.ts";

/**
 * What the engine retains about one effective settlement: the fields every rule reads,
 * plus each detector's own extracted facts. Full events are not kept, so memory stays
 * proportional to the retained settlements, not to their line items.
 */
export interface SettlementRecord {
  readonly id: string;
  readonly personId: string;
  readonly gender: Settlement["gender"];
  readonly birthDate: string;
  readonly visitType: Settlement["visit_type"];
  readonly institutionId: string;
  readonly institutionName: string;
  readonly regionCode: string;
  readonly admission: string;
  readonly discharge: string;
  readonly dischargeReason: Settlement["discharge_reason"];
  readonly settledAt: string;
  readonly settledAtMs: number;
  readonly totalFen: number;
  readonly fundPaidFen: number;
  /** Keyed by detector id; undefined (or absent) when the detector kept nothing about this settlement. */
  readonly facts: Readonly<Record<string, unknown>>;
}

/** One person's evidence: effective settlements only (reversed ones are gone) and the death record. */
export interface PersonView {
  readonly personId: string;
  readonly settlements: readonly SettlementRecord[];
  readonly death: DeathRecord | undefined;
}

export interface DetectorContext<C, F = unknown> {
  readonly config: C;
  readonly catalogs: Catalogs;
  /** What this detector's `extract` kept about `s`, typed as `extract` returns it. */
  facts(s: SettlementRecord): F | undefined;
}

/** The name of an evidence field for investigators; the UI shows "中文 English". */
export interface FieldLabel {
  readonly zh: string;
  readonly en: string;
}

/** A line item the order-independence property test's small world may bill, with the quantities it draws. */
export interface TestWorldItem {
  readonly item_code: string;
  readonly item_name: string;
  readonly category: Settlement["items"][number]["category"];
  readonly quantities: readonly number[];
  /** Unit price in fen (default 100), for rules that judge prices. */
  readonly unitPriceFen?: number;
}

/** A finding about one suspect settlement; the engine turns it into a suspect record. */
export interface Finding {
  readonly rule: string;
  /** Related settlement ids (settlement_ids[1..]), in the order the rule names them. */
  readonly related: readonly string[];
  readonly amountAtRiskFen: number;
  readonly evidence: Record<string, unknown>;
  /** Overrides the rule's severity (a rule-table row carries its own). */
  readonly severity?: Severity;
}

export interface RuleInfo {
  readonly severity: Severity;
  readonly title: string;
  readonly titleZh: string;
}

export interface Detector<C = unknown, F = unknown> {
  readonly id: string;
  /** Bump when findings for the same input may change. */
  readonly version: string;
  readonly description: string;
  readonly rules: Readonly<Record<string, RuleInfo>>;
  /** Parameters with defaults; `config.parse({})` gives the defaults. */
  readonly config: z.ZodType<C>;
  /** Labels of the fields this detector's evidence holds (settlement and line fields are the UI's own). */
  readonly labels: Readonly<Record<string, FieldLabel>>;
  /** Injects labelled cases of this detector's rules into `generate`'s stream (see scheme-kit.ts). */
  readonly scheme?: DetectorScheme;
  /** Codes the property test's small world must bill for this detector's rules to fire there. */
  readonly testWorld?: { readonly items: readonly TestWorldItem[] };
  /** Facts to retain about a SETTLE event; undefined retains nothing. */
  extract?(settlement: Settlement, ctx: DetectorContext<C, F>): F | undefined;
  /**
   * Other settlements whose findings may change when `changed` enters or leaves the
   * person's evidence. Omit when a finding depends on its own settlement only.
   */
  affected?(
    changed: SettlementRecord,
    person: PersonView,
    ctx: DetectorContext<C, F>,
  ): Iterable<SettlementRecord>;
  /** True when findings depend on the death record, so a new record re-evaluates the person. */
  readonly usesDeath?: boolean;
  /**
   * Days of service dates the rules look back over from a settlement (a 30-day window: 30; a
   * rule on the settlement alone: 0). The engine re-evaluates a settlement for this detector only
   * while it settled within this many days plus the allowed lateness of the partition's newest
   * event; after that its findings from this detector are final, and once it is past the longest
   * such horizon of the detectors that keep facts, their facts leave its record. Omit when the
   * rules reach back without bound (duplicate lines, deaths): the whole retention then applies.
   */
  reachDays?(ctx: DetectorContext<C, F>): number;
  /** Findings whose suspect is `subject`, judged on the person's current evidence. Must be pure. */
  evaluate(subject: SettlementRecord, person: PersonView, ctx: DetectorContext<C, F>): Finding[];
}

/**
 * Most entries of any list in a finding's evidence (offending lines, codes, stays), and of its
 * related settlements: the engine keeps the first MAX_LISTED and counts the rest in a sibling
 * `<list>_more` (`lines_more: 123`; `related_more` for settlement_ids), so that no suspect record
 * outgrows what suspects.v1 and ClickHouse accept, whatever one settlement or person holds.
 */
export const MAX_LISTED = 50;
/** Longest text in evidence, in UTF-16 units; longer text (only hostile input has it) is cut, ending in "…". */
export const MAX_EVIDENCE_TEXT = 256;

function bounded(v: unknown): unknown {
  if (typeof v === "string") return v.length > MAX_EVIDENCE_TEXT ? `${v.slice(0, MAX_EVIDENCE_TEXT)}…` : v;
  if (Array.isArray(v)) {
    const out = v.slice(0, MAX_LISTED).map(bounded);
    return out.length === v.length && out.every((x, i) => x === v[i]) ? v : out;
  }
  if (v === null || typeof v !== "object") return v;
  let changed = false;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    const b = bounded(x);
    out[k] = b;
    if (b !== x) changed = true;
    if (Array.isArray(x) && x.length > MAX_LISTED) out[`${k}_more`] = x.length - MAX_LISTED;
  }
  return changed ? out : v;
}

/**
 * Evidence within MAX_LISTED and MAX_EVIDENCE_TEXT: the same object when it already is, as for
 * ordinary input; otherwise a copy (facts in state are never touched).
 */
export function boundEvidence(evidence: Record<string, unknown>): Record<string, unknown> {
  return bounded(evidence) as Record<string, unknown>;
}

/** A detector of any config and facts type, as the registry and the engine hold them. */
// biome-ignore lint/suspicious/noExplicitAny: config and facts types vary per detector and are only seen by the detector itself
export type AnyDetector = Detector<any, any>;

/** Identity helper so authors get full type inference for config and facts. */
export function defineDetector<C, F>(detector: Detector<C, F>): Detector<C, F> {
  return detector;
}

/**
 * A function of a code (or a date, a day), remembered per argument: for lookups in data that never
 * changes once loaded, so every caller gets the same answer. Bounded, since codes come from input:
 * past 100,000 it starts again.
 */
export function remembered<V, K = string>(find: (code: K) => V): (code: K) => V {
  const seen = new Map<K, V>();
  return (code) => {
    const known = seen.get(code);
    if (known !== undefined || seen.has(code)) return known as V;
    const v = find(code);
    if (seen.size >= 100_000) seen.clear();
    seen.set(code, v);
    return v;
  };
}

/**
 * One copy of each distinct text a detector keeps in its facts: codes, dates and names repeat across
 * a population's settlements, so retained state holds a reference where it would hold a copy.
 */
export const sharedText = remembered((text: string) => text);

/** Total order of settlements used wherever a rule says "first" or "earlier": settled_at, then id. */
export function bySettledAt(a: SettlementRecord, b: SettlementRecord): number {
  return a.settledAtMs - b.settledAtMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

export const isStay = (s: SettlementRecord): boolean => s.visitType === "INPATIENT";

/** Labels of stayEvidence's fields, for detectors that show stays. */
export const STAY_LABELS: Readonly<Record<string, FieldLabel>> = {
  stay: { zh: "本次住院", en: "This stay" },
  stays: { zh: "住院记录", en: "Stays" },
  admission_date: { zh: "入院日期", en: "Admission" },
  discharge_date: { zh: "出院日期", en: "Discharge" },
  discharge_reason: { zh: "离院方式", en: "Discharge reason" },
};

/** How rules show a stay in evidence. */
export function stayEvidence(s: SettlementRecord) {
  return {
    settlement_id: s.id,
    institution_id: s.institutionId,
    institution_name: s.institutionName,
    admission_date: s.admission,
    discharge_date: s.discharge,
    discharge_reason: s.dischargeReason,
  };
}
