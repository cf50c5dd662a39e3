import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { DETECTORS } from "../../detectors/index.ts";
import { runDetect } from "../../services/cli/detect.ts";
import type { EngineEvent } from "../../services/engine/engine.ts";
import { PersonState } from "../../services/engine/person-state.ts";
import { generate } from "../../services/generate/generate.ts";
import { mergedEvents } from "../../services/ingest/ndjson-source.ts";
import { CHANGELOG_NOTE } from "../../services/pipeline/lane-core.ts";
import { LmdbPersonStore } from "../../services/state/lmdb-person-store.ts";
import { archiveTables, writeJsArchive } from "../fixtures/archive.ts";
import { canonical } from "../fixtures/run.ts";
import {
  cli,
  committed,
  exported,
  killStrays,
  pipelineEnv,
  replay,
  spawnCli,
  splitStream,
  tempDir,
  waitFor,
} from "./harness.ts";

type Files = { settlements: string; deaths: string };
let files: Files;
let expected: string[];

beforeAll(async () => {
  const g = await generate({ outDir: tempDir("pipeline"), settlements: 60_000, seed: 11, schemeRate: 0.05 });
  files = g.files;
  const { suspects } = await runDetect(files, () => undefined);
  expected = canonical(suspects);
  expect(new Set(suspects.map((s) => s.detector)).size).toBe(DETECTORS.length);
});

/** The sink (a no-op where workers wrote ClickHouse themselves), then export. */
async function sunk(env: Record<string, string>): Promise<string[]> {
  await cli(["sink", "--until-caught-up"], env);
  return exported(env);
}

afterEach(killStrays);

