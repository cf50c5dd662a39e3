import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { addDays, dateOfDay, dayNumber } from "../../detectors/dates.ts";

const DAY_MS = 86_400_000;
/** Day numbers of 0000-01-01 and 9999-12-31, the range of the contract's YYYY-MM-DD dates. */
const FIRST = new Date(0).setUTCFullYear(0, 0, 1) / DAY_MS;
const LAST = Date.UTC(9999, 11, 31) / DAY_MS;

describe("dateOfDay", () => {
  it("is the calendar date Date gives, for every day of years 0000–9999", () => {
    fc.assert(
      fc.property(fc.integer({ min: FIRST, max: LAST }), (day) => {
        expect(dateOfDay(day)).toBe(new Date(day * DAY_MS).toISOString().slice(0, 10));
      }),
      { numRuns: 20_000 },
    );
  });

  it("is dayNumber's inverse, on every day of years 0000–9999", () => {
    fc.assert(
      fc.property(fc.integer({ min: FIRST, max: LAST }), (day) => {
        expect(dayNumber(dateOfDay(day))).toBe(day);
      }),
      { numRuns: 20_000 },
    );
  });

  it("round-trips with dayNumber across leap days and century years", () => {
    for (const date of ["1900-02-28", "1900-03-01", "2000-02-29", "2024-02-29", "2100-03-01", "0004-02-29"])
      expect(dateOfDay(dayNumber(date))).toBe(date);
    expect(addDays("2024-02-28", 1)).toBe("2024-02-29");
    expect(addDays("2023-02-28", 1)).toBe("2023-03-01");
    expect(addDays("2025-01-01", -1)).toBe("2024-12-31");
  });
});
