// Dynamic detector config without Kafka: validation, the fold `config get` shows, and records
// applied to running engines (every change carries the hash of the config that decided it).
import { describe, expect, it } from "vitest";
import { frequentAdmission } from "../../detectors/frequent-admission.ts";
import { DETECTORS, loadCatalogs } from "../../detectors/index.ts";
import { applyConfigRecord } from "../../services/dynamic-config/apply.ts";
import { effectiveConfigs } from "../../services/dynamic-config/commands.ts";
import type { ConfigRecord } from "../../services/dynamic-config/topic.ts";
import { checkDetectorConfig, defaultConfig } from "../../services/dynamic-config/validate.ts";
import { activate, canonicalJson, configHash, Engine } from "../../services/engine/engine.ts";
import { createLogger } from "../../services/log.ts";
import { stay } from "../fixtures/events.ts";
import { asEvent } from "../fixtures/run.ts";

const log = createLogger("test", "silent");
let offset = 0;
const record = (detector: string, value: unknown, parseError?: string): ConfigRecord => ({
  offset: String(offset++),
  at: "2026-01-01T00:00:00.000Z",
  detector,
  value,
  headers: {},
  ...(parseError ? { parseError } : {}),
});

const H15 = defaultConfig(frequentAdmission).hash;
const H5 = configHash({ readmissionMaxDays: 5, highFrequencyStays: 4, highFrequencyWindowDays: 180 });

describe("config hash", () => {
  it("is a short sha256 of the canonical JSON of the effective config", () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 2 }], c: null } })).toBe(
      '{"a":{"c":null,"d":[2,{"y":2,"z":1}]},"b":1}',
    );
    expect(configHash({ b: 1, a: 2 })).toBe(configHash({ a: 2, b: 1 }));
    expect(configHash({ a: 1 })).toMatch(/^[0-9a-f]{12}$/);
    // Defaults are part of the effective config: {} and the spelled-out defaults are one config.
    const check = checkDetectorConfig(frequentAdmission, { readmissionMaxDays: 15 });
    expect(check.ok && check.hash).toBe(H15);
    expect(
      activate(DETECTORS, loadCatalogs()).find((a) => a.detector.id === "frequent_admission")?.configHash,
    ).toBe(H15);
  });

  it("rejects unknown keys and invalid values with the detector's own schema", () => {
    const typo = checkDetectorConfig(frequentAdmission, { readmisionMaxDays: 5 });
    expect(typo.ok).toBe(false);
    expect(!typo.ok && typo.reason).toMatch(
      /invalid config for frequent_admission:[\s\S]*Unrecognized key: "readmisionMaxDays"/,
    );
    const bad = checkDetectorConfig(frequentAdmission, { readmissionMaxDays: "5" });
    expect(!bad.ok && bad.reason).toMatch(/readmissionMaxDays/);
  });
});

describe("detector-config.v1 records", () => {
  it("fold to what a worker holds: the latest valid record wins, invalid ones are ignored, a tombstone resets", () => {
    const records = [
      record("frequent_admission", { readmissionMaxDays: 5 }),
      record("frequent_admission", { readmissionMaxDays: -1 }),
      record("frequent_admission", undefined, "value is not JSON"),
      record("unknown_detector", {}),
      record("high_out_of_pocket", { thresholdsYuan: [20_000] }),
      record("high_out_of_pocket", null),
    ];
    const fold = effectiveConfigs(records);
    expect(fold.get("frequent_admission")).toMatchObject({
      config_hash: H5,
      source: "topic",
      offset: records[0]?.offset,
      ignored_records: 2,
    });
    expect(fold.get("high_out_of_pocket")).toMatchObject({
      source: "default",
      config_hash: fold.get("high_out_of_pocket")?.config_hash,
    });
    expect(fold.get("high_out_of_pocket")?.config).toEqual({ thresholdsYuan: [15_000, 30_000] });
    expect(fold.get("pediatric_drug")).toMatchObject({ source: "default", offset: null });
    expect(fold.size).toBe(DETECTORS.length);
  });

  it("reconfigure running engines between events; changes before and after carry their config's hash", () => {
    const active = activate(DETECTORS, loadCatalogs());
    const engines = [new Engine({ detectors: active }), new Engine({ detectors: active })];
    const [e0, e1] = engines as [Engine, Engine];
    // P1: readmitted 10 days after discharge; found under the default 15 days.
    const before = [
      ...e0.process(asEvent(stay("2025-01-01", "2025-01-05", { person_id: "P1", settlement_id: "A1" }))),
      ...e0.process(asEvent(stay("2025-01-15", "2025-01-20", { person_id: "P1", settlement_id: "A2" }))),
    ];
    expect(before.map((c) => [c.op, c.suspect.rule, c.configHash])).toEqual([["upsert", "readmission", H15]]);

    expect(applyConfigRecord(active, record("frequent_admission", { readmissionMaxDays: 5 }), log)).toBe(
      "applied",
    );
    expect(applyConfigRecord(active, record("frequent_admission", { readmissionMaxDays: 5 }), log)).toBe(
      "unchanged",
    );
    // An invalid record is ignored: the engines keep the last valid config.
    expect(applyConfigRecord(active, record("frequent_admission", { readmissionMaxDays: "x" }), log)).toBe(
      "ignored",
    );
    expect(applyConfigRecord(active, record("nope", {}), log)).toBe("ignored");

    // P2 on the other engine: a 10-day gap is no longer a readmission, a 3-day gap is, under the new hash.
    const after = [
      ...e1.process(asEvent(stay("2025-02-01", "2025-02-05", { person_id: "P2", settlement_id: "B1" }))),
      ...e1.process(asEvent(stay("2025-02-15", "2025-02-20", { person_id: "P2", settlement_id: "B2" }))),
      ...e1.process(asEvent(stay("2025-02-23", "2025-02-25", { person_id: "P2", settlement_id: "B3" }))),
    ];
    expect(after.map((c) => [c.op, c.suspect.settlement_ids[0], c.configHash])).toEqual([
      ["upsert", "B3", H5],
    ]);
    expect(after[0]?.suspect.evidence).toMatchObject({ max_days: 5, days_since_previous_discharge: 3 });

    // P1's old finding stays as it was until an event re-evaluates it; then it is judged anew.
    expect([...e0.activeSuspects()].map((s) => s.settlement_ids[0])).toEqual(["A2"]);
    const reeval = e0.process(
      asEvent(stay("2025-01-22", "2025-01-23", { person_id: "P1", settlement_id: "A3" })),
    );
    expect(reeval.map((c) => [c.op, c.suspect.settlement_ids[0], c.configHash])).toEqual([
      ["upsert", "A3", H5],
    ]);

    // A tombstone resets to the defaults.
    expect(applyConfigRecord(active, record("frequent_admission", null), log)).toBe("applied");
    expect(active.find((a) => a.detector.id === "frequent_admission")?.configHash).toBe(H15);
  });
});
