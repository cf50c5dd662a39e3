// Outages mid-stream are waited out. The registry goes down behind a TCP proxy this test owns
// (the shared registry keeps running), and an id is served only after its messages were
// produced; the store fails for real (its settlements table directory made read-only: chdb
// raises the filesystem error). Each outage outlasts the 10 s session timeout, so only heartbeats
// keep the worker in its group. It says degraded on /healthz meanwhile, commits nothing past the
// failure, and ends with exactly detect's suspects, no dead letter.
import { chmodSync, chownSync, readFileSync, realpathSync, statSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { runDetect } from "../../services/cli/detect.ts";
import { generate } from "../../services/generate/generate.ts";
import type { HealthReport } from "../../services/health.ts";
import { parseEventLine } from "../../services/ingest/ndjson-source.ts";
import { validators } from "../../services/ingest/validate.ts";
import { sendAll } from "../../services/kafka/produce.ts";
import { AvroSerde } from "../../services/kafka/serde.ts";
import { topicNames } from "../../services/kafka/topics.ts";
import { kafkajsTransport } from "../../services/kafka/transport-kafkajs.ts";
import { createLogger } from "../../services/log.ts";
import { canonical } from "../fixtures/run.ts";
import {
  committed,
  endOffsetsOf,
  exported,
  freePort,
  killStrays,
  membersOf,
  metricTotal,
  pipelineEnv,
  type RunningCli,
  replay,
  type StreamFiles,
  sleep,
  spawnCli,
  splitStream,
  tempDir,
  waitFor,
} from "./harness.ts";
import { evolvedSettlementSchema, hardDeleteLatest, registerUnder } from "./registry.ts";

/** Longer than the worker's 10 s session timeout. */
const OUTAGE_MS = 12_000;
/** chmod does not hold for root: the worker then runs as nobody. */
const NOBODY = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined;

let parts: StreamFiles[];
let expected: string[];

beforeAll(async () => {
  const g = await generate({ outDir: tempDir("outage"), settlements: 20_000, seed: 23, schemeRate: 0.05 });
  expected = canonical((await runDetect(g.files, () => undefined)).suspects);
  expect(expected.length).toBeGreaterThan(50);
  parts = splitStream(g.files, tempDir("outage-parts"), 3, 0);
});

afterEach(killStrays);

/** Forwards TCP to `target` while open; closed, connections are refused and live ones reset. */
class TcpProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async open(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.target);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("error", () => undefined);
        s.on("close", () => {
          this.sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(this.port, "127.0.0.1", resolve));
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const s of this.sockets) s.resetAndDestroy();
    await new Promise((resolve) => server.close(resolve));
  }
}

