import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, type Limits, utf8Within } from "../../schemas/index.ts";
import { limitsOf, loadEnv } from "../../services/config/env.ts";
import { validators } from "../../services/ingest/validate.ts";
import { death, line, settlement } from "../fixtures/events.ts";

const diagnosis = (i: number) => ({ code: `J06.${i}`, name: "急性上呼吸道感染", primary: i === 0 });
const small: Limits = { maxMessageBytes: 4096, maxStringLength: 32, maxDiagnoses: 2, maxItems: 3 };

describe("the contract's limits", () => {
  it("default to 1 MiB messages, 64 KiB strings, 1,000 diagnoses and 20,000 line items", () => {
    expect(DEFAULT_LIMITS).toEqual({
      maxMessageBytes: 1_048_576,
      maxStringLength: 65_536,
      maxDiagnoses: 1_000,
      maxItems: 20_000,
    });
    expect(limitsOf(loadEnv({}))).toEqual(DEFAULT_LIMITS);
  });

  it("are configured by FUNDGUARD_MAX_* and refuse a bad value by name", () => {
    const env = {
      FUNDGUARD_MAX_MESSAGE_BYTES: "4096",
      FUNDGUARD_MAX_STRING_LENGTH: "32",
      FUNDGUARD_MAX_DIAGNOSES: "2",
      FUNDGUARD_MAX_ITEMS: "3",
    };
    expect(limitsOf(loadEnv(env))).toEqual(small);
    expect(() => loadEnv({ FUNDGUARD_MAX_ITEMS: "many" })).toThrow(/FUNDGUARD_MAX_ITEMS/);
    expect(() => loadEnv({ FUNDGUARD_MAX_MESSAGE_BYTES: "0" })).toThrow(/FUNDGUARD_MAX_MESSAGE_BYTES/);
  });

  it("count strings in UTF-8 bytes, exactly", () => {
    expect(utf8Within("a".repeat(12), 12)).toBe(true);
    expect(utf8Within("a".repeat(13), 12)).toBe(false);
    expect(utf8Within("中".repeat(4), 12)).toBe(true);
    expect(utf8Within(`${"中".repeat(4)}a`, 12)).toBe(false);
    expect(utf8Within("😀".repeat(3), 12)).toBe(true);
    expect(utf8Within(`${"😀".repeat(3)}a`, 12)).toBe(false);
  });

  describe.each([
    ["the compiled check", (v: unknown) => v],
    // An unknown key makes the fast check decline, so zod decides: both paths are held to the limits.
    ["zod", (v: unknown) => ({ ...(v as object), unknown_key: 1 })],
  ])("are enforced by the validator (%s)", (_name, route) => {
    const v = validators(small);
    const ok = (s: unknown) => v.settlement(route(s)).ok;
    const reason = (s: unknown) => {
      const r = v.settlement(route(s));
      return r.ok ? "" : r.reason;
    };

    it("at the limit passes, one past it is a contract violation naming the field", () => {
      expect(ok(settlement({ diagnoses: [diagnosis(0), diagnosis(1)] }))).toBe(true);
      expect(reason(settlement({ diagnoses: [0, 1, 2].map(diagnosis) }))).toMatch(
        /^contract violation: diagnoses: more than the limit of 2 entries/,
      );
      const items = (n: number) => Array.from({ length: n }, (_, i) => line({ line_no: i + 1 }));
      expect(ok(settlement({ items: items(3) }))).toBe(true);
      expect(reason(settlement({ items: items(4) }))).toMatch(/items: more than the limit of 3 entries/);
      expect(ok(settlement({ institution_name: "中".repeat(10) }))).toBe(true);
      expect(reason(settlement({ institution_name: "中".repeat(11) }))).toMatch(
        /institution_name: longer than the limit of 32 bytes/,
      );
    });

    it("hold every string, nested and nullable ones included", () => {
      const long = "x".repeat(33);
      expect(reason(settlement({ settlement_id: long }))).toMatch(/settlement_id: longer than the limit/);
      expect(reason(settlement({ items: [line({ item_name: long })] }))).toMatch(
        /items\.0\.item_name: longer than the limit/,
      );
      expect(reason(settlement({ diagnoses: [{ ...diagnosis(0), code: long }] }))).toMatch(
        /diagnoses\.0\.code: longer than the limit/,
      );
      const reversal = { event_type: "REVERSAL" as const, original_settlement_id: long };
      expect(reason(settlement(reversal))).toMatch(/original_settlement_id: longer than the limit/);
      expect(v.death(route(death("2025-01-01", { person_id: long }))).ok).toBe(false);
    });
  });

  it("the default validators take ordinary input and refuse 1,001 diagnoses", () => {
    const v = validators();
    expect(v.settlement(settlement()).ok).toBe(true);
    const many = Array.from({ length: 1_001 }, (_, i) => diagnosis(i));
    expect(v.settlement(settlement({ diagnoses: many })).ok).toBe(false);
    expect(v.settlement(settlement({ diagnoses: many.slice(1) })).ok).toBe(true);
  });
});
