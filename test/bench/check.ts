// The hospitals' endpoints over a real HTTP listener: POST /api/v1/check latency at a fixed
// open-loop rate (default 200 checks/s) against embedded chdb filled by the embedded pipeline
// from the generated stream, each check a settlement of a person with history, answered by the
// pipeline's live engines (as `start` answers) and from the archive (as `serve` does); and
// POST /api/v1/ingest/settlements throughput into the real broker (NDJSON bodies of 5 000,
// one request after another), when KAFKA_BROKERS and SCHEMA_REGISTRY_URL are set.
// Targets (issue 11): check p99 ≤ 50 ms embedded, ingest ≥ 5k settlements/s.
import { readFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { join } from "node:path";
import { DETECTORS, loadCatalogs } from "../../detectors/index.ts";
import type { Settlement } from "../../schemas/index.ts";
import { buildServer, usersFromList } from "../../services/api/index.ts";
import type { IngestDestination } from "../../services/api/ingest.ts";
import { KafkaIngest } from "../../services/api/kafka-ingest.ts";
import { loadEnv } from "../../services/config/env.ts";
import { EMBEDDED_PARTITIONS, EmbeddedPipeline } from "../../services/embedded/pipeline.ts";
import { activate } from "../../services/engine/engine.ts";
import { mergedEvents } from "../../services/ingest/ndjson-source.ts";
import { AvroSerde } from "../../services/kafka/serde.ts";
import { inputTopicConfigs, topicNames } from "../../services/kafka/topics.ts";
import { openTransport } from "../../services/kafka/transport.ts";
import { createLogger } from "../../services/log.ts";
import { laneCount } from "../../services/pipeline/lanes.ts";
import { chdbConfig, openStore } from "../../services/store/index.ts";

const TOKEN = "fg_bench_check_admin_token_0123";

export interface BenchCheckOptions {
  files: { settlements: string; deaths: string };
  dir: string;
  rate?: number;
  seconds?: number;
  ingestBodies?: number;
}

const pct = (sorted: number[], p: number) =>
  Number((sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0).toFixed(2));

async function kafkaIngest(): Promise<IngestDestination | undefined> {
  const brokers = process.env.KAFKA_BROKERS;
  const registry = process.env.SCHEMA_REGISTRY_URL;
  if (!brokers || !registry) return undefined;
  const topics = topicNames(`bench-ingest-${Date.now().toString(36)}.`);
  const log = createLogger("bench-check", "silent");
  const transport = await openTransport("platformatic", {
    brokers: brokers.split(","),
    clientId: "bench",
    log,
  });
  const admin = transport.admin();
  await admin.createTopics(inputTopicConfigs(topics, 6)).finally(() => admin.close());
  const serde = new AvroSerde(registry, topics);
  await serde.register();
  return new KafkaIngest(transport, serde, topics);
}

export async function benchCheck(o: BenchCheckOptions) {
  const log = createLogger("bench-check", "silent");
  const store = await openStore(chdbConfig(join(o.dir, `data-${Date.now().toString(36)}`)));
  const active = activate(DETECTORS, loadCatalogs());
  // Its engines on lanes as `start` runs them (a thread here, unless FUNDGUARD_LANES says otherwise).
  const pipeline = new EmbeddedPipeline(
    store,
    {},
    {
      lanes: laneCount(loadEnv().FUNDGUARD_LANES, EMBEDDED_PARTITIONS),
    },
  );
  try {
    const t0 = performance.now();
    for await (const { event, text } of mergedEvents(o.files.settlements, o.files.deaths, () => undefined))
      pipeline.publish(event, text);
    await pipeline.drain();
    const fillSeconds = (performance.now() - t0) / 1000;

    const ingest = await kafkaIngest();
    // `ingest` is closed with the server it is given to: only the last one, which measures ingest, gets it.
    const serve = async (onEngine: boolean, withIngest = false) => {
      const app = await buildServer({
        store,
        log,
        users: usersFromList([{ name: "admin", role: "admin", token: TOKEN }]),
        active,
        ...(ingest && withIngest ? { ingest } : {}),
        ...(onEngine ? { checkOnEngine: (s: Settlement) => pipeline.check(s) } : {}),
        limits: { perToken: 1_000_000, perAddress: 1_000_000 },
      });
      await app.listen({ port: 0, host: "127.0.0.1" });
      const { port } = app.server.address() as { port: number };
      // node:http over kept-alive sockets, not fetch: the load generator shares the two cores with
      // the server, and undici's fetch (WHATWG streams per request) cost as much CPU as the check.
      const agent = new Agent({ keepAlive: true, maxSockets: 64 });
      const post = (path: string, body: string, type: string) =>
        new Promise<{ status: number; json: () => unknown }>((resolve, reject) => {
          const req = request(
            {
              host: "127.0.0.1",
              port,
              path,
              method: "POST",
              agent,
              headers: { authorization: `Bearer ${TOKEN}`, "content-type": type },
            },
            (res) => {
              const chunks: Buffer[] = [];
              res.on("data", (c: Buffer) => chunks.push(c));
              res.on("error", reject);
              res.on("end", () => {
                const text = Buffer.concat(chunks).toString("utf8");
                resolve({ status: res.statusCode ?? 0, json: () => JSON.parse(text) });
              });
            },
          );
          req.on("error", reject);
          req.end(body);
        });
      const close = async () => {
        agent.destroy();
        await app.close();
      };
      return { app: { close }, post };
    };

    // Settlements of people with history: their evidence is what a check reads and replays.
    const lines = readFileSync(o.files.settlements, "utf8").split("\n").filter(Boolean);
    const settles = lines.map((l) => JSON.parse(l) as Settlement).filter((s) => s.event_type === "SETTLE");
    const proposed = settles.slice(-5_000);
    const rate = o.rate ?? 200;
    const total = rate * (o.seconds ?? 10);
    /**
     * Open-loop check latency through one server: `start`'s (the live engines) or `serve`'s (the
     * archive). The first second at the same rate warms the server up (JIT, the route's first
     * queries, the client's connections) and is reported apart: it held nearly all of a cold run's
     * slowest 1%, which is not what a HIS sees of a running service.
     */
    const latency = async (onEngine: boolean) => {
      const { app, post } = await serve(onEngine);
      const decisions: Record<string, number> = {};
      const run = async (count: number, offset: number, tally?: Record<string, number>) => {
        const ms: number[] = [];
        const started = performance.now();
        await Promise.all(
          Array.from({ length: count }, async (_, i) => {
            // Open loop: request i leaves at its slot whatever the earlier ones are doing.
            await new Promise((r) => setTimeout(r, started + (i * 1000) / rate - performance.now()));
            const s = proposed[(offset + i) % proposed.length] as Settlement;
            const t = performance.now();
            const res = await post(
              "/api/v1/check",
              // A re-check of an archived settlement: it replaces itself in the evidence.
              JSON.stringify({ settlement: s }),
              "application/json",
            );
            const body = res.json() as { decision: string };
            ms.push(performance.now() - t);
            if (res.status !== 200) throw new Error(`check: HTTP ${res.status} ${JSON.stringify(body)}`);
            if (tally) tally[body.decision] = (tally[body.decision] ?? 0) + 1;
          }),
        );
        ms.sort((a, b) => a - b);
        return { ms, seconds: (performance.now() - started) / 1000 };
      };
      const warm = await run(rate, 0);
      const measured = await run(total, rate, decisions);
      await app.close();
      return {
        checks: total,
        rate_per_s: rate,
        achieved_per_s: Math.round(total / measured.seconds),
        p50_ms: pct(measured.ms, 50),
        p99_ms: pct(measured.ms, 99),
        max_ms: pct(measured.ms, 100),
        decisions,
        warmup: { checks: rate, p99_ms: pct(warm.ms, 99), max_ms: pct(warm.ms, 100) },
      };
    };
    // A live trickle through the pipeline meanwhile, as `start` keeps one (20 settlements/s): copies of
    // settlements under new ids and new people (the checked people's answers must not change between
    // the two runs), each stored in a round of its own as ingest stores them.
    let trickled = 0;
    const trickle = setInterval(() => {
      const s = {
        ...(settles[trickled % settles.length] as Settlement),
        settlement_id: `live-${trickled}`,
        person_id: `live-P${trickled}`,
      };
      trickled++;
      pipeline.publish({ kind: "settlement", value: s }, JSON.stringify(s));
      pipeline.process().catch(() => undefined);
    }, 50);
    const check = await (async () => {
      try {
        return { engine: await latency(true), archive: await latency(false), trickled_per_s: 20 };
      } finally {
        clearInterval(trickle);
        await pipeline.process();
      }
    })();
    const { app, post } = await serve(false, true);

    let ingestFigures: Record<string, number> | undefined;
    if (ingest) {
      const bodies = o.ingestBodies ?? 10;
      const per = 5_000;
      let n = 0;
      const t = performance.now();
      for (let b = 0; b < bodies; b++) {
        const body = Array.from({ length: per }, (_, i) =>
          JSON.stringify({ ...proposed[(b * per + i) % proposed.length], settlement_id: `ing-${b}-${i}` }),
        ).join("\n");
        const res = await post("/api/v1/ingest/settlements", body, "application/x-ndjson");
        const a = res.json() as { accepted: number };
        if (res.status !== 200) throw new Error(`ingest: HTTP ${res.status} ${JSON.stringify(a)}`);
        n += a.accepted;
      }
      const seconds = (performance.now() - t) / 1000;
      ingestFigures = { settlements: n, seconds: Number(seconds.toFixed(2)), per_s: Math.round(n / seconds) };
    }
    await app.close();
    return {
      fill: { settlements: lines.length, seconds: Number(fillSeconds.toFixed(1)) },
      check,
      ingest: ingestFigures,
    };
  } finally {
    await pipeline.close();
    await store.close();
  }
}
