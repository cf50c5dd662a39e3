import { type AvroRecord, fastCheckOfRecord, type TsOf, zodOfRecord } from "./avro.ts";
import { DEFAULT_LIMITS, type FieldLimits, fieldLimits } from "./limits.ts";

export const deathRecordSchema = {
  type: "record",
  name: "DeathRecord",
  namespace: "fundguard.v1",
  doc: "A death reported by another department; a later record for the same person replaces the earlier one.",
  fields: [
    { name: "person_id", type: "string", format: "nonempty" },
    { name: "death_date", type: "string", format: "date" },
    {
      name: "source",
      type: {
        type: "enum",
        name: "DeathSource",
        symbols: ["CIVIL_AFFAIRS", "PUBLIC_SECURITY", "HEALTH", "OTHER"],
      },
    },
    { name: "reported_at", type: "string", format: "datetime" },
  ],
} as const satisfies AvroRecord;

export type DeathRecord = TsOf<typeof deathRecordSchema>;
export const deathRecordValidatorFor = (limits: FieldLimits) => zodOfRecord(deathRecordSchema, limits);
export const deathRecordCheckFor = (limits: FieldLimits) =>
  fastCheckOfRecord(deathRecordSchema, limits) as (v: unknown) => v is DeathRecord;

/** The validators under the default limits. */
export const deathRecordValidator = deathRecordValidatorFor(fieldLimits("death", DEFAULT_LIMITS));
export const isValidDeathRecord = deathRecordCheckFor(fieldLimits("death", DEFAULT_LIMITS));
