// `fundguard serve` with Kafka as the distributed mode's front door, on the real broker, registry
// and chdb: /ingest validates each record, answers with the rejected lines, and puts exactly the
// accepted ones on the input topics (Avro with the registry's ids, keyed by person) before it
// answers; bad bodies get a 4xx; /check follows detector-config.v1 as the workers do.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DETECTORS, loadCatalogs } from "../../detectors/index.ts";
import type { Suspect } from "../../schemas/index.ts";
import { buildServer, hashToken, usersFromList } from "../../services/api/index.ts";
import type { CheckAnswer } from "../../services/engine/check.ts";
import { activate } from "../../services/engine/engine.ts";
import { AvroSerde } from "../../services/kafka/serde.ts";
import { topicNames } from "../../services/kafka/topics.ts";
import { openTransport } from "../../services/kafka/transport.ts";
import { createLogger } from "../../services/log.ts";
import { chdbConfig, openStore } from "../../services/store/index.ts";
import { death, line, settlement, stay } from "../fixtures/events.ts";
import {
  cli,
  freePort,
  killStrays,
  pipelineEnv,
  type RunningCli,
  sleep,
  spawnCli,
  tempDir,
} from "./harness.ts";

const ADMIN = "fg_admin_ingest_test_token_0001";
const LOADER = "fg_loader_ingest_test_token_002";
let env: Record<string, string>;
let base: string;
let serve: RunningCli;

