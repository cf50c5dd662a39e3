import { describe, expect, it } from "vitest";
import { addDays } from "../../detectors/dates.ts";
import type { Settlement } from "../../schemas/index.ts";
import { line, reversal, settlement, stay } from "../fixtures/events.ts";
import { rules, run } from "../fixtures/run.ts";

const STATIN = "XC10AAA023A001010100932"; // 阿托伐他汀钙片
const OTHER = "XC08CAA017A001010101422"; // 苯磺酸氨氯地平片

/** A visit on `date` dispensing `quantity` units of `code` (one line, or split over several). */
function visit(
  id: string,
  date: string,
  quantity: number | number[],
  o: { code?: string; type?: Settlement["visit_type"]; category?: "DRUG" | "SERVICE" } = {},
): Settlement {
  const qs = Array.isArray(quantity) ? quantity : [quantity];
  return settlement({
    settlement_id: id,
    visit_type: o.type ?? "PHARMACY",
    admission_date: date,
    settled_at: `${date}T10:00:00+08:00`,
    items: qs.map((q, i) =>
      line({
        line_no: i + 1,
        item_code: o.code ?? STATIN,
        item_name: "阿托伐他汀钙片",
        category: o.category ?? "DRUG",
        quantity: q,
        unit_price_fen: 2150,
        service_date: date,
      }),
    ),
  });
}

const found = (events: Settlement[]) => rules(run(events), "excessive_dispensing");
const key = (id: string, ...related: string[]) =>
  `excessive_dispensing/excessive_dispensing:${[id, ...related].join(">")}`;
const D = "2025-03-31";

describe("excessive_dispensing", () => {
  it("fires above 90 units, not at 90", () => {
    expect(found([visit("A", addDays(D, -10), 45), visit("B", D, 45)])).toEqual([]);
    expect(found([visit("A", addDays(D, -10), 45), visit("B", D, 46)])).toEqual([key("B", "A")]);
    expect(found([visit("B", D, 91)])).toEqual([key("B")]);
    expect(found([visit("B", D, [45, 46])])).toEqual([key("B")]);
  });

  it("counts the 30 days ending on the line's service date: 29 days before is in, 30 is out", () => {
    expect(found([visit("A", addDays(D, -29), 50), visit("B", D, 41)])).toEqual([key("B", "A")]);
    expect(found([visit("A", addDays(D, -30), 50), visit("B", D, 41)])).toEqual([]);
  });

  it("never looks forward: the earlier visit is not a suspect of a later one", () => {
    expect(found([visit("A", "2025-03-01", 60), visit("B", "2025-03-02", 60)])).toEqual([key("B", "A")]);
  });

  it("sums one item code only, drugs only, pharmacy and outpatient claims only", () => {
    expect(found([visit("A", addDays(D, -1), 60, { code: OTHER }), visit("B", D, 60)])).toEqual([]);
    expect(found([visit("A", addDays(D, -1), 60, { category: "SERVICE" }), visit("B", D, 60)])).toEqual([]);
    expect(found([visit("A", addDays(D, -1), 60, { type: "OUTPATIENT" }), visit("B", D, 60)])).toEqual([
      key("B", "A"),
    ]);
    const ward = stay(addDays(D, -3), addDays(D, -1), {
      settlement_id: "W",
      items: [line({ item_code: STATIN, category: "DRUG", quantity: 80, service_date: addDays(D, -2) })],
    });
    expect(found([ward, visit("B", D, 20)])).toEqual([]);
  });

  it("a late earlier visit makes the later one a suspect; its reversal retracts it, in any order", () => {
    const a = visit("A", addDays(D, -5), 50);
    const b = visit("B", D, 50);
    const r = reversal(a);
    for (const order of [
      [a, b],
      [b, a],
    ])
      expect(found(order)).toEqual([key("B", "A")]);
    for (const order of [
      [a, b, r],
      [b, r, a],
      [r, b, a],
      [b, a, r],
    ])
      expect(found(order)).toEqual([]);
  });

  it("shows the window, its total and every dispensing in it; at risk is the suspect's own lines", () => {
    const [s] = run([
      visit("A", addDays(D, -20), 30),
      visit("C", addDays(D, -2), 30),
      visit("B", D, 31),
    ]).filter((x) => x.detector === "excessive_dispensing" && x.settlement_ids[0] === "B");
    expect(s?.settlement_ids).toEqual(["B", "A", "C"]);
    expect(s?.severity).toBe("WARN");
    expect(s?.amount_at_risk_fen).toBe(31 * 2150);
    expect(s?.evidence).toEqual({
      max_units: 90,
      window_days: 30,
      drugs: [
        {
          item_code: STATIN,
          item_name: "阿托伐他汀钙片",
          service_date: D,
          quantity: 31,
          window_from: addDays(D, -29),
          window_quantity: 91,
          dispensed: [
            { settlement_id: "A", service_date: addDays(D, -20), quantity: 30 },
            { settlement_id: "C", service_date: addDays(D, -2), quantity: 30 },
            { settlement_id: "B", service_date: D, quantity: 31 },
          ],
        },
      ],
    });
  });

  it("takes its limit and window from the config", () => {
    const events = [visit("A", addDays(D, -10), 30), visit("B", D, 30)];
    expect(rules(run(events, { excessive_dispensing: { maxUnits: 59 } }), "excessive_dispensing")).toEqual([
      key("B", "A"),
    ]);
    expect(
      rules(run(events, { excessive_dispensing: { maxUnits: 59, windowDays: 10 } }), "excessive_dispensing"),
    ).toEqual([]);
  });
});
