// Dynamic detector configuration on the real broker: `config set` validates with the detector's
// schema, a running worker applies a change mid-stream without a restart (and ignores invalid
// records), and every suspect row carries the hash of the config that produced it.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { DETECTORS, loadCatalogs } from "../../detectors/index.ts";
import type { Suspect } from "../../schemas/index.ts";
import { runDetect } from "../../services/cli/detect.ts";
import { applyConfigRecord } from "../../services/dynamic-config/apply.ts";
import type { EffectiveConfig, HistoryEntry } from "../../services/dynamic-config/commands.ts";
import { configTopicName } from "../../services/dynamic-config/topic.ts";
import { defaultConfig } from "../../services/dynamic-config/validate.ts";
import { activate, type Change, Engine } from "../../services/engine/engine.ts";
import { generate } from "../../services/generate/generate.ts";
import { mergedEvents } from "../../services/ingest/ndjson-source.ts";
import { createLogger } from "../../services/log.ts";
import { chdbConfig, openStore } from "../../services/store/index.ts";
import { cli, committed, killStrays, pipelineEnv, replay, spawnCli, tempDir, waitFor } from "./harness.ts";

type Files = { settlements: string; deaths: string };
let first: Files;
let second: Files;
let full: Files;

beforeAll(async () => {
  const g = await generate({ outDir: tempDir("dyncfg"), settlements: 20_000, seed: 5, schemeRate: 0.05 });
  full = g.files;
  const lines = readFileSync(full.settlements, "utf8").split("\n").filter(Boolean);
  const dir = tempDir("dyncfg-halves");
  const write = (name: string, rows: string[]) => {
    const path = join(dir, name);
    writeFileSync(path, rows.map((r) => `${r}\n`).join(""));
    return path;
  };
  const mid = Math.floor(lines.length / 2);
  first = { settlements: write("first.ndjson", lines.slice(0, mid)), deaths: write("none.ndjson", []) };
  second = { settlements: write("second.ndjson", lines.slice(mid)), deaths: full.deaths };
});

afterEach(killStrays);

const logLines = (text: string) =>
  text
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** What the stream should hold: first half on the defaults, then frequent_admission on `config`. */
async function simulate(config: unknown): Promise<Map<string, Change>> {
  const active = activate(DETECTORS, loadCatalogs());
  const engine = new Engine({ detectors: active });
  const last = new Map<string, Change>();
  const feed = async (f: Files) => {
    for await (const { event } of mergedEvents(f.settlements, f.deaths, () => undefined)) {
      for (const c of engine.process(event)) last.set(c.suspect.suspect_id, c);
    }
  };
  await feed(first);
  const record = { offset: "0", at: "", detector: "frequent_admission", value: config, headers: {} };
  expect(applyConfigRecord(active, record, createLogger("test", "silent"))).toBe("applied");
  await feed(second);
  return new Map([...last].filter(([, c]) => c.op === "upsert"));
}