beforeAll(async () => {
  const dir = tempDir("api-ingest");
  const users = join(dir, "users.json");
  writeFileSync(
    users,
    JSON.stringify({
      version: 1,
      users: [
        { name: "admin", role: "admin", tokens: [{ sha256: hashToken(ADMIN) }] },
        { name: "loader", role: "ingest", tokens: [{ sha256: hashToken(LOADER) }] },
      ],
    }),
  );
  const port = await freePort();
  env = pipelineEnv("api-ingest", {
    FUNDGUARD_USERS_FILE: users,
    PORT: String(port),
    FUNDGUARD_MAX_INGEST_BYTES: "200000",
  });
  base = `http://127.0.0.1:${port}`;
  serve = spawnCli(["serve"], env);
  for (let i = 0; ; i++) {
    if (
      await fetch(`${base}/healthz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
    if (i > 600 || serve.exitCode !== null) throw new Error(`serve did not start:\n${serve.stdoutAndErr()}`);
    await sleep(100);
  }
});

afterAll(() => {
  serve?.kill("SIGTERM");
  killStrays();
});

const post = (path: string, body: string, type: string, token = LOADER) =>
  fetch(`${base}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": type },
    body,
  });

/** Every record of an input topic, decoded as workers decode it. */
async function topicRecords(kind: "settlement" | "death") {
  const topics = topicNames(env.FUNDGUARD_TOPIC_PREFIX);
  const topic = kind === "settlement" ? topics.settlements : topics.deaths;
  const log = createLogger("api-ingest-test", "silent");
  const transport = await openTransport("platformatic", {
    brokers: [env.KAFKA_BROKERS as string],
    clientId: "api-ingest-test",
    log,
  });
  const admin = transport.admin();
  const partitions = await admin.partitions(topic);
  await admin.close();
  const serde = new AvroSerde(env.SCHEMA_REGISTRY_URL as string, topics);
  const out: { key: string; value: { person_id: string } & Record<string, unknown> }[] = [];
  const ranges = new Map(Array.from({ length: partitions }, (_, p) => [p, { from: 0n, to: "end" as const }]));
  for await (const b of transport.readRange({ topic, ranges }))
    for (const r of b.records) {
      const d = await serde.decode(kind, r.value);
      if (!d.ok) throw new Error(d.reason);
      out.push({ key: r.key?.toString() ?? "", value: d.value });
    }
  return out;
}

describe("POST /api/v1/ingest over Kafka", () => {
  it("accepts the valid NDJSON lines, names the rejected ones, and has the accepted on the topic when it answers", async () => {
    const a = settlement({ person_id: "P-ING-A" });
    const b = settlement({ person_id: "P-ING-B" });
    const body = [
      JSON.stringify(a),
      "{not json",
      JSON.stringify({ ...b, gender: "X" }),
      "",
      JSON.stringify(b),
    ].join("\n");
    const r = await post("/api/v1/ingest/settlements", body, "application/x-ndjson");
    expect(r.status).toBe(200);
    const answer = (await r.json()) as { accepted: number; rejected: { line: number; reason: string }[] };
    expect(answer.accepted).toBe(2);
    expect(answer.rejected.map((x) => x.line)).toEqual([2, 3]);
    expect(answer.rejected[0]?.reason).toMatch(/invalid JSON/);
    expect(answer.rejected[1]?.reason).toMatch(/contract violation: gender/);
    const records = await topicRecords("settlement");
    expect(records.map((x) => [x.key, x.value.settlement_id]).sort()).toEqual([
      [a.person_id, a.settlement_id],
      [b.person_id, b.settlement_id],
    ]);
    expect(records.find((x) => x.key === a.person_id)?.value).toEqual(a);
  });

  it("takes a JSON array of death records; the line is the position in the array", async () => {
    const d = death("2025-02-01", { person_id: "P-ING-A" });
    const r = await post(
      "/api/v1/ingest/deaths",
      JSON.stringify([{ ...d, source: "RUMOUR" }, d]),
      "application/json",
    );
    expect(await r.json()).toMatchObject({ accepted: 1, rejected: [{ line: 1 }] });
    expect((await topicRecords("death")).map((x) => x.value)).toEqual([d]);
  });

  it("answers a bad body with a clear 4xx and writes nothing", async () => {
    const path = "/api/v1/ingest/settlements";
    expect((await post(path, "{}", "application/json")).status).toBe(400);
    expect((await post(path, "[{", "application/json")).status).toBe(400);
    expect((await post(path, "x", "text/plain")).status).toBe(415);
    const big = Array.from({ length: 300 }, () => JSON.stringify(settlement({ person_id: "P-BIG" }))).join(
      "\n",
    );
    expect(big.length).toBeGreaterThan(200_000);
    expect((await post(path, big, "application/x-ndjson")).status).toBe(413);
    expect((await post(path, "[]", "application/json", "fg_unknown_token_ingest_test")).status).toBe(401);
    expect((await topicRecords("settlement")).map((x) => x.key)).not.toContain("P-BIG");
  });
});

describe("POST /api/v1/check in serve", () => {
  it("follows detector-config.v1 as the workers do", async () => {
    const s = settlement({
      person_id: "P-CFG",
      items: [line({ item_code: "330100001000000", unit_price_fen: 1_000_000 })],
      fund_paid_fen: 0,
    });
    const decision = async () => {
      const r = await post("/api/v1/check", JSON.stringify({ settlement: s }), "application/json", ADMIN);
      return ((await r.json()) as { decision: string }).decision;
    };
    expect(await decision()).toBe("PASS");
    await cli(["config", "set", "high_out_of_pocket", "--json", '{"thresholdsYuan":[5000]}'], env);
    for (let i = 0; (await decision()) !== "REMIND"; i++) {
      if (i > 100) throw new Error("the check never saw the new config");
      await sleep(100);
    }
  });
});

describe("role his", () => {
  it("`users add --role his` issues a token that checks and reads no suspects", async () => {
    const r = await cli(["users", "add", "--name", "his-lu-an", "--role", "his", "--label", "HIS"], env);
    const token = r.stdout.trim();
    const body = JSON.stringify({ settlement: settlement({ person_id: "P-HIS" }) });
    const checkStatus = async () => (await post("/api/v1/check", body, "application/json", token)).status;
    // The server picks up the users file when it changes.
    for (let i = 0; (await checkStatus()) !== 200; i++) {
      if (i > 100) throw new Error("the new his token never worked");
      await sleep(100);
    }
    const suspects = await fetch(`${base}/api/v1/suspects`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(suspects.status).toBe(403);
    expect((await post("/api/v1/ingest/settlements", "[]", "application/json", token)).status).toBe(403);
  });
});

describe("the distributed path", () => {
  it("a check over the worker's archive gets the finding that ingesting over HTTP, through Kafka and the worker, produces", async () => {
    // The worker writes a ClickHouse of its own (one chdb per process); the check reads it in between.
    const workerEnv = { ...env, FUNDGUARD_DATA_DIR: join(tempDir("api-ingest-worker"), "data") };
    const ndjson = (...xs: object[]) => xs.map((x) => JSON.stringify(x)).join("\n");
    const first = stay("2025-09-01", "2025-09-04", { person_id: "P-KAFKA" });
    const again = stay("2025-09-10", "2025-09-12", { person_id: "P-KAFKA" });
    expect(
      await (await post("/api/v1/ingest/settlements", ndjson(first), "application/x-ndjson")).json(),
    ).toEqual({
      accepted: 1,
      rejected: [],
    });
    await cli(["worker", "--until-caught-up"], workerEnv);

    const store = await openStore(chdbConfig(workerEnv.FUNDGUARD_DATA_DIR));
    const suspects = async () => {
      const out: Suspect[] = [];
      for await (const x of store.exportSuspects()) if (x.person_id === "P-KAFKA") out.push(x);
      return out;
    };
    let answer: CheckAnswer;
    try {
      const app = await buildServer({
        store,
        users: usersFromList([{ name: "his", role: "his", token: "fg_his_distributed_test_token_1" }]),
        log: createLogger("api-ingest-test", "silent"),
        active: activate(DETECTORS, loadCatalogs()),
      });
      const r = await app.inject({
        method: "POST",
        url: "/api/v1/check",
        headers: { authorization: "Bearer fg_his_distributed_test_token_1" },
        payload: { settlement: again },
      });
      answer = r.json() as CheckAnswer;
      await app.close();
      expect(await suspects()).toEqual([]);
    } finally {
      await store.close();
    }
    expect(answer.decision).toBe("WARN");
    expect(answer.state_as_of).toBe(new Date(first.settled_at).toISOString());

    await post("/api/v1/ingest/settlements", ndjson(again), "application/x-ndjson");
    await cli(["worker", "--until-caught-up"], workerEnv);
    const after = await openStore(chdbConfig(workerEnv.FUNDGUARD_DATA_DIR));
    try {
      const produced = [];
      for await (const x of after.exportSuspects()) if (x.person_id === "P-KAFKA") produced.push(x);
      expect(
        produced.map((x) => ({
          detector: x.detector,
          rule: x.rule,
          severity: x.severity,
          settlement_ids: x.settlement_ids,
          amount_at_risk_fen: x.amount_at_risk_fen,
          evidence: x.evidence,
        })),
      ).toEqual(answer.findings.map(({ title, title_zh, ...f }) => f));
    } finally {
      await after.close();
    }
  });
});
