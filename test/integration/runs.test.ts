// Runs through the real CLI: files into a run, a time range of the real topics, diff, drop,
// and resume after SIGKILL and SIGINT. ClickHouse is chdb in each test's own data directory.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { DETECTORS } from "../../detectors/index.ts";
import type { Suspect } from "../../schemas/index.ts";
import { runDetect } from "../../services/cli/detect.ts";
import { generate } from "../../services/generate/generate.ts";
import { topicNames } from "../../services/kafka/topics.ts";
import { checkpointDir } from "../../services/runs/checkpoint.ts";
import type { RunDiff } from "../../services/runs/diff.ts";
import { chooseDetectors } from "../../services/runs/spec.ts";
import type { RunRecord } from "../../services/runs/table.ts";
import { chdbConfig, openStore } from "../../services/store/index.ts";
import { canonical } from "../fixtures/run.ts";
import { cli, killStrays, pipelineEnv, sleep, spawnCli, splitStream, tempDir } from "./harness.ts";

type Files = { settlements: string; deaths: string };

let files: Files;
let detected: Suspect[];
let expected: string[];
let totalEvents: number;

beforeAll(async () => {
  const g = await generate({ outDir: tempDir("runs"), settlements: 20_000, seed: 7, schemeRate: 0.05 });
  files = g.files;
  const r = await runDetect(files, () => undefined);
  detected = r.suspects;
  expected = canonical(r.suspects);
  totalEvents = r.summary.events;
  expect(detected.filter((s) => s.rule === "readmission").length).toBeGreaterThan(5);
});

afterEach(killStrays);

async function exportRun(env: Record<string, string>, run: string): Promise<string[]> {
  const out = (await cli(["export", "--run", run], env)).stdout;
  return canonical(
    out
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Suspect),
  );
}

async function runsList(env: Record<string, string>): Promise<RunRecord[]> {
  return JSON.parse((await cli(["runs", "list", "--json"], env)).stdout) as RunRecord[];
}

/** Commit lines in a run's checkpoint log. */
function commits(env: Record<string, string>, run: string): number {
  const log = join(checkpointDir(env.FUNDGUARD_DATA_DIR as string, run), "state.log");
  if (!existsSync(log)) return 0;
  return readFileSync(log, "utf8")
    .split("\n")
    .filter((l) => l.startsWith("C\t")).length;
}

