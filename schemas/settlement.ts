import { type AvroRecord, fastCheckOfRecord, type TsOf, zodOfRecord } from "./avro.ts";
import { DEFAULT_LIMITS, type FieldLimits, fieldLimits } from "./limits.ts";

const date = <N extends string>(name: N, doc: string) =>
  ({ name, type: "string", format: "date", doc }) as const;

export const settlementSchema = {
  type: "record",
  name: "Settlement",
  namespace: "fundguard.v1",
  doc: "One payment event of the medical-insurance fund for one visit (结算). Money is integer fen.",
  fields: [
    { name: "settlement_id", type: "string", format: "nonempty", doc: "结算ID, unique" },
    {
      name: "event_type",
      type: { type: "enum", name: "EventType", symbols: ["SETTLE", "REVERSAL"] },
      doc: "REVERSAL (冲销) cancels the settlement named by original_settlement_id",
    },
    { name: "original_settlement_id", type: ["null", "string"], default: null, doc: "set on REVERSAL only" },
    { name: "visit_id", type: "string", doc: "就诊ID" },
    { name: "person_id", type: "string", format: "nonempty", doc: "人员编号 (pseudonymous)" },
    { name: "gender", type: { type: "enum", name: "Gender", symbols: ["M", "F"] } },
    date("birth_date", "YYYY-MM-DD"),
    {
      name: "insurance_type",
      type: { type: "enum", name: "InsuranceType", symbols: ["EMPLOYEE", "RESIDENT"] },
      doc: "职工 (310) / 城乡居民 (390)",
    },
    { name: "institution_id", type: "string", format: "nonempty", doc: "定点医药机构编码" },
    { name: "institution_name", type: "string" },
    { name: "region_code", type: "string", format: "region", doc: "行政区划 of the institution" },
    {
      name: "visit_type",
      type: { type: "enum", name: "VisitType", symbols: ["OUTPATIENT", "INPATIENT", "PHARMACY"] },
    },
    date("admission_date", "INPATIENT: 入院日期; others: the service date"),
    date("discharge_date", "INPATIENT: 出院日期; others: equal to admission_date"),
    {
      name: "discharge_reason",
      type: [
        "null",
        { type: "enum", name: "DischargeReason", symbols: ["NORMAL", "TRANSFER", "DEATH", "OTHER"] },
      ],
      default: null,
      doc: "离院方式, INPATIENT only",
    },
    { name: "settled_at", type: "string", format: "datetime", doc: "结算时间, the event time" },
    {
      name: "diagnoses",
      type: {
        type: "array",
        items: {
          type: "record",
          name: "Diagnosis",
          fields: [
            { name: "code", type: "string", format: "nonempty", doc: "ICD-10 (医保版)" },
            { name: "name", type: "string" },
            { name: "primary", type: "boolean" },
          ],
        },
      },
    },
    {
      name: "items",
      type: {
        type: "array",
        items: {
          type: "record",
          name: "LineItem",
          doc: "费用明细",
          fields: [
            { name: "line_no", type: "int" },
            { name: "item_code", type: "string", format: "nonempty" },
            { name: "item_name", type: "string" },
            {
              name: "category",
              type: { type: "enum", name: "Category", symbols: ["DRUG", "SERVICE", "MATERIAL"] },
            },
            { name: "quantity", type: "double" },
            { name: "unit_price_fen", type: "long" },
            { name: "amount_fen", type: "long" },
            date("service_date", "YYYY-MM-DD"),
          ],
        },
      },
    },
    { name: "total_fen", type: "long" },
    { name: "fund_paid_fen", type: "long", doc: "统筹支付" },
  ],
} as const satisfies AvroRecord;

export type Settlement = TsOf<typeof settlementSchema>;
export type LineItem = Settlement["items"][number];
export type Diagnosis = Settlement["diagnoses"][number];

/** The contract's cross-field rules, which an Avro schema cannot express. */
export function settlementIssues(s: Settlement): { path: string; message: string }[] {
  const issues: { path: string; message: string }[] = [];
  if (s.event_type === "REVERSAL" && !s.original_settlement_id) {
    issues.push({
      path: "original_settlement_id",
      message: "a REVERSAL must name the settlement it cancels",
    });
  }
  if (s.event_type === "SETTLE" && s.original_settlement_id) {
    issues.push({ path: "original_settlement_id", message: "set on REVERSAL only" });
  }
  if (s.discharge_date < s.admission_date) {
    issues.push({ path: "discharge_date", message: "discharge_date is before admission_date" });
  }
  if (s.visit_type !== "INPATIENT" && s.discharge_date !== s.admission_date) {
    issues.push({ path: "discharge_date", message: "must equal admission_date outside INPATIENT" });
  }
  return issues;
}

/** Field-level checks come from the Avro schema, held to `limits`; then the cross-field rules. */
export const settlementValidatorFor = (limits: FieldLimits) =>
  zodOfRecord(settlementSchema, limits).superRefine((s, ctx) => {
    for (const i of settlementIssues(s)) ctx.addIssue({ code: "custom", path: [i.path], message: i.message });
  });

/** The hot-path equivalent of `settlementValidatorFor(limits)` for accepting valid input (see fastCheckOfRecord). */
export function settlementCheckFor(limits: FieldLimits): (v: unknown) => v is Settlement {
  const fast = fastCheckOfRecord(settlementSchema, limits);
  return (v): v is Settlement => fast(v) && settlementIssues(v as Settlement).length === 0;
}

/** The validators under the default limits. */
export const settlementValidator = settlementValidatorFor(fieldLimits("settlement", DEFAULT_LIMITS));
export const isValidSettlement = settlementCheckFor(fieldLimits("settlement", DEFAULT_LIMITS));
