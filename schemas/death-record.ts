import { type AvroRecord, fastCheckOfRecord, type TsOf, zodOfRecord } from "./avro.ts";

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
export const deathRecordValidator = zodOfRecord(deathRecordSchema);
export const isValidDeathRecord = fastCheckOfRecord(deathRecordSchema) as (v: unknown) => v is DeathRecord;
