// Suspect evidence is bounded whatever one settlement or person holds: every list in evidence keeps
// MAX_LISTED entries and counts the rest in `<list>_more`, settlement_ids keeps 1 + MAX_LISTED ids
// (`related_more` counts the rest), long text is cut; ordinary evidence is left exactly as it was.
import { describe, expect, it } from "vitest";
import { boundEvidence, MAX_EVIDENCE_TEXT, MAX_LISTED } from "../../detectors/sdk.ts";
import type { Settlement, Suspect } from "../../schemas/index.ts";
import { encodeSuspectChange } from "../../services/kafka/serde.ts";
import { line, settlement, stay } from "../fixtures/events.ts";
import { pediatricLine } from "../fixtures/hostile.ts";
import { run } from "../fixtures/run.ts";

const drugs = (n: number, item_name = "儿童咳颗粒") =>
  Array.from({ length: n }, (_, i) => pediatricLine(i + 1, { item_name }));
const one = (suspects: Suspect[], rule: string, id?: string) => {
  const found = suspects.filter((s) => s.rule === rule && (id === undefined || s.settlement_ids[0] === id));
  expect(found).toHaveLength(1);
  return found[0] as Suspect;
};
/** The suspect as the worker writes it to suspects.v1. */
const wireBytes = (s: Suspect) =>
  (encodeSuspectChange(1, { op: "upsert", version: 1, suspect: s }).value as Buffer).length;

describe("bounded evidence", () => {
  it(`lists ${MAX_LISTED} of 20,000 offending lines and counts the rest; the amount covers them all`, () => {
    const s = settlement({ items: drugs(20_000) });
    const found = one(run([s]), "pediatric_drug");
    expect(found.evidence.lines).toHaveLength(MAX_LISTED);
    expect((found.evidence.lines as { line_no: number }[]).map((l) => l.line_no)).toEqual(
      Array.from({ length: MAX_LISTED }, (_, i) => i + 1),
    );
    expect(found.evidence.lines_more).toBe(20_000 - MAX_LISTED);
    expect(found.amount_at_risk_fen).toBe(20_000 * 1000);
    expect(wireBytes(found)).toBeLessThan(64 << 10);
  });

  it("lists at most MAX_LISTED wrong-sex codes", () => {
    const diagnoses = Array.from({ length: 1_000 }, (_, i) => ({
      code: "N40.x00",
      name: `前列腺增生${i}`,
      primary: i === 0,
    }));
    const found = one(run([settlement({ gender: "F", diagnoses })]), "gender_mismatch");
    expect(found.evidence.offending).toHaveLength(MAX_LISTED);
    expect(found.evidence.offending_more).toBe(1_000 - MAX_LISTED);
  });

  it("bounds duplicated lines and the settlements they first appeared in", () => {
    const lines = Array.from({ length: 200 }, (_, i) =>
      line({ line_no: i + 1, item_code: `00110200001${i}` }),
    );
    // 200 earlier settlements, each with one of the lines; then one with all 200.
    const earlier = lines.map((l, i) =>
      settlement({
        settlement_id: `E${i}`,
        items: [l],
        settled_at: `2025-03-01T${String(i % 10).padStart(2, "0")}:${String(Math.floor(i / 10)).padStart(2, "0")}:00+08:00`,
      }),
    );
    const all = settlement({ settlement_id: "ALL", items: lines, settled_at: "2025-03-02T10:00:00+08:00" });
    const found = one(run([...earlier, all]), "duplicate_line", "ALL");
    expect(found.evidence.lines).toHaveLength(MAX_LISTED);
    expect(found.evidence.lines_more).toBe(200 - MAX_LISTED);
    expect(found.settlement_ids).toHaveLength(1 + MAX_LISTED);
    expect(found.evidence.related_more).toBe(200 - MAX_LISTED);
    // The related ids shown are those the listed lines name.
    const named = (found.evidence.lines as { first_settlement_id: string }[]).map(
      (l) => l.first_settlement_id,
    );
    expect(found.settlement_ids.slice(1)).toEqual(named);
  });

  it("bounds the stays a stay overlaps, and the stays of a high-frequency window", () => {
    const stays: Settlement[] = Array.from({ length: 120 }, (_, i) =>
      stay("2025-03-01", "2025-03-20", {
        settlement_id: `ST${String(i).padStart(3, "0")}`,
        institution_id: `H${i}`,
      }),
    );
    const found = run(stays);
    const last = one(found, "overlapping_stays", "ST119");
    expect(last.evidence.overlapping_stays).toHaveLength(MAX_LISTED);
    expect(last.evidence.overlapping_stays_more).toBe(119 - MAX_LISTED);
    expect(last.settlement_ids).toHaveLength(1 + MAX_LISTED);
    expect(last.evidence.related_more).toBe(119 - MAX_LISTED);
    const frequent = one(found, "high_frequency", "ST119");
    expect(frequent.evidence.stays_in_window).toBe(120);
    expect(frequent.evidence.stays).toHaveLength(MAX_LISTED);
    expect(frequent.evidence.stays_more).toBe(120 - MAX_LISTED);
    for (const s of found) {
      expect(s.settlement_ids.length).toBeLessThanOrEqual(1 + MAX_LISTED);
      expect(wireBytes(s)).toBeLessThan(64 << 10);
    }
    const visit = settlement({ settlement_id: "V", admission_date: "2025-03-10" });
    const during = one(run([...stays, visit]), "outpatient_during_stay", "V");
    expect(during.evidence.stays).toHaveLength(MAX_LISTED);
    expect(during.evidence.stays_more).toBe(120 - MAX_LISTED);
  });

  it("cuts long text, so a suspect of the contract's longest strings still fits suspects.v1", () => {
    const huge = "名".repeat(20_000);
    const s = settlement({ institution_name: huge, items: drugs(300, huge) });
    const found = one(run([s]), "pediatric_drug");
    const listed = found.evidence.lines as { item_name: string }[];
    expect(listed[0]?.item_name).toBe(`${"名".repeat(MAX_EVIDENCE_TEXT)}…`);
    expect(wireBytes(found)).toBeLessThan(256 << 10);
  });

  it("leaves ordinary evidence as it is (the same object)", () => {
    const evidence = {
      birth_date: "1980-06-15",
      lines: [{ line_no: 1, item_name: "儿童咳颗粒" }],
      stays: [],
    };
    expect(boundEvidence(evidence)).toBe(evidence);
    const s = settlement({ items: drugs(3) });
    const found = one(run([s]), "pediatric_drug");
    expect(Object.keys(found.evidence)).toEqual(["birth_date", "lines"]);
  });

  it("never changes the facts kept in state", () => {
    const list = Array.from({ length: MAX_LISTED + 5 }, (_, i) => ({
      i,
      name: "x".repeat(MAX_EVIDENCE_TEXT + 1),
    }));
    const evidence = { offending: list };
    const bounded = boundEvidence(evidence);
    expect(bounded).not.toBe(evidence);
    expect(evidence.offending).toHaveLength(MAX_LISTED + 5);
    expect(list[0]?.name).toHaveLength(MAX_EVIDENCE_TEXT + 1);
    expect(bounded.offending_more).toBe(5);
  });
});
