// One source of truth for the wire formats: each schema is written once as an Avro
// record literal. The TypeScript type and the zod validator are both derived from it,
// so the Avro, TypeScript and runtime views cannot drift apart.
import avro from "avsc";
import { z } from "zod";

/** Extra validation an Avro type cannot express, carried as a field attribute. */
export type FieldFormat = "date" | "datetime" | "region" | "nonempty" | "json";

type Primitive = "null" | "boolean" | "int" | "long" | "float" | "double" | "string";
export interface AvroEnum {
  readonly type: "enum";
  readonly name: string;
  readonly symbols: readonly string[];
}
export interface AvroArray {
  readonly type: "array";
  readonly items: AvroType;
}
export interface AvroField {
  readonly name: string;
  readonly type: AvroType;
  readonly doc?: string;
  readonly default?: unknown;
  readonly format?: FieldFormat;
}
export interface AvroRecord {
  readonly type: "record";
  readonly name: string;
  readonly namespace?: string;
  readonly doc?: string;
  readonly fields: readonly AvroField[];
}
export type AvroType = Primitive | AvroEnum | AvroArray | AvroRecord | readonly AvroType[];

type JsonObject = { [key: string]: unknown };

/** The TypeScript value type of an Avro type, as avsc decodes it (long → number). */
export type TsOf<T> = T extends "null"
  ? null
  : T extends "boolean"
    ? boolean
    : T extends "int" | "long" | "float" | "double"
      ? number
      : T extends "string"
        ? string
        : T extends readonly (infer U)[]
          ? TsOf<U>
          : T extends { type: "enum"; symbols: readonly (infer S)[] }
            ? S
            : T extends { type: "array"; items: infer I }
              ? TsOf<I>[]
              : T extends { type: "record"; fields: readonly (infer F)[] }
                ? { -readonly [K in F as K extends { name: infer N extends string } ? N : never]: FieldTs<K> }
                : never;

type FieldTs<F> = F extends { format: "json" } ? JsonObject : F extends { type: infer T } ? TsOf<T> : never;

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATETIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;

export function isCalendarDate(s: string): boolean {
  const m = DATE_RE.exec(s);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const t = new Date(Date.UTC(y, mo - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === mo - 1 && t.getUTCDate() === d;
}

function formatted(format: FieldFormat | undefined, base: z.ZodType): z.ZodType {
  switch (format) {
    case "date":
      return z.string().refine(isCalendarDate, "expected a calendar date YYYY-MM-DD");
    case "datetime":
      return z
        .string()
        .refine(
          (s) => DATETIME_RE.test(s) && !Number.isNaN(Date.parse(s)),
          "expected an ISO-8601 timestamp with offset",
        );
    case "region":
      return z.string().regex(/^\d{6}$/, "expected a 6-digit region code");
    case "nonempty":
      return z.string().min(1, "must not be empty");
    case "json":
      return z.record(z.string(), z.unknown());
    default:
      return base;
  }
}

function zodOfType(t: AvroType): z.ZodType {
  if (Array.isArray(t)) {
    const branches = (t as readonly AvroType[]).filter((b) => b !== "null");
    if (branches.length !== 1) throw new Error("only [null, T] unions are supported");
    const inner = zodOfType(branches[0] as AvroType);
    // A nullable field may be omitted in NDJSON; it then reads as null, as in Avro's default.
    return inner.nullable().default(null);
  }
  if (typeof t === "string") {
    switch (t) {
      case "null":
        return z.null();
      case "boolean":
        return z.boolean();
      case "int":
        return z
          .number()
          .int()
          .min(-(2 ** 31))
          .max(2 ** 31 - 1);
      case "long":
        return z.number().int().refine(Number.isSafeInteger, "integer out of safe range");
      case "float":
      case "double":
        return z.number().finite();
      case "string":
        return z.string();
    }
  }
  const complex = t as AvroEnum | AvroArray | AvroRecord;
  switch (complex.type) {
    case "enum":
      return z.enum(complex.symbols as [string, ...string[]]);
    case "array":
      return z.array(zodOfType(complex.items));
    case "record":
      return zodOfRecord(complex);
  }
}

export function zodOfRecord<R extends AvroRecord>(record: R): z.ZodType<TsOf<R>> {
  const shape: Record<string, z.ZodType> = {};
  for (const f of record.fields) {
    const base = zodOfType(f.type);
    shape[f.name] = f.format === undefined ? base : formatted(f.format, base);
  }
  return z.object(shape) as unknown as z.ZodType<TsOf<R>>;
}

/** The schema as written to `schemas/*.avsc` and registered in the registry. */
export function avscText(record: AvroRecord): string {
  return `${JSON.stringify(record, null, 2)}\n`;
}

/** The avsc type of a schema, for encoding and decoding Avro bodies. */
export function avroType(record: AvroRecord): avro.Type {
  return avro.Type.forSchema(record as unknown as avro.Schema);
}
