// The what-if evaluation (services/engine/check.ts): the same answer whatever order the archive
// returns the evidence in, retention as the stream keeps it, and nothing of the evidence changed.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DETECTORS, loadCatalogs } from "../../detectors/index.ts";
import { checkOnEngine, checkSettlement } from "../../services/engine/check.ts";
import { activate, Engine, type EngineEvent } from "../../services/engine/engine.ts";
import { death, reversal, settlement, stay } from "../fixtures/events.ts";
import { testPersonStore } from "../fixtures/person-store.ts";

const o = { detectors: activate(DETECTORS, loadCatalogs()), retentionDays: 400 };

describe("checkSettlement", () => {
  const p = stay("2025-03-01", "2025-03-05");
  const q = stay("2025-03-20", "2025-03-22", { institution_id: "H34150300456" });
  const history = [p, q, reversal(q), settlement({ admission_date: "2025-03-03" })];
  const deaths = [death("2025-06-01", { reported_at: "2025-07-01T09:00:00+08:00" }), death("2025-01-01")];
  const proposed = stay("2025-03-12", "2025-06-10");

  it("answers the same for every order of the evidence", () => {
    const expected = checkSettlement(proposed, { settlements: history, deaths }, o);
    expect(expected.decision).toBe("BLOCK");
    expect(expected.findings.map((f) => f.rule).sort()).toEqual(["deceased_activity", "readmission"]);
    fc.assert(
      fc.property(fc.shuffledSubarray(history, { minLength: history.length }), fc.boolean(), (s, flip) => {
        const d = flip ? [...deaths].reverse() : deaths;
        expect(checkSettlement(proposed, { settlements: s, deaths: d }, o)).toEqual(expected);
      }),
    );
  });

  it("leaves out settlements older than the retention behind the newest event", () => {
    const old = stay("2023-01-01", "2023-01-05");
    const late = stay("2023-01-10", "2023-01-12", { settled_at: "2025-03-01T10:00:00+08:00" });
    expect(checkSettlement(late, { settlements: [old], deaths: [] }, o).decision).toBe("PASS");
    expect(
      checkSettlement(late, { settlements: [old], deaths: [] }, { ...o, retentionDays: 1000 }).decision,
    ).toBe("WARN");
  });

  it("does not change the evidence it is given", () => {
    const given = structuredClone(history);
    checkSettlement(proposed, { settlements: given, deaths }, o);
    expect(given).toEqual(history);
  });

  it("on a live engine holding the evidence, answers as the replay does and changes nothing", () => {
    const engine = new Engine({ store: testPersonStore(), ...o, changelog: true });
    const events: EngineEvent[] = [
      ...history.map((value): EngineEvent => ({ kind: "settlement", value })),
      ...deaths.map((value): EngineEvent => ({ kind: "death", value })),
    ];
    for (const e of events) engine.process(e);
    engine.takeDirty();
    const active = [...engine.activeSuspects()];
    const expected = checkSettlement(proposed, { settlements: history, deaths }, o);
    expect(checkOnEngine(proposed, engine, o.detectors)).toEqual(expected);
    expect(engine.takeDirty()).toEqual([]);
    expect([...engine.activeSuspects()]).toEqual(active);
    // Once ingested, a re-check of the same settlement finds the same again rather than a duplicate.
    engine.process({ kind: "settlement", value: proposed });
    expect(checkOnEngine(proposed, engine, o.detectors).findings).toEqual(expected.findings);
  });
});
