import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type CpuProfile, mainThreadProfile, summarizeProfile, threadProfiles } from "../bench/profile.ts";

const frame = (functionName: string, url = "", lineNumber = -1) => ({ functionName, url, lineNumber });

// (root) ─┬─ (idle)
//         ├─ (garbage collector)
//         └─ run (services/worker/run.ts:10) ─┬─ decode (node_modules/kafkajs/src/decoder.js:5)
//                                             └─ check (node_modules/zod/v4/core.js:3) ── (anonymous) (detectors/x.ts:1)
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame("(root)"), children: [2, 3, 4] },
    { id: 2, callFrame: frame("(idle)") },
    { id: 3, callFrame: frame("(garbage collector)") },
    { id: 4, callFrame: frame("run", "file:///w/services/worker/run.ts", 9), children: [5, 6] },
    { id: 5, callFrame: frame("decode", "file:///w/node_modules/kafkajs/src/decoder.js", 4) },
    { id: 6, callFrame: frame("check", "file:///w/node_modules/zod/v4/core.js", 2), children: [7] },
    { id: 7, callFrame: frame("", "file:///w/detectors/x.ts", 0) },
  ],
  startTime: 0,
  endTime: 10_000,
  // Each sample lasts until the next one: 2, 2, 1, 1, 2 ms; the last one the mean, 10 ms / 6.
  samples: [2, 5, 5, 7, 3, 2],
  timeDeltas: [0, 2000, 2000, 1000, 1000, 2000],
};

describe("summarizeProfile", () => {
  const s = summarizeProfile(profile, {
    groups: {
      kafkajs: /\/node_modules\/kafkajs\//,
      zod: /\/node_modules\/zod\//,
      detectors: /\/detectors\//,
    },
  });
  const total = 8000 + 10_000 / 6;

  it("sums self time per function, V8's own entries included, largest first", () => {
    expect(s.samples).toBe(6);
    expect(s.totalMs).toBe(Math.round(total / 1000));
    expect(s.top.map((e) => [e.function, e.at, e.selfMs])).toEqual([
      ["(idle)", "", Math.round((2000 + 10_000 / 6) / 100) / 10],
      ["decode", "node_modules/kafkajs/src/decoder.js:5", 3],
      ["(garbage collector)", "", 2],
      ["(anonymous)", "detectors/x.ts:1", 1],
    ]);
    expect(s.top[0]?.share).toBeCloseTo((2000 + 10_000 / 6) / total, 3);
    expect(s.runtime["(garbage collector)"]).toBeCloseTo(2000 / total, 3);
    expect(s.runtime["(program)"]).toBe(0);
  });

  it("gives each group the share of samples with one of its frames anywhere on the stack", () => {
    expect(s.groups.kafkajs).toBeCloseTo(3000 / total, 3);
    // The detector frame under zod counts for both.
    expect(s.groups.zod).toBeCloseTo(1000 / total, 3);
    expect(s.groups.detectors).toBeCloseTo(1000 / total, 3);
  });

  it("keeps only the top entries asked for", () => {
    expect(summarizeProfile(profile, { top: 2 }).top).toHaveLength(2);
  });

  it("rejects a sample naming a node the profile lacks", () => {
    expect(() => summarizeProfile({ ...profile, samples: [2, 99] })).toThrow(/node 99/);
  });
});

describe("mainThreadProfile", () => {
  it("picks thread 0's profile and refuses a directory without one", () => {
    const dir = mkdtempSync(join(tmpdir(), "fg-prof-"));
    expect(() => mainThreadProfile(dir)).toThrow(/found 0/);
    writeFileSync(join(dir, "CPU.20261202.160000.42.1.2.cpuprofile"), "{}");
    writeFileSync(join(dir, "CPU.20261202.160000.42.0.1.cpuprofile"), JSON.stringify(profile));
    const main = mainThreadProfile(dir);
    expect(main.file).toMatch(/\.42\.0\.1\.cpuprofile$/);
    expect(main.profile.samples).toEqual(profile.samples);
    writeFileSync(join(dir, "CPU.20261202.160000.42.1.2.cpuprofile"), JSON.stringify(profile));
    expect(threadProfiles(dir).map((t) => t.file)).toEqual([
      join(dir, "CPU.20261202.160000.42.1.2.cpuprofile"),
    ]);
  });
});