describe("dynamic detector config", () => {
  it("config set rejects what the detector's schema rejects, and publishes nothing", async () => {
    const env = pipelineEnv("dyncfg-invalid");
    const typo = await spawnCli(
      ["config", "set", "frequent_admission", "--json", '{"readmisionMaxDays":5}'],
      env,
    ).result;
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain("invalid config for frequent_admission");
    expect(typo.stderr).toContain('Unrecognized key: "readmisionMaxDays"');
    const negative = await spawnCli(
      ["config", "set", "frequent_admission", "--json", '{"readmissionMaxDays":-3}'],
      env,
    ).result;
    expect(negative.code).toBe(2);
    expect(negative.stderr).toMatch(/readmissionMaxDays/);
    const notJson = await spawnCli(
      ["config", "set", "frequent_admission", "--json", "{readmissionMaxDays:5}"],
      env,
    ).result;
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toContain("--json is not valid JSON");
    const unknown = await spawnCli(["config", "set", "nope", "--json", "{}"], env).result;
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown detector "nope"');
    const history = JSON.parse(
      (await cli(["config", "history", "frequent_admission", "--json"], env)).stdout,
    );
    expect(history).toEqual([]);
  });

  it("a running worker applies a change mid-stream; suspects before and after carry the right hashes", async () => {
    const env = pipelineEnv("dyncfg", { FUNDGUARD_COMMIT_INTERVAL_MS: "200" });
    const kafka = new Kafka({ brokers: [env.KAFKA_BROKERS as string], logLevel: logLevel.NOTHING });
    const H15 = DETECTORS.map((d) => [d.id, defaultConfig(d).hash] as const);
    const fa15 = defaultConfig(
      DETECTORS.find((d) => d.id === "frequent_admission") as (typeof DETECTORS)[number],
    ).hash;

    const half = await replay(env, first);
    // --output topic: changes go to suspects.v1 with the config hash header, and the sink stores them.
    const worker = spawnCli(["worker", "--output", "topic"], { ...env, LOG_LEVEL: "info" });
    await waitFor(async () => (await committed(env)) >= half, "the worker through the first half");
    const loaded = logLines(worker.stdoutAndErr()).find((l) => l.msg === "detector config loaded");
    expect(loaded?.config_hashes).toEqual(Object.fromEntries(H15));

    const set = JSON.parse(
      (await cli(["config", "set", "frequent_admission", "--json", '{"readmissionMaxDays":5}'], env)).stdout,
    ) as { config_hash: string; config: unknown; topic: string };
    const fa5 = set.config_hash;
    expect(fa5).not.toBe(fa15);
    expect(set.topic).toBe(configTopicName(env.FUNDGUARD_TOPIC_PREFIX));
    await waitFor(
      () =>
        logLines(worker.stdoutAndErr()).some(
          (l) => l.msg === "detector config applied" && l.config_hash === fa5,
        ),
      "the worker applying the new config",
    );

    // Records written around the CLI: a worker logs and ignores them, keeping the last valid config.
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic: set.topic,
      messages: [
        { key: "frequent_admission", value: '{"readmissionMaxDays":"soon"}' },
        { key: "frequent_admission", value: "not json" },
      ],
    });
    await producer.disconnect();
    await waitFor(
      () =>
        logLines(worker.stdoutAndErr()).filter((l) => l.msg === "invalid detector config record ignored")
          .length >= 2,
      "the worker ignoring the invalid records",
    );
    const ignored = logLines(worker.stdoutAndErr()).filter(
      (l) => l.msg === "invalid detector config record ignored",
    );
    expect(ignored.map((l) => l.detector)).toEqual(["frequent_admission", "frequent_admission"]);
    expect(String(ignored[0]?.reason)).toContain("readmissionMaxDays");
    expect(String(ignored[1]?.reason)).toContain("not JSON");

    const total = half + (await replay(env, second));
    await waitFor(async () => (await committed(env)) >= total, "the worker through the second half");
    worker.kill("SIGTERM");
    const w = await worker.result;
    expect(w.code, w.stderr).toBe(0);
    expect(
      logLines(w.stderr)
        .filter((l) => l.msg === "detector config applied")
        .map((l) => l.config_hash),
    ).toEqual([fa5]);

    await cli(["sink", "--until-caught-up"], env);
    const store = await openStore(chdbConfig(env.FUNDGUARD_DATA_DIR as string));
    type Row = { suspect_id: string; detector: string; config_hash: string; evidence: string };
    let rows: Row[];
    try {
      rows = await store.query<Row>(
        `SELECT suspect_id, detector, config_hash, evidence FROM suspects FINAL
           WHERE run_id = 'live' AND status = 'active'
           SETTINGS optimize_move_to_prewhere_if_final = 0, optimize_move_to_prewhere = 0`,
      );
    } finally {
      await store.close();
    }

    // Detectors whose config did not change: default hashes, and exactly what detect finds.
    const detected = (await runDetect(full, () => undefined)).suspects;
    const others = (list: { detector: string; suspect_id: string }[]) =>
      list
        .filter((s) => s.detector !== "frequent_admission")
        .map((s) => `${s.detector}:${s.suspect_id}`)
        .sort();
    expect(others(rows)).toEqual(others(detected));
    for (const r of rows.filter((x) => x.detector !== "frequent_admission")) {
      expect(r.config_hash).toBe(Object.fromEntries(H15)[r.detector]);
    }

    // frequent_admission: findings from before the change keep the old hash (and the old limit
    // in their evidence) until an event re-evaluates them; everything decided after has the new one.
    const fa = rows.filter((r) => r.detector === "frequent_admission");
    const expected = await simulate({ readmissionMaxDays: 5 });
    const view = (id: string, hash: string | undefined, evidence: unknown) =>
      `${id} ${hash} ${JSON.stringify(evidence)}`;
    expect(fa.map((r) => view(r.suspect_id, r.config_hash, JSON.parse(r.evidence))).sort()).toEqual(
      [...expected.values()]
        .filter((c) => c.suspect.detector === "frequent_admission")
        .map((c) => view(c.suspect.suspect_id, c.configHash, c.suspect.evidence))
        .sort(),
    );
    const byHash = (h: string) => fa.filter((r) => r.config_hash === h);
    expect(byHash(fa15).length).toBeGreaterThan(0);
    expect(byHash(fa5).length).toBeGreaterThan(0);
    expect(byHash(fa15).length + byHash(fa5).length).toBe(fa.length);
    for (const r of fa) {
      const e = JSON.parse(r.evidence) as { max_days?: number };
      if (e.max_days !== undefined) expect(r.config_hash).toBe(e.max_days === 5 ? fa5 : fa15);
    }
    // An old finding that the new limit would not make: kept, with the old hash.
    expect(
      byHash(fa15).some(
        (r) => ((JSON.parse(r.evidence) as Suspect["evidence"]).days_since_previous_discharge as number) > 5,
      ),
    ).toBe(true);

    const get = JSON.parse(
      (await cli(["config", "get", "frequent_admission"], env)).stdout,
    ) as EffectiveConfig;
    expect(get).toMatchObject({
      config: { readmissionMaxDays: 5, highFrequencyStays: 4, highFrequencyWindowDays: 180 },
      config_hash: fa5,
      source: "topic",
      ignored_records: 2,
    });
    const history = JSON.parse(
      (await cli(["config", "history", "frequent_admission", "--json"], env)).stdout,
    ) as HistoryEntry[];
    expect(history.map((h) => [h.value, h.config_hash])).toEqual([
      [{ readmissionMaxDays: 5 }, fa5],
      [{ readmissionMaxDays: "soon" }, null],
      [null, null],
    ]);
    expect(history[2]?.error).toContain("not JSON");

    // A worker started now loads the topic before its first event.
    const restarted = await cli(["worker", "--until-caught-up", "--output", "topic"], {
      ...env,
      LOG_LEVEL: "info",
    });
    const again = logLines(restarted.stderr).find((l) => l.msg === "detector config loaded");
    expect((again?.config_hashes as Record<string, string> | undefined)?.frequent_admission).toBe(fa5);
  });
});
