// `detect --config FILE` and its summary: configs reach every shard's engine, checked as runs check
// them, and the summary names every detector and rule, those that found nothing included.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DETECTORS } from "../../detectors/index.ts";
import { formatSummary, runDetect } from "../../services/cli/detect.ts";
import { effectiveConfigs, readConfigFile } from "../../services/dynamic-config/validate.ts";
import { stay } from "../fixtures/events.ts";

const dir = mkdtempSync(join(tmpdir(), "fundguard-detect-config-"));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
// A readmission 10 days after discharge at the same hospital.
const settlements = file(
  "s.ndjson",
  `${[
    stay("2025-03-01", "2025-03-05", { settlement_id: "S1" }),
    stay("2025-03-15", "2025-03-18", { settlement_id: "S2" }),
  ]
    .map((s) => JSON.stringify(s))
    .join("\n")}\n`,
);
const readmissions = async (configs?: Record<string, unknown>) => {
  const { summary } = await runDetect({ settlements, configs }, () => {});
  return summary.byRule["frequent_admission/readmission"];
};

describe("detect --config", () => {
  it("runs the detectors with the file's configs, the others on their defaults", async () => {
    expect(await readmissions()).toBe(1);
    const path = file("c.json", JSON.stringify({ frequent_admission: { readmissionMaxDays: 5 } }));
    const configs = effectiveConfigs(readConfigFile(path));
    expect(configs).toEqual({
      frequent_admission: { readmissionMaxDays: 5, highFrequencyStays: 4, highFrequencyWindowDays: 180 },
    });
    expect(await readmissions(configs)).toBe(0);
  });

  it("refuses an unknown detector, an unknown key and a file that is not an object", () => {
    expect(() => effectiveConfigs({ nope: {} })).toThrow(/unknown detector "nope"; known: /);
    expect(() => effectiveConfigs({ frequent_admission: { readmisionMaxDays: 5 } })).toThrow(
      /invalid config for frequent_admission/,
    );
    expect(() => readConfigFile(file("bad.json", "[1]"))).toThrow(/bad\.json: expected a JSON object/);
    expect(() => readConfigFile(file("broken.json", "{"))).toThrow(/broken\.json: /);
  });

  it("lists every detector and rule in the summary, zeros included", async () => {
    const { summary } = await runDetect({ settlements }, () => {});
    expect(Object.keys(summary.byDetector).sort()).toEqual(DETECTORS.map((d) => d.id).sort());
    const every = DETECTORS.flatMap((d) => Object.keys(d.rules).map((r) => `${d.id}/${r}`)).sort();
    expect(Object.keys(summary.byRule).sort()).toEqual(every);
    expect(summary.byDetector.deceased_activity).toBe(0);
    const text = formatSummary(summary);
    for (const rule of every) expect(text).toContain(rule);
    expect(text).toMatch(/deceased_activity\/deceased_activity\s+0\n/);
  });
});