async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 120_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe("runs over files", () => {
  let env: Record<string, string>;
  beforeAll(async () => {
    env = pipelineEnv("runs-files");
    await cli(["replay", "--run", "base", "--settlements", files.settlements, "--deaths", files.deaths], env);
  });

  it("replay --run writes exactly the detect suspects under the run id and records the run", async () => {
    expect(await exportRun(env, "base")).toEqual(expected);
    expect(await exportRun(env, "live")).toEqual([]);
    const [base] = (await runsList(env)).filter((r) => r.name === "base");
    expect(base).toMatchObject({
      status: "done",
      source: { kind: "files", settlements: files.settlements, deaths: files.deaths },
      events: totalEvents,
      bad_events: 0,
      suspects: detected.length,
    });
    expect(base?.detectors.map((d) => `${d.id}@${d.version}`)).toEqual(
      DETECTORS.map((d) => `${d.id}@${d.version}`),
    );
    expect(base?.config_hash).toMatch(/^[0-9a-f]{12}$/);
    expect(Date.parse(base?.finished_at ?? "")).toBeGreaterThanOrEqual(Date.parse(base?.started_at ?? ""));
    // Checkpoints of a finished run are gone; the name cannot be reused without dropping it.
    expect(existsSync(checkpointDir(env.FUNDGUARD_DATA_DIR as string, "base"))).toBe(false);
    const again = await spawnCli(["replay", "--run", "base", "--settlements", files.settlements], env).result;
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("run base already exists (done); drop it first: fundguard runs drop base");
  });

  it("runs diff: readmissionMaxDays 15 → 5 removes exactly the readmissions with longer gaps", async () => {
    const config = join(tempDir("runs-config"), "fa5.json");
    writeFileSync(config, JSON.stringify({ frequent_admission: { readmissionMaxDays: 5 } }));
    const args = ["--detectors", "frequent_admission", "--config", config];
    await cli(
      ["replay", "--run", "fa5", ...args, "--settlements", files.settlements, "--deaths", files.deaths],
      env,
    );

    const readmissions = detected.filter((s) => s.rule === "readmission");
    const gap = (s: Suspect) =>
      (s.evidence as { days_since_previous_discharge: number }).days_since_previous_discharge;
    const longer = readmissions.filter((s) => gap(s) > 5);
    const fa = detected.filter((s) => s.detector === "frequent_admission");
    expect(longer.length).toBeGreaterThan(0);

    const d = JSON.parse(
      (await cli(["runs", "diff", "base", "fa5", "--json", "--examples", "1000"], env)).stdout,
    ) as RunDiff;
    const row = d.detectors.find((x) => x.detector === "frequent_admission");
    expect(row).toMatchObject({
      in_a: true,
      in_b: true,
      a: fa.length,
      b: fa.length - longer.length,
      added: 0,
      removed: longer.length,
      unchanged: fa.length - longer.length,
      // The readmissions that stay record the new limit in their evidence (max_days).
      changed: readmissions.length - longer.length,
    });
    expect(row?.examples.removed.map((e) => e.suspect_id).sort()).toEqual(
      longer.map((s) => s.suspect_id).sort(),
    );
    for (const other of d.detectors.filter((x) => x.detector !== "frequent_admission")) {
      expect(other).toMatchObject({ in_a: true, in_b: false, b: 0, added: 0, removed: other.a });
    }
    const table = (await cli(["runs", "diff", "base", "fa5"], env)).stdout;
    expect(table).toMatch(/frequent_admission\s+\d+\s+\d+\s+0\s+\d+/);
    expect(table).toContain("not run");

    const [fa5] = (await runsList(env)).filter((r) => r.name === "fa5");
    expect(fa5?.detectors.map((x) => x.id)).toEqual(["frequent_admission"]);
    expect(fa5?.detectors[0]?.config).toEqual({
      readmissionMaxDays: 5,
      highFrequencyStays: 4,
      highFrequencyWindowDays: 180,
    });
    expect(fa5?.config_hash).not.toBe((await runsList(env)).find((r) => r.name === "base")?.config_hash);

    // Every row records the hash of its detector's effective config.
    const store = await openStore(chdbConfig(env.FUNDGUARD_DATA_DIR as string));
    try {
      const hashes = await store.query<{ run_id: string; detector: string; config_hash: string }>(
        "SELECT DISTINCT run_id, detector, config_hash FROM suspects ORDER BY run_id, detector",
      );
      const chosen = (list: string | undefined, configs?: Record<string, unknown>) =>
        chooseDetectors(list, configs).map((x): [string, string] => [x.id, x.config_hash]);
      const base = new Map(chosen(undefined));
      expect(hashes.filter((h) => h.run_id === "base").map((h) => [h.detector, h.config_hash])).toEqual(
        [...base].filter(([id]) => detected.some((x) => x.detector === id)).sort(),
      );
      const [faHash] = chosen("frequent_admission", { frequent_admission: { readmissionMaxDays: 5 } });
      expect(hashes.filter((h) => h.run_id === "fa5").map((h) => [h.detector, h.config_hash])).toEqual([
        faHash,
      ]);
      expect(faHash?.[1]).not.toBe(base.get("frequent_admission"));
    } finally {
      await store.close();
    }

    await cli(["runs", "drop", "fa5"], env);
    expect((await runsList(env)).map((r) => r.name)).toEqual(["base"]);
    expect(await exportRun(env, "fa5")).toEqual([]);
    expect(await exportRun(env, "base")).toEqual(expected);
    const missing = await spawnCli(["runs", "diff", "base", "fa5"], env).result;
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("no run named fa5");
  });

  it("a run killed (SIGKILL) and interrupted (SIGINT) resumes to exactly the uninterrupted result", async () => {
    const env2 = pipelineEnv("runs-resume");
    const source = ["--settlements", files.settlements, "--deaths", files.deaths];
    const slow = ["--rate", "3000", "--checkpoint-interval", "0.5"];

    const first = spawnCli(["replay", "--run", "cut", ...source, ...slow], env2);
    await waitFor(() => commits(env2, "cut") >= 3, "checkpoints of the first attempt");
    first.kill("SIGKILL");
    expect((await first.result).signal).toBe("SIGKILL");
    const killed = (await runsList(env2)).find((r) => r.name === "cut");
    // The process died without writing its status: list reports it interrupted.
    expect(killed?.status).toBe("interrupted");
    expect(killed?.events).toBeGreaterThan(0);
    expect(killed?.events).toBeLessThan(totalEvents);

    const before = commits(env2, "cut");
    const second = spawnCli(["replay", "--run", "cut", "--resume", ...slow], env2);
    await waitFor(() => commits(env2, "cut") >= before + 3, "checkpoints of the resumed attempt");
    second.kill("SIGINT");
    const r2 = await second.result;
    expect(r2.code, r2.stderr).toBe(130);
    expect(r2.stderr).toContain("interrupted after");
    expect(r2.stderr).toContain("fundguard replay --run cut --resume");
    const interrupted = (await runsList(env2)).find((r) => r.name === "cut");
    expect(interrupted?.status).toBe("interrupted");
    expect(interrupted?.events).toBeGreaterThan(killed?.events ?? 0);
    expect(interrupted?.events).toBeLessThan(totalEvents);

    await cli(["replay", "--run", "cut", "--resume"], env2);
    expect(await exportRun(env2, "cut")).toEqual(expected);
    const done = (await runsList(env2)).find((r) => r.name === "cut");
    expect(done).toMatchObject({ status: "done", events: totalEvents, suspects: detected.length });
    expect(existsSync(checkpointDir(env2.FUNDGUARD_DATA_DIR as string, "cut"))).toBe(false);
  });
});

