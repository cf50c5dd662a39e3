// One source of truth for the wire formats: each schema is written once as an Avro
// record literal. The TypeScript type and the zod validator are both derived from it,
// so the Avro, TypeScript and runtime views cannot drift apart.
import avro from "avsc";
import { z } from "zod";
import { type FieldLimits, utf8Within } from "./limits.ts";

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

const DATETIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** The number written by `n` ASCII digits at `from`, or -1 if any is not a digit. */
function digitsAt(s: string, from: number, n: number): number {
  let v = 0;
  for (let i = from; i < from + n; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

/** A real YYYY-MM-DD date (no 30 February); hot on every line item, so read without a regex match. */
export function isCalendarDate(s: string): boolean {
  if (s.length !== 10 || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45) return false;
  const y = digitsAt(s, 0, 4);
  const mo = digitsAt(s, 5, 2);
  const d = digitsAt(s, 8, 2);
  if (y < 0 || mo < 1 || mo > 12 || d < 1) return false;
  if (mo === 2 && d === 29) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  return d <= (DAYS_IN_MONTH[mo - 1] as number);
}

/** The UTF-8 bytes any string field may take; undefined for none (our own suspect records). */
type MaxString = number | undefined;
/** Nested records hold their strings to the limit; named array limits apply to top-level fields. */
const nested = (max: MaxString): FieldLimits | undefined =>
  max === undefined ? undefined : { maxStringLength: max, maxEntries: {} };

const stringTooLong = (max: number) => `longer than the limit of ${max} bytes`;
function capped(base: z.ZodString, max: MaxString): z.ZodType<string> {
  return max === undefined ? base : base.refine((s) => utf8Within(s, max), stringTooLong(max));
}

function formatted(format: FieldFormat | undefined, base: z.ZodType, max: MaxString): z.ZodType {
  switch (format) {
    case "date":
      return z.string().refine(FORMAT_CHECKS.date, "expected a calendar date YYYY-MM-DD");
    case "datetime":
      return z.string().refine(FORMAT_CHECKS.datetime, "expected an ISO-8601 timestamp with offset");
    case "region":
      return z.string().regex(/^\d{6}$/, "expected a 6-digit region code");
    case "nonempty":
      return capped(z.string().min(1, "must not be empty"), max);
    case "json":
      return z.record(z.string(), z.unknown());
    default:
      return base;
  }
}

function zodOfType(t: AvroType, max: MaxString, maxEntries?: number): z.ZodType {
  if (Array.isArray(t)) {
    const branches = (t as readonly AvroType[]).filter((b) => b !== "null");
    if (branches.length !== 1) throw new Error("only [null, T] unions are supported");
    const inner = zodOfType(branches[0] as AvroType, max);
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
        return capped(z.string(), max);
    }
  }
  const complex = t as AvroEnum | AvroArray | AvroRecord;
  switch (complex.type) {
    case "enum":
      return z.enum(complex.symbols as [string, ...string[]]);
    case "array": {
      const array = z.array(zodOfType(complex.items, max));
      return maxEntries === undefined
        ? array
        : array.max(maxEntries, `more than the limit of ${maxEntries} entries`);
    }
    case "record":
      return zodOfRecord(complex, nested(max));
  }
}

/** The validator of a record; `limits` holds its strings and named arrays to the contract's limits. */
export function zodOfRecord<R extends AvroRecord>(record: R, limits?: FieldLimits): z.ZodType<TsOf<R>> {
  const shape: Record<string, z.ZodType> = {};
  const max = limits?.maxStringLength;
  for (const f of record.fields) {
    const base = zodOfType(f.type, max, limits?.maxEntries[f.name]);
    shape[f.name] = f.format === undefined ? base : formatted(f.format, base, max);
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

const FORMAT_CHECKS: Record<FieldFormat, (v: unknown) => boolean> = {
  date: (v) => typeof v === "string" && isCalendarDate(v),
  datetime: (v) => typeof v === "string" && DATETIME_RE.test(v) && !Number.isNaN(Date.parse(v)),
  region: (v) => typeof v === "string" && /^\d{6}$/.test(v),
  nonempty: (v) => typeof v === "string" && v.length > 0,
  json: (v) => typeof v === "object" && v !== null && !Array.isArray(v),
};

type Check = (v: unknown, owner?: Record<string, unknown>, key?: string) => boolean;

function checkOfType(t: AvroType, max: MaxString, maxEntries?: number): Check {
  if (Array.isArray(t)) {
    const inner = checkOfType((t as readonly AvroType[]).find((b) => b !== "null") as AvroType, max);
    return (v, owner, key) => {
      if (v === undefined && owner && key !== undefined) {
        owner[key] = null; // as zod's .default(null) would
        return true;
      }
      return v === null || inner(v);
    };
  }
  if (typeof t === "string") {
    switch (t) {
      case "null":
        return (v) => v === null;
      case "boolean":
        return (v) => typeof v === "boolean";
      case "int":
        return (v) => Number.isInteger(v) && (v as number) >= -(2 ** 31) && (v as number) <= 2 ** 31 - 1;
      case "long":
        return (v) => Number.isSafeInteger(v);
      case "float":
      case "double":
        return (v) => typeof v === "number" && Number.isFinite(v);
      case "string":
        return max === undefined
          ? (v) => typeof v === "string"
          : (v) => typeof v === "string" && utf8Within(v, max);
    }
  }
  const complex = t as AvroEnum | AvroArray | AvroRecord;
  switch (complex.type) {
    case "enum": {
      const symbols = new Set(complex.symbols);
      return (v) => typeof v === "string" && symbols.has(v);
    }
    case "array": {
      const item = checkOfType(complex.items, max);
      const most = maxEntries ?? Number.POSITIVE_INFINITY;
      return (v) => Array.isArray(v) && v.length <= most && v.every((x) => item(x));
    }
    case "record":
      return checkOfRecord(complex, nested(max));
  }
}

function formatCheck(format: FieldFormat, max: MaxString): Check {
  const check = FORMAT_CHECKS[format];
  return format === "nonempty" && max !== undefined ? (v) => check(v) && utf8Within(v as string, max) : check;
}

function checkOfRecord(record: AvroRecord, limits: FieldLimits | undefined): Check {
  const names = new Set(record.fields.map((f) => f.name));
  const max = limits?.maxStringLength;
  const fields = record.fields.map((f) => ({
    name: f.name,
    check:
      f.format === undefined
        ? checkOfType(f.type, max, limits?.maxEntries[f.name])
        : formatCheck(f.format, max),
  }));
  return (v) => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
    const o = v as Record<string, unknown>;
    for (const f of fields) if (!f.check(o[f.name], o, f.name)) return false;
    // Unknown keys are stripped by zod; leave such (rare) input to it. Own keys only: decoded
    // Avro records carry enumerable methods on their prototype.
    for (const k of Object.keys(o)) if (!names.has(k)) return false;
    return true;
  };
}

/**
 * A compiled check that agrees with `zodOfRecord(record, limits)` on every value it accepts, and
 * normalises it in place as zod would (missing nullable fields become null). It may reject
 * what zod accepts (unknown keys): callers then ask zod, which also explains failures.
 * zod's per-value machinery is the largest cost of ingesting NDJSON; this is the hot path.
 */
export function fastCheckOfRecord(record: AvroRecord, limits?: FieldLimits): (value: unknown) => boolean {
  const check = checkOfRecord(record, limits);
  return (value) => check(value);
}