async function health(port: number): Promise<{ status: number; report: HealthReport }> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`);
  return { status: res.status, report: (await res.json()) as HealthReport };
}

const metricsOf = (port: number) => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());

/** Waits for /healthz to say 503, degraded on `dependency`; returns that outage's reason. */
async function degradedOn(port: number, dependency: string): Promise<string> {
  let reason = "";
  await waitFor(async () => {
    const h = await health(port);
    const outage =
      h.report.status === "degraded" ? h.report.degraded.find((d) => d.dependency === dependency) : undefined;
    reason = outage?.reason ?? "";
    return h.status === 503 && outage !== undefined;
  }, `/healthz degraded on ${dependency}`);
  return reason;
}

/** Produces a settlements file in an upgraded producer's schema, keyed and partitioned as replay does. */
async function produceWith(
  env: Record<string, string>,
  topic: string,
  file: string,
  writer: ReturnType<typeof evolvedSettlementSchema>,
  id: number,
): Promise<number> {
  const messages = readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const parsed = parseEventLine("settlement", line, validators());
      if (!parsed?.ok || parsed.value.kind !== "settlement") throw new Error(`bad fixture line: ${line}`);
      return { key: parsed.value.value.person_id, value: writer.encode(id, parsed.value.value) };
    });
  const producer = kafkajsTransport({
    brokers: [env.KAFKA_BROKERS as string],
    clientId: "outage-test",
    log: createLogger("outage-test", "silent"),
  }).producer();
  try {
    await sendAll(producer, [{ topic, messages }]);
  } finally {
    await producer.close();
  }
  return messages.length;
}

/** The store's suspects and settlements table directories made read-only: chdb's inserts then fail. */
function readOnlyTables(dataDir: string): { restore: () => void } {
  const dirs = ["settlements", "suspects"].map((t) => realpathSync(join(dataDir, "data/default", t)));
  const modes = dirs.map((d) => statSync(d).mode & 0o777);
  for (const d of dirs) chmodSync(d, 0o555);
  return {
    restore: () => {
      for (const [i, d] of dirs.entries()) chmodSync(d, modes[i] as number);
    },
  };
}

/** Environment of a pipeline whose chdb directory the store process (as nobody, under root) owns. */
function storeEnv(label: string, extra: Record<string, string>): Record<string, string> {
  const env = pipelineEnv(label, {
    FUNDGUARD_COMMIT_INTERVAL_MS: "100",
    FUNDGUARD_BACKOFF_MAX_MS: "1000",
    ...extra,
  });
  if (NOBODY) chownSync(dirname(env.FUNDGUARD_DATA_DIR as string), NOBODY.uid, NOBODY.gid);
  return env;
}

async function stopCleanly(worker: RunningCli): Promise<string> {
  worker.kill("SIGTERM");
  const r = await worker.result;
  expect(r.code, r.stderr).toBe(0);
  return r.stderr;
}

const assignments = (log: string) => log.split("\n").filter((l) => l.includes('"msg":"assigned"')).length;

describe("outages mid-stream", () => {
  it("the registry down, then an id served only after its messages: waited out in the group, exact result", async () => {
    const registryUrl = inject("schemaRegistryUrl");
    const target = new URL(registryUrl);
    const proxy = new TcpProxy({ host: target.hostname, port: Number(target.port) });
    await proxy.open();
    const port = await freePort();
    const env = pipelineEnv("outage-registry", {
      FUNDGUARD_COMMIT_INTERVAL_MS: "100",
      FUNDGUARD_METRICS_PORT: String(port),
      FUNDGUARD_BACKOFF_MAX_MS: "1000",
      FUNDGUARD_SCHEMA_WAIT_MS: "120000",
      LOG_LEVEL: "info",
    });
    const topics = topicNames(env.FUNDGUARD_TOPIC_PREFIX);
    const subject = AvroSerde.subject(topics.settlements);
    const register = registerUnder(subject);
    const [p1, p2, p3] = parts as [StreamFiles, StreamFiles, StreamFiles];

    try {
      const first = await replay(env, p1);
      const worker = spawnCli(["worker"], {
        ...env,
        SCHEMA_REGISTRY_URL: `http://127.0.0.1:${proxy.port}${target.pathname}`,
      });
      await waitFor(async () => (await committed(env)) >= first, "part 1 committed");
      expect((await health(port)).status).toBe(200);
      const member = await membersOf(env);
      expect(member).toHaveLength(1);

      // 1. The registry goes away; part 2 comes from a producer upgraded to a new schema version.
      await proxy.close();
      const v2 = evolvedSettlementSchema();
      const second = await produceWith(
        env,
        topics.settlements,
        p2.settlements,
        v2,
        await register(v2.schema),
      );
      const downSince = Date.now();
      expect(await degradedOn(port, "registry")).toMatch(/schema registry/);
      await sleep(downSince + OUTAGE_MS - Date.now());
      expect(await committed(env)).toBe(first);
      const during = await metricsOf(port);
      expect(metricTotal(during, "fundguard_degraded", 'dependency="registry"')).toBe(1);
      expect(metricTotal(during, "fundguard_retries_total", 'dependency="registry"')).toBeGreaterThan(3);
      await proxy.open();
      await waitFor(async () => (await committed(env)) >= first + second, "part 2 committed");
      expect(await health(port)).toEqual({ status: 200, report: { status: "ok" } });

      // 2. Part 3's schema id is not served when its messages arrive, and is registered after.
      const v3 = evolvedSettlementSchema();
      const id3 = await register(v3.schema);
      await hardDeleteLatest(subject);
      expect((await fetch(`${registryUrl}/schemas/ids/${id3}`)).status).toBe(404);
      const third = await produceWith(env, topics.settlements, p3.settlements, v3, id3);
      expect(await degradedOn(port, "registry")).toMatch(
        new RegExp(`schema id ${id3} is not in the registry`),
      );
      await sleep(2_000);
      expect(await committed(env)).toBe(first + second);
      // The registry hands out the same id for the same content again: the producer's registration.
      expect(await register(v3.schema)).toBe(id3);
      await waitFor(async () => (await committed(env)) >= first + second + third, "part 3 committed");
      expect((await health(port)).status).toBe(200);
      expect(await membersOf(env)).toEqual(member);

      const log = await stopCleanly(worker);
      expect(assignments(log), log).toBe(1);
      expect(await endOffsetsOf(env, [topics.deadletter])).toBe(0);
      expect(await exported(env)).toEqual(expected);
    } finally {
      await proxy.close();
    }
  });

  it("the store failing (read-only table directories): the flush is retried as it was, exact result", async () => {
    const port = await freePort();
    const env = storeEnv("outage-store", { FUNDGUARD_METRICS_PORT: String(port), LOG_LEVEL: "info" });
    const [p1, p2, p3] = parts as [StreamFiles, StreamFiles, StreamFiles];
    const first = await replay(env, p1);
    const worker = spawnCli(["worker"], env, NOBODY);
    await waitFor(async () => (await committed(env)) >= first, "part 1 committed");
    const member = await membersOf(env);

    const tables = readOnlyTables(env.FUNDGUARD_DATA_DIR as string);
    let rest = 0;
    try {
      rest = (await replay(env, p2)) + (await replay(env, p3));
      const downSince = Date.now();
      expect(await degradedOn(port, "store")).toMatch(/Permission denied/);
      await sleep(2_000);
      const consumed = metricTotal(await metricsOf(port), "fundguard_events_consumed_total");
      await sleep(downSince + OUTAGE_MS - Date.now());
      const during = await metricsOf(port);
      // Fetching stopped: what was read before the wait is all that is held.
      expect(metricTotal(during, "fundguard_events_consumed_total")).toBe(consumed);
      expect(consumed).toBeLessThan(first + rest);
      expect(metricTotal(during, "fundguard_degraded", 'dependency="store"')).toBe(1);
      expect(metricTotal(during, "fundguard_retries_total", 'dependency="store"')).toBeGreaterThan(3);
      expect(await committed(env)).toBe(first);
    } finally {
      tables.restore();
    }
    await waitFor(async () => (await committed(env)) >= first + rest, "parts 2 and 3 committed");
    expect(await health(port)).toEqual({ status: 200, report: { status: "ok" } });
    expect(await membersOf(env)).toEqual(member);

    const log = await stopCleanly(worker);
    expect(assignments(log), log).toBe(1);
    expect(await exported(env)).toEqual(expected);
  });

  it("the store failing under `fundguard sink`: each batch waits in the group, exact result", async () => {
    const env = storeEnv("outage-sink", {});
    const topics = topicNames(env.FUNDGUARD_TOPIC_PREFIX);
    const sinkGroup = `${env.FUNDGUARD_GROUP}-sink`;
    const sinkTopics = [topics.settlements, topics.deaths, topics.suspects];
    const sinkDone = async () =>
      (await committed(env, sinkGroup, sinkTopics)) >= (await endOffsetsOf(env, sinkTopics));
    const [p1, p2, p3] = parts as [StreamFiles, StreamFiles, StreamFiles];
    const first = await replay(env, p1);
    const worker = spawnCli(["worker", "--output", "topic", "--no-metrics"], env);
    const sink = spawnCli(["sink", "--group", sinkGroup], { ...env, LOG_LEVEL: "info" }, NOBODY);
    await waitFor(
      async () => (await committed(env)) >= first && (await sinkDone()),
      "part 1 through the sink",
    );
    const member = await membersOf(env, sinkGroup);

    const tables = readOnlyTables(env.FUNDGUARD_DATA_DIR as string);
    let total = first;
    try {
      total += (await replay(env, p2)) + (await replay(env, p3));
      await waitFor(
        async () => sink.stdoutAndErr().includes("store unavailable: waiting it out"),
        "the sink waiting",
      );
      const stuck = await committed(env, sinkGroup, sinkTopics);
      await sleep(OUTAGE_MS);
      expect(await committed(env, sinkGroup, sinkTopics)).toBe(stuck);
      expect(stuck).toBeLessThan(await endOffsetsOf(env, sinkTopics));
    } finally {
      tables.restore();
    }
    await waitFor(async () => (await committed(env)) >= total, "the worker through parts 2 and 3");
    await waitFor(sinkDone, "the sink through parts 2 and 3");
    expect(sink.stdoutAndErr()).toContain("store available again");
    expect(await membersOf(env, sinkGroup)).toEqual(member);
    await stopCleanly(worker);
    await stopCleanly(sink);
    expect(await exported(env)).toEqual(expected);
  });
});