describe("runs over a time range of the topics", () => {
  it("reads only the range, in no group: the live group's committed offsets stay put, no run group is left", async () => {
    const env = pipelineEnv("runs-range");
    const [part1, part2, part3] = splitStream(files, tempDir("runs-thirds"), 3, 1) as [Files, Files, Files];
    const produce = (f: Files) => cli(["replay", "--settlements", f.settlements, "--deaths", f.deaths], env);
    await produce(part1);
    // The live workers' group has consumed the first part.
    await cli(["worker", "--until-caught-up"], env);
    await sleep(50);
    const from = new Date().toISOString();
    await sleep(50);
    await produce(part2);
    await sleep(50);
    const to = new Date().toISOString();
    await sleep(50);
    await produce(part3);

    const kafka = new Kafka({ brokers: [env.KAFKA_BROKERS as string], logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    try {
      const t = topicNames(env.FUNDGUARD_TOPIC_PREFIX);
      const liveOffsets = () =>
        admin.fetchOffsets({ groupId: env.FUNDGUARD_GROUP as string, topics: [t.settlements, t.deaths] });
      const committedBefore = await liveOffsets();
      expect(committedBefore.flatMap((x) => x.partitions).some((p) => Number(p.offset) > 0)).toBe(true);

      const r = await cli(["replay", "--run", "middle", "--from", from, "--to", to], env);
      expect(r.stderr).toMatch(/run middle: done/);

      expect(await liveOffsets()).toEqual(committedBefore);
      const runGroups = async () =>
        (await admin.listGroups()).groups
          .map((g) => g.groupId)
          .filter((g) => g.startsWith(`${env.FUNDGUARD_TOPIC_PREFIX}fundguard-run.`));
      expect(await runGroups()).toEqual([]);

      const middle = await runDetect(part2, () => undefined);
      expect(middle.suspects.length).toBeGreaterThan(0);
      expect(await exportRun(env, "middle")).toEqual(canonical(middle.suspects));
      const [row] = (await runsList(env)).filter((x) => x.name === "middle");
      expect(row).toMatchObject({
        status: "done",
        events: middle.summary.events,
        suspects: middle.suspects.length,
      });
      expect(row?.source).toMatchObject({ kind: "topics", from, to, topics: [t.settlements, t.deaths] });

      // The same range killed mid-way and resumed: seek to the checkpointed offsets, same result.
      const slow = spawnCli(
        [
          "replay",
          "--run",
          "middle2",
          "--from",
          from,
          "--to",
          to,
          "--rate",
          "2000",
          "--checkpoint-interval",
          "0.5",
        ],
        env,
      );
      await waitFor(() => commits(env, "middle2") >= 3, "checkpoints of the range run");
      slow.kill("SIGKILL");
      expect((await slow.result).signal).toBe("SIGKILL");
      // The range is read in no group: even a killed process leaves none behind.
      expect(await runGroups()).toEqual([]);
      await cli(["replay", "--run", "middle2", "--resume"], env);
      expect(await runGroups()).toEqual([]);
      expect(await exportRun(env, "middle2")).toEqual(canonical(middle.suspects));
      expect((await runsList(env)).find((x) => x.name === "middle2")).toMatchObject({
        status: "done",
        events: middle.summary.events,
      });
      expect(await liveOffsets()).toEqual(committedBefore);
    } finally {
      await admin.disconnect();
    }
  });
});