describe("Kafka pipeline", () => {
  it("replay → worker → ClickHouse exports exactly the suspects detect finds", async () => {
    const env = pipelineEnv("e2e");
    await replay(env, files);
    await cli(["worker", "--until-caught-up"], env);
    expect(await exported(env)).toEqual(expected);
    await expectArchiveOfFiles(env);
  });

  it("a worker killed with SIGKILL several times mid-stream ends with exactly the detect suspects", async () => {
    const env = pipelineEnv("crash", { FUNDGUARD_COMMIT_INTERVAL_MS: "100" });
    // The stream is produced in parts, one per incarnation, the last after the kills: the final worker
    // has work left however fast the killed ones were.
    const parts = splitStream(files, tempDir("crash-parts"), 4, 1) as Files[];
    let produced = 0;
    for (let kill = 0; kill < 3; kill++) {
      const part = await replay(env, parts[kill] as Files);
      produced += part;
      const before = await committed(env);
      const worker = spawnCli(["worker"], env);
      // Kill only after this incarnation has made (and committed) progress of its own.
      await waitFor(
        async () => (await committed(env)) >= before + part * 0.2,
        `progress before kill ${kill + 1}`,
      );
      worker.kill("SIGKILL");
      expect((await worker.result).signal).toBe("SIGKILL");
    }
    const total = produced + (await replay(env, parts[3] as Files));
    expect(await committed(env)).toBeLessThan(total);
    await cli(["worker", "--until-caught-up"], env);
    expect(await sunk(env)).toEqual(expected);
  });

  it("a worker with its state on disk resumes from its stores after a restart, reading no changelog before their checkpoints", async () => {
    const stateDir = tempDir("local-state");
    const env = pipelineEnv("local-state", {
      LOG_LEVEL: "info",
      FUNDGUARD_STATE_DIR: stateDir,
      FUNDGUARD_STATE_CACHE_PERSONS: "600",
    });
    const [first, second, third] = splitStream(files, tempDir("local-thirds"), 3, 1) as [Files, Files, Files];
    await replay(env, first);
    const a = await cli(["worker", "--until-caught-up"], env);
    expect(restoresOf(a.stderr).flatMap((r) => r.resumed)).toEqual([]);
    await replay(env, second);
    const b = await cli(["worker", "--until-caught-up"], env);
    const resumed = restoresOf(b.stderr);
    expect(resumed.flatMap((r) => r.resumed).sort()).toEqual([0, 1, 2]);
    expect(resumed.reduce((n, r) => n + r.records, 0)).toBe(0);
    // What a crash can leave: partition 0's store a commit past the confirmation it last noted (the
    // changelog has that commit: it resumes, reading on from the noted end); partition 1's store a
    // commit the changelog never got (it is reopened empty and restored whole).
    const storeOf = (p: number) =>
      new LmdbPersonStore({
        path: join(stateDir, env.FUNDGUARD_GROUP as string, `p${p}`),
        cacheSize: 10,
        create: (id) => new PersonState(id),
      });
    const behind = storeOf(0);
    behind.note(CHANGELOG_NOTE, { seq: 0, end: "0", marker: { version: 0 }, atMs: Date.now() });
    await behind.close();
    const ahead = storeOf(1);
    const at = ahead.checkpoint() as { seq: number; watermark: number };
    ahead.commit({ ...at, seq: at.seq + 1, id: "a-commit-no-changelog-has" });
    await ahead.close();
    await replay(env, third);
    const c = restoresOf((await cli(["worker", "--until-caught-up"], env)).stderr);
    expect(c.flatMap((r) => r.resumed).sort()).toEqual([0, 2]);
    expect(c.flatMap((r) => r.ahead ?? [])).toEqual([1]);
    expect(c.reduce((n, r) => n + r.records, 0)).toBeGreaterThan(0);
    expect(await exported(env)).toEqual(expected);
  });

  it("two workers in one group, one killed: the survivor restores the partitions and the result is exact", async () => {
    const env = pipelineEnv("rebalance", { FUNDGUARD_COMMIT_INTERVAL_MS: "100" });
    const [first, second] = splitStream(files, tempDir("halves"), 2, 1) as [Files, Files];
    const half = await replay(env, first);
    // Two workers cannot share one embedded chdb: they write suspects.v1, and the sink writes ClickHouse.
    // A runs its engines inline on its main thread with their state in the heap, B in three lanes with
    // theirs on disk behind a small cache: where they run and keep state changes nothing.
    const a = spawnCli(["worker", "--output", "topic"], { ...env, FUNDGUARD_LANES: "0" });
    await waitFor(async () => (await committed(env)) >= half, "worker A through the first half");
    const b = spawnCli(["worker", "--output", "topic"], {
      ...env,
      FUNDGUARD_LANES: "3",
      LOG_LEVEL: "info",
      FUNDGUARD_STATE_DIR: tempDir("rebalance-state"),
      FUNDGUARD_STATE_CACHE_PERSONS: "300",
    });
    await waitFor(async () => restoresOf(b.stdoutAndErr()).length > 0, "worker B joining the group");
    a.kill("SIGKILL");
    const total = half + (await replay(env, second));
    await waitFor(async () => (await committed(env)) >= total, "worker B through the second half");
    b.kill("SIGTERM");
    const [ra, rb] = await Promise.all([a.result, b.result]);
    expect(ra.signal).toBe("SIGKILL");
    expect(rb.code, rb.stderr).toBe(0);
    // B took over partitions A had processed: it restored A's state from the changelog, not from the input.
    const restores = restoresOf(rb.stderr);
    expect(restores.length).toBeGreaterThanOrEqual(1);
    expect(restores.reduce((n, r) => n + r.records, 0)).toBeGreaterThan(0);
    expect(rb.stderr).toMatch(/"lanes":3,"threads":true,.*"msg":"lanes started"/);
    expect(await sunk(env)).toEqual(expected);
    await expectArchiveOfFiles(env);
  });
});

/** The archive written from the Kafka values (worker or sink) is the JS row path's archive of the files. */
async function expectArchiveOfFiles(env: Record<string, string>): Promise<void> {
  const events: EngineEvent[] = [];
  for await (const e of mergedEvents(files.settlements, files.deaths, () => undefined)) events.push(e.event);
  const js = await archiveTables(join(tempDir("pipeline-js"), "data"), (s) => writeJsArchive(s, events));
  expect(js.settlements.length).toBeGreaterThan(60_000);
  expect(await archiveTables(env.FUNDGUARD_DATA_DIR as string)).toEqual(js);
}

function restoresOf(log: string): { records: number; resumed: number[]; ahead?: number[] }[] {
  return log
    .split("\n")
    .filter((l) => l.includes("state restored from changelog"))
    .map((l) => JSON.parse(l) as { records: number; resumed: number[]; ahead?: number[] });
}
