import type { AvroRecord } from "./avro.ts";
import { deathRecordSchema } from "./death-record.ts";
import { settlementSchema } from "./settlement.ts";
import { suspectSchema } from "./suspect.ts";

export const AVSC_FILES: Record<string, AvroRecord> = {
  "settlement.avsc": settlementSchema,
  "death-record.avsc": deathRecordSchema,
  "suspect.avsc": suspectSchema,
};
