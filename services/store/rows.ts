// Mapping between the contract's records and table rows (JSONEachRow in both directions).
// Reading back rebuilds each record field by field in schema order, so JSON.stringify of a
// stored-and-read record equals that of the original.
import type { DeathRecord, Settlement, Suspect } from "../../schemas/index.ts";

export type SuspectStatus = "active" | "retracted";

/** Row of `suspects` as written. UInt64 goes as a decimal string (exact past 2^53). */
export interface SuspectRow {
  run_id: string;
  suspect_id: string;
  detector: string;
  rule: string;
  severity: Suspect["severity"];
  person_id: string;
  settlement_ids: string[];
  institution_id: string;
  region_code: string;
  amount_at_risk_fen: number;
  event_time_iso: string;
  detected_at_iso: string;
  detector_version: string;
  evidence: string;
  status: SuspectStatus;
  version: string;
  config_hash: string;
}

export function suspectRow(
  s: Suspect,
  status: SuspectStatus,
  meta: { runId: string; version: bigint; configHash: string },
): SuspectRow {
  return {
    run_id: meta.runId,
    suspect_id: s.suspect_id,
    detector: s.detector,
    rule: s.rule,
    severity: s.severity,
    person_id: s.person_id,
    settlement_ids: s.settlement_ids,
    institution_id: s.institution_id,
    region_code: s.region_code,
    amount_at_risk_fen: s.amount_at_risk_fen,
    event_time_iso: s.event_time,
    detected_at_iso: s.detected_at,
    detector_version: s.detector_version,
    // A String of JSON, not the JSON column type: that one re-orders keys and retypes numbers,
    // and the evidence must come back exactly as the detector wrote it.
    evidence: JSON.stringify(s.evidence),
    status,
    version: meta.version.toString(),
    config_hash: meta.configHash,
  };
}

/** The contract's fields, in order, as SELECT expressions over `suspects`. */
export const SUSPECT_COLUMNS = [
  "suspect_id",
  "detector",
  "rule",
  "severity",
  "person_id",
  "settlement_ids",
  "institution_id",
  "region_code",
  "toString(amount_at_risk_fen) AS amount_at_risk_fen",
  "event_time_iso",
  "detected_at_iso",
  "detector_version",
  "evidence",
].join(", ");

export interface SuspectReadRow {
  suspect_id: string;
  detector: string;
  rule: string;
  severity: Suspect["severity"];
  person_id: string;
  settlement_ids: string[];
  institution_id: string;
  region_code: string;
  amount_at_risk_fen: string | number;
  event_time_iso: string;
  detected_at_iso: string;
  detector_version: string;
  evidence: string;
}

export function suspectFromRow(r: SuspectReadRow): Suspect {
  return {
    suspect_id: r.suspect_id,
    detector: r.detector,
    rule: r.rule,
    severity: r.severity,
    person_id: r.person_id,
    settlement_ids: r.settlement_ids,
    institution_id: r.institution_id,
    region_code: r.region_code,
    amount_at_risk_fen: Number(r.amount_at_risk_fen),
    event_time: r.event_time_iso,
    detected_at: r.detected_at_iso,
    detector_version: r.detector_version,
    evidence: JSON.parse(r.evidence) as Suspect["evidence"],
  };
}

/** `settlements` keeps every field under its contract name, except settled_at kept as `settled_at_iso`. */
export function settlementRow(s: Settlement): Record<string, unknown> {
  const { settled_at, ...rest } = s;
  return { ...rest, settled_at_iso: settled_at };
}

export const SETTLEMENT_COLUMNS = [
  "settlement_id",
  "event_type",
  "original_settlement_id",
  "visit_id",
  "person_id",
  "gender",
  "birth_date",
  "insurance_type",
  "institution_id",
  "institution_name",
  "region_code",
  "visit_type",
  "admission_date",
  "discharge_date",
  "discharge_reason",
  "settled_at_iso",
  "diagnoses",
  "items",
  "toString(total_fen) AS total_fen",
  "toString(fund_paid_fen) AS fund_paid_fen",
].join(", ");

type Num = string | number;
export interface SettlementReadRow {
  settlement_id: string;
  event_type: Settlement["event_type"];
  original_settlement_id: string | null;
  visit_id: string;
  person_id: string;
  gender: Settlement["gender"];
  birth_date: string;
  insurance_type: Settlement["insurance_type"];
  institution_id: string;
  institution_name: string;
  region_code: string;
  visit_type: Settlement["visit_type"];
  admission_date: string;
  discharge_date: string;
  discharge_reason: Settlement["discharge_reason"];
  settled_at_iso: string;
  diagnoses: { code: string; name: string; primary: boolean }[];
  items: {
    line_no: Num;
    item_code: string;
    item_name: string;
    category: Settlement["items"][number]["category"];
    quantity: Num;
    unit_price_fen: Num;
    amount_fen: Num;
    service_date: string;
  }[];
  total_fen: Num;
  fund_paid_fen: Num;
}

export function settlementFromRow(r: SettlementReadRow): Settlement {
  return {
    settlement_id: r.settlement_id,
    event_type: r.event_type,
    original_settlement_id: r.original_settlement_id,
    visit_id: r.visit_id,
    person_id: r.person_id,
    gender: r.gender,
    birth_date: r.birth_date,
    insurance_type: r.insurance_type,
    institution_id: r.institution_id,
    institution_name: r.institution_name,
    region_code: r.region_code,
    visit_type: r.visit_type,
    admission_date: r.admission_date,
    discharge_date: r.discharge_date,
    discharge_reason: r.discharge_reason,
    settled_at: r.settled_at_iso,
    diagnoses: r.diagnoses.map((d) => ({ code: d.code, name: d.name, primary: Boolean(d.primary) })),
    items: r.items.map((i) => ({
      line_no: Number(i.line_no),
      item_code: i.item_code,
      item_name: i.item_name,
      category: i.category,
      quantity: Number(i.quantity),
      unit_price_fen: Number(i.unit_price_fen),
      amount_fen: Number(i.amount_fen),
      service_date: i.service_date,
    })),
    total_fen: Number(r.total_fen),
    fund_paid_fen: Number(r.fund_paid_fen),
  };
}

export function deathRow(d: DeathRecord): Record<string, unknown> {
  return {
    person_id: d.person_id,
    death_date: d.death_date,
    source: d.source,
    reported_at_iso: d.reported_at,
  };
}

export interface DeathReadRow {
  person_id: string;
  death_date: string;
  source: DeathRecord["source"];
  reported_at_iso: string;
}

export function deathFromRow(r: DeathReadRow): DeathRecord {
  return {
    person_id: r.person_id,
    death_date: r.death_date,
    source: r.source,
    reported_at: r.reported_at_iso,
  };
}
