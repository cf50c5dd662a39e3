// The Kafka section of the bench: replay rate, Kafka's own consumer ceiling on the same topic
// (ConsumerPerformance from the broker's jars), and one worker plus the ClickHouse sink end to end.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { topicNames } from "../../services/kafka/topics.ts";
import { benchLatency } from "./latency.ts";

export function envFile(root: string): Record<string, string> {
  return Object.fromEntries(
    readFileSync(join(root, ".cache/run/env"), "utf8")
      .split("\n")
      .filter((l) => l.includes("="))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}

export function run(
  root: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ seconds: number; stderr: string }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(root, "bin/fundguard.js"), ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("close", (code) =>
      code === 0
        ? resolve({ seconds: (performance.now() - t0) / 1000, stderr })
        : reject(new Error(`fundguard ${args.join(" ")} exited ${code}: ${stderr.slice(-2000)}`)),
    );
  });
}

/** Kafka's ConsumerPerformance prints one CSV row: we keep messages/s and MB/s. */
function consumerCeiling(root: string, brokers: string, topic: string, records: number) {
  const out = execFileSync(
    "bash",
    [
      join(root, "infra/kafka/run-class.sh"),
      "org.apache.kafka.tools.ConsumerPerformance",
      "--bootstrap-server",
      brokers,
      "--topic",
      topic,
      "--num-records",
      String(records),
      "--group",
      `perf-${Date.now()}`,
      "--timeout",
      "60000",
    ],
    { encoding: "utf8" },
  );
  const lines = out.trim().split("\n");
  const header = (lines.find((l) => l.includes("MB.sec")) ?? "").split(",").map((h) => h.trim());
  const row = (lines.at(-1) ?? "").split(",").map((c) => c.trim());
  const field = (name: string) => Number(row[header.indexOf(name)]);
  return {
    messagesPerSecond: field("nMsg.sec"),
    mbPerSecond: field("MB.sec"),
    messages: field("data.consumed.in.nMsg"),
  };
}

export async function benchKafka(files: { settlements: string; deaths: string }, root: string) {
  const infra = envFile(root);
  const id = `bench${Date.now().toString(36)}`;
  const env = {
    ...infra,
    FUNDGUARD_TOPIC_PREFIX: `${id}.`,
    FUNDGUARD_GROUP: `${id}-detectors`,
    FUNDGUARD_PARTITIONS: "6",
    FUNDGUARD_DATA_DIR: join(mkdtempSync(join(tmpdir(), "fg-bench-")), "data"),
    FUNDGUARD_METRICS_PORT: "0",
    LOG_LEVEL: "warn",
  };
  const topics = topicNames(env.FUNDGUARD_TOPIC_PREFIX);
  const replay = await run(
    root,
    ["replay", "--settlements", files.settlements, "--deaths", files.deaths],
    env,
  );
  const m = /replay: (\d+) settlements, (\d+) death records/.exec(replay.stderr);
  const settlements = Number(m?.[1]);
  const events = settlements + Number(m?.[2]);

  const ceiling = consumerCeiling(root, infra.KAFKA_BROKERS as string, topics.settlements, settlements);

  // One worker, writing suspects and the archive into ClickHouse (embedded chdb) itself.
  const workerRun = await run(root, ["worker", "--until-caught-up"], env);
  const workerRate = settlements / workerRun.seconds;
  const latencyId = `${id}lat`;
  const latency = await benchLatency({
    root,
    env: {
      ...env,
      FUNDGUARD_TOPIC_PREFIX: `${latencyId}.`,
      FUNDGUARD_GROUP: `${latencyId}-detectors`,
      FUNDGUARD_DATA_DIR: join(mkdtempSync(join(tmpdir(), "fg-latency-")), "data"),
      FUNDGUARD_COMMIT_INTERVAL_MS: "100",
    },
    settlementsFile: files.settlements,
    rate: 5_000,
    seconds: 30,
  });
  return {
    dataDir: env.FUNDGUARD_DATA_DIR,
    latencyAt5k: latency,
    events,
    settlements,
    replay: { seconds: replay.seconds, eventsPerSecond: events / replay.seconds },
    kafkaConsumerCeiling: ceiling,
    worker: { seconds: workerRun.seconds, settlementsPerSecond: workerRate },
    note: "worker wall time includes start-up (registry, group join, restore) and the caught-up check",
    workerShareOfCeiling: workerRate / ceiling.messagesPerSecond,
    targets: "≥ 50k settlements/s and ≥ 50% of the consumer ceiling",
  };
}
