export * from "./avro.ts";
export * from "./death-record.ts";
export * from "./limits.ts";
export * from "./settlement.ts";
export * from "./suspect.ts";
