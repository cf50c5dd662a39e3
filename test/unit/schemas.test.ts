import { readFileSync } from "node:fs";
import avro from "avsc";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { deathRecordSchema, deathRecordValidator } from "../../schemas/death-record.ts";
import { AVSC_FILES } from "../../schemas/files.ts";
import {
  type AvroRecord,
  avscText,
  isCalendarDate,
  isValidSettlement,
  settlementSchema,
  settlementValidator,
} from "../../schemas/index.ts";
import { suspectSchema, suspectValidator } from "../../schemas/suspect.ts";
import { death, settlement, stay } from "../fixtures/events.ts";

const CASES: [string, AvroRecord, { safeParse(v: unknown): { success: boolean } }, unknown][] = [
  ["settlement", settlementSchema, settlementValidator, stay("2025-01-01", "2025-01-03")],
  ["death record", deathRecordSchema, deathRecordValidator, death("2025-01-01")],
  [
    "suspect",
    suspectSchema,
    suspectValidator,
    {
      suspect_id: "x",
      detector: "d",
      rule: "r",
      severity: "WARN",
      person_id: "P",
      settlement_ids: ["S"],
      institution_id: "H",
      region_code: "341502",
      amount_at_risk_fen: 1,
      event_time: "2025-01-01T10:00:00+08:00",
      detected_at: "2025-01-01T10:00:00Z",
      detector_version: "1",
      evidence: { a: 1 },
    },
  ],
];

/** The Avro view of a value: JSON-typed fields travel as strings. */
function toAvro(schema: AvroRecord, value: Record<string, unknown>): Record<string, unknown> {
  const out = { ...value };
  for (const f of schema.fields) if (f.format === "json") out[f.name] = JSON.stringify(value[f.name]);
  return out;
}

describe("schemas", () => {
  it("the committed .avsc files are generated from the TypeScript source of truth", () => {
    for (const [file, schema] of Object.entries(AVSC_FILES)) {
      expect(readFileSync(new URL(`../../schemas/${file}`, import.meta.url), "utf8"), file).toBe(
        avscText(schema),
      );
    }
  });

  describe.each(CASES)("%s: Avro and zod agree", (_name, schema, validator, valid) => {
    const type = avro.Type.forSchema(schema as avro.Schema);
    const sample = valid as Record<string, unknown>;

    it("accept the same valid value and round-trip it", () => {
      expect(validator.safeParse(sample).success).toBe(true);
      const wire = toAvro(schema, sample);
      expect(type.isValid(wire)).toBe(true);
      expect(type.fromBuffer(type.toBuffer(wire))).toEqual(wire);
    });

    it.each(schema.fields.map((f) => [f.name]))("both reject a wrongly typed %s", (field) => {
      const broken = { ...sample, [field]: true };
      expect(validator.safeParse(broken).success).toBe(false);
      expect(type.isValid(toAvro(schema, broken) as object)).toBe(field === "evidence");
    });

    it("have the same fields", () => {
      expect(Object.keys(sample).sort()).toEqual(schema.fields.map((f) => f.name).sort());
    });
  });

  it("enforces the contract's formats and cross-field rules", () => {
    const bad = (patch: object) => settlementValidator.safeParse({ ...settlement(), ...patch }).success;
    expect(bad({})).toBe(true);
    expect(bad({ birth_date: "2025-02-30" })).toBe(false);
    expect(bad({ region_code: "34150" })).toBe(false);
    expect(bad({ settled_at: "2025-03-01T10:00:00" })).toBe(false);
    expect(bad({ total_fen: 1.5 })).toBe(false);
    expect(bad({ event_type: "REVERSAL" })).toBe(false);
    expect(bad({ original_settlement_id: "S0" })).toBe(false);
    expect(bad({ discharge_date: "2025-03-02" })).toBe(false);
    expect(bad({ gender: "X" })).toBe(false);
  });
});

describe("the compiled hot-path check", () => {
  const base = JSON.stringify(stay("2025-01-01", "2025-01-03"));
  const wrong = [null, undefined, 1.5, -1, "", "x", "2025-02-30", "341502", true, [], {}, 2 ** 60];
  const paths = [
    ...settlementSchema.fields.map((f) => [f.name]),
    ["items", 0, "quantity"],
    ["items", 0, "service_date"],
    ["items", 0, "line_no"],
    ["diagnoses", 0, "primary"],
    ["diagnoses", 0, "code"],
    ["extra_field"],
  ];

  it("never accepts what zod rejects, and accepts valid input as zod normalises it", () => {
    fc.assert(
      fc.property(fc.constantFrom(...paths), fc.constantFrom(...wrong), (path, value) => {
        const input = JSON.parse(base);
        let target = input;
        for (const k of path.slice(0, -1)) target = target[k];
        if (value === undefined) delete target[path.at(-1) as string];
        else target[path.at(-1) as string] = value;
        const viaZod = settlementValidator.safeParse(structuredClone(input));
        if (isValidSettlement(input)) {
          expect(viaZod.success).toBe(true);
          expect(input).toEqual(viaZod.data);
        }
      }),
      { numRuns: 2_000 },
    );
    const valid = JSON.parse(base);
    delete valid.original_settlement_id;
    expect(isValidSettlement(valid)).toBe(true);
    expect(valid.original_settlement_id).toBeNull();
  });
});

describe("isCalendarDate", () => {
  // The reference: the shape by regex, the day by a UTC round trip.
  const reference = (s: string) => {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(s)) return false;
    const [y, m, d] = s.split("-").map(Number) as [number, number, number];
    const t = new Date(0);
    t.setUTCFullYear(y, m - 1, d);
    return t.getUTCFullYear() === y && t.getUTCMonth() === m - 1 && t.getUTCDate() === d;
  };

  it("accepts exactly the real dates", () => {
    for (const s of ["2024-02-29", "2000-02-29", "2025-12-31", "0001-01-01"])
      expect(isCalendarDate(s), s).toBe(true);
    for (const s of [
      "2025-02-29",
      "1900-02-29",
      "2025-04-31",
      "2025-00-10",
      "2025-13-01",
      "2025-01-00",
      "2025-1-01",
      "２０２５-01-01",
      "2025/01/01",
      "2025-01-01 ",
    ]) {
      expect(isCalendarDate(s), s).toBe(false);
    }
  });

  it("agrees with the reference on every day of four years and on random strings", () => {
    for (let day = Date.UTC(1999, 0, 1); day < Date.UTC(2001, 0, 1); day += 86_400_000) {
      const s = new Date(day).toISOString().slice(0, 10);
      expect(isCalendarDate(s), s).toBe(true);
    }
    const dateLike = fc
      .tuple(
        fc.integer({ min: 0, max: 9999 }),
        fc.integer({ min: 0, max: 99 }),
        fc.integer({ min: 0, max: 99 }),
      )
      .map(
        ([y, m, d]) =>
          `${String(y).padStart(4, "0")}-${String(m).padStart(2, "0")}-${String(d).padStart(2, "0")}`,
      );
    fc.assert(
      fc.property(fc.oneof(dateLike, fc.string({ maxLength: 12 })), (s) => {
        expect(isCalendarDate(s)).toBe(reference(s));
      }),
      { numRuns: 5_000 },
    );
  });
});
