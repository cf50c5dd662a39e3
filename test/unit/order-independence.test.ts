import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { addDays } from "../../detectors/dates.ts";
import { DETECTORS, type TestWorldItem } from "../../detectors/index.ts";
import type { DeathRecord, Settlement } from "../../schemas/index.ts";
import { line, reversal, settlement } from "../fixtures/events.ts";
import { ALL_RULES, asEvent, canonical, newEngine, run } from "../fixtures/run.ts";

// A tiny world (two people, two institutions, a few codes, two months) so that events collide often.
// Detectors add the codes (and quantities) their rules need to fire here (Detector.testWorld).
const CODES: TestWorldItem[] = [
  { item_code: "ZA06CAE0020010101748", item_name: "儿童咳颗粒", category: "DRUG", quantities: [1, 2] },
  { item_code: "XG04BET001A0010999", item_name: "他达拉非片", category: "DRUG", quantities: [1, 2] },
  { item_code: "250101001000000", item_name: "血常规", category: "SERVICE", quantities: [1, 2] },
  { item_code: "110900001000000", item_name: "床位费", category: "SERVICE", quantities: [1, 2] },
  ...DETECTORS.flatMap((d) => d.testWorld?.items ?? []),
];

const settlementArb = fc
  .record({
    person: fc.constantFrom("P1", "P2"),
    institution: fc.constantFrom("H1", "H2"),
    visitType: fc.constantFrom("OUTPATIENT", "INPATIENT", "PHARMACY"),
    day: fc.integer({ min: 0, max: 60 }),
    length: fc.integer({ min: 0, max: 12 }),
    hour: fc.integer({ min: 8, max: 9 }),
    reason: fc.constantFrom("NORMAL", "TRANSFER", "DEATH"),
    diagnosis: fc.constantFrom("J06.900", "O80.000", "N40.x00"),
    lines: fc.array(
      fc.record({
        code: fc.integer({ min: 0, max: CODES.length - 1 }),
        offset: fc.integer({ min: 0, max: 3 }),
        qty: fc.nat(),
      }),
      { minLength: 0, maxLength: 3 },
    ),
    oopYuan: fc.constantFrom(100, 8_000, 16_000),
  })
  .map((r): Omit<Settlement, "settlement_id"> => {
    const admission = addDays("2025-01-01", r.day);
    const inpatient = r.visitType === "INPATIENT";
    const discharge = inpatient ? addDays(admission, r.length) : admission;
    const items = r.lines.map((l, i) => {
      const date = inpatient ? addDays(admission, Math.min(l.offset, r.length)) : admission;
      const { quantities, unitPriceFen, ...code } = CODES[l.code] as TestWorldItem;
      return line({
        line_no: i + 1,
        ...code,
        quantity: quantities[l.qty % quantities.length] as number,
        unit_price_fen: unitPriceFen ?? 100,
        service_date: date,
      });
    });
    const total = r.oopYuan * 100 + items.reduce((s, i) => s + i.amount_fen, 0);
    return {
      ...settlement({
        person_id: r.person,
        gender: r.person === "P1" ? "M" : "F",
        birth_date: r.person === "P1" ? "2007-01-20" : "1960-02-29",
        institution_id: r.institution,
        visit_type: r.visitType,
        admission_date: admission,
        discharge_date: discharge,
        discharge_reason: inpatient ? r.reason : null,
        settled_at: `${discharge}T0${r.hour}:00:00+08:00`,
        diagnoses: [{ code: r.diagnosis, name: "dx", primary: true }],
        items,
        total_fen: total,
        fund_paid_fen: total - r.oopYuan * 100,
      }),
    };
  });

const deathArb = fc
  .record({
    person: fc.constantFrom("P1", "P2"),
    day: fc.integer({ min: 0, max: 60 }),
    lag: fc.integer({ min: 0, max: 40 }),
  })
  .map(
    (d): DeathRecord => ({
      person_id: d.person,
      death_date: addDays("2025-01-01", d.day),
      source: "HEALTH",
      reported_at: `${addDays("2025-01-01", d.day + d.lag)}T12:00:00+08:00`,
    }),
  );

const streamArb = fc
  .record({
    settlements: fc.array(settlementArb, { minLength: 1, maxLength: 25 }),
    reversed: fc.array(fc.nat(), { maxLength: 5 }),
    redelivered: fc.array(fc.nat(), { maxLength: 3 }),
    // A claim billed again a day later under a new id: the duplicate-line scheme, which random
    // settlements alone almost never produce.
    rebilled: fc.array(fc.nat(), { maxLength: 2 }),
    deaths: fc.array(deathArb, { maxLength: 3 }),
  })
  .map(({ settlements, reversed, redelivered, rebilled, deaths }) => {
    const originals = settlements.map((x, i) => ({ ...x, settlement_id: `S${i}` }) as Settlement);
    const copies = rebilled.map((i, k): Settlement => {
      const o = originals[i % originals.length] as Settlement;
      const day = addDays(o.settled_at.slice(0, 10), 1);
      return { ...o, settlement_id: `C${k}`, settled_at: `${day}${o.settled_at.slice(10)}` };
    });
    const s = [...originals, ...copies];
    const reversals = [...new Set(reversed.map((i) => i % s.length))].map((i) =>
      reversal(s[i] as Settlement),
    );
    const again = redelivered.map((i) => s[i % s.length] as Settlement);
    return [...s, ...reversals, ...again, ...deaths];
  });

describe("order independence", () => {
  it("any permutation of a stream gives the same final suspects, evidence included", () => {
    fc.assert(
      fc.property(
        streamArb.chain((events) =>
          fc.tuple(
            fc.constant(events),
            fc.shuffledSubarray(events, { minLength: events.length, maxLength: events.length }),
          ),
        ),
        ([events, permuted]) => {
          expect(canonical(run(permuted))).toEqual(canonical(run(events)));
        },
      ),
      { numRuns: 400 },
    );
  });

  it("state restored from the changelog entries carries on exactly as the engine it came from", () => {
    fc.assert(
      fc.property(streamArb, fc.nat(), (events, cut) => {
        const at = cut % (events.length + 1);
        const a = newEngine();
        for (const e of events.slice(0, at)) a.process(asEvent(e));
        const b = newEngine();
        // Entries written at several flushes; only the latest value per key matters, as in a compacted topic.
        for (const { key, value } of a.takeDirty()) b.restoreEntry(key, JSON.parse(JSON.stringify(value)));
        for (const e of events.slice(at)) b.process(asEvent(e));
        expect(canonical([...b.activeSuspects()])).toEqual(canonical(run(events)));
      }),
      { numRuns: 300 },
    );
  });

  it("the generated world does produce findings of every kind (the property is not vacuous)", () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(streamArb, (events) => {
        for (const s of run(events)) seen.add(`${s.detector}/${s.rule}`);
      }),
      { numRuns: 300 },
    );
    expect([...seen].sort()).toEqual(ALL_RULES);
  });
});
