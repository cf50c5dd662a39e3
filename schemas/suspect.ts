import { type AvroRecord, type TsOf, zodOfRecord } from "./avro.ts";

export const SEVERITIES = ["REMIND", "WARN", "BLOCK"] as const;

export const suspectSchema = {
  type: "record",
  name: "Suspect",
  namespace: "fundguard.v1",
  doc: "One finding of one detector rule. settlement_ids[0] is the suspect settlement, the rest are related.",
  fields: [
    { name: "suspect_id", type: "string", doc: "deterministic: the same finding always gets the same id" },
    { name: "detector", type: "string" },
    { name: "rule", type: "string" },
    { name: "severity", type: { type: "enum", name: "Severity", symbols: SEVERITIES } },
    { name: "person_id", type: "string" },
    { name: "settlement_ids", type: { type: "array", items: "string" } },
    { name: "institution_id", type: "string" },
    { name: "region_code", type: "string", format: "region" },
    { name: "amount_at_risk_fen", type: "long" },
    { name: "event_time", type: "string", format: "datetime", doc: "settled_at of the suspect settlement" },
    { name: "detected_at", type: "string", format: "datetime" },
    { name: "detector_version", type: "string" },
    {
      name: "evidence",
      type: "string",
      format: "json",
      doc: "JSON object: what an investigator needs to judge the case",
    },
  ],
} as const satisfies AvroRecord;

export type Suspect = TsOf<typeof suspectSchema>;
export type Severity = Suspect["severity"];
export const suspectValidator = zodOfRecord(suspectSchema);
