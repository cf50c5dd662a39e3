// The Kafka section of the bench: replay rate, Kafka's own consumer ceiling on the same topic
// (ConsumerPerformance from the broker's jars), and one worker plus the ClickHouse sink end to end.
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { topicNames } from "../../services/kafka/topics.ts";
import { benchLatency } from "./latency.ts";
import { mainThreadProfile, summarizeProfile, threadProfiles } from "./profile.ts";
import { cliArgs } from "./shebang.ts";

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
  nodeFlags: string[] = [],
): Promise<{ seconds: number; stderr: string }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeFlags, ...cliArgs(root), ...args], {
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

/** Fresh topics, group and data directory for one measured pipeline. */
function benchEnv(infra: Record<string, string>, id: string): Record<string, string> {
  return {
    ...infra,
    FUNDGUARD_TOPIC_PREFIX: `${id}.`,
    FUNDGUARD_GROUP: `${id}-detectors`,
    FUNDGUARD_PARTITIONS: "6",
    FUNDGUARD_DATA_DIR: join(mkdtempSync(join(tmpdir(), "fg-bench-")), "data"),
    FUNDGUARD_METRICS_PORT: "0",
    LOG_LEVEL: "warn",
  };
}

async function replay(
  root: string,
  files: { settlements: string; deaths: string },
  env: Record<string, string>,
) {
  const r = await run(root, ["replay", "--settlements", files.settlements, "--deaths", files.deaths], env);
  const m = /replay: (\d+) settlements, (\d+) death records/.exec(r.stderr);
  if (!m) throw new Error(`replay printed no summary: ${r.stderr.slice(-2000)}`);
  const settlements = Number(m[1]);
  return { seconds: r.seconds, settlements, events: settlements + Number(m[2]) };
}

/**
 * One worker, writing suspects and the archive into ClickHouse (embedded chdb) itself, until caught up;
 * with `profileDir`, under `node --cpu-prof`, summarised from its main thread's profile.
 */
async function workerEndToEnd(
  root: string,
  env: Record<string, string>,
  settlements: number,
  profileDir?: string,
) {
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const flags = profileDir ? ["--cpu-prof", "--cpu-prof-dir", profileDir] : [];
  // The 1-minute load average before and after: the machine is shared, so a figure needs its context.
  const loadBefore = loadavg()[0] as number;
  const r = await run(root, ["worker", "--until-caught-up"], env, flags);
  const loadAverage1m = { before: loadBefore, after: loadavg()[0] as number };
  const worker = { seconds: r.seconds, settlementsPerSecond: settlements / r.seconds };
  if (!profileDir) return { worker };
  const { file, profile } = mainThreadProfile(profileDir);
  const commit = execFileSync("git", ["-C", root, "rev-parse", "HEAD"], { encoding: "utf8" }).trim();
  return {
    worker,
    profile: {
      commit,
      settlements,
      ...worker,
      loadAverage1m,
      file,
      mainThread: summarizeProfile(profile),
      lanes: threadProfiles(profileDir).map((t) => ({ file: t.file, ...summarizeProfile(t.profile) })),
    },
  };
}

/**
 * Only the worker end to end under the profiler, for the checkout `root` (a fresh replay by that checkout
 * feeds it), on the services `benchRoot`'s infra/up.sh started.
 */
export async function profileWorker(
  files: { settlements: string; deaths: string },
  root: string,
  benchRoot: string,
  profileDir: string,
) {
  const env = benchEnv(envFile(benchRoot), `prof${Date.now().toString(36)}`);
  const fed = await replay(root, files, env);
  const { profile } = await workerEndToEnd(root, env, fed.settlements, profileDir);
  if (!profile) throw new Error("the worker ran without a profile");
  return profile;
}

export async function benchKafka(
  files: { settlements: string; deaths: string },
  root: string,
  opts: { profileDir?: string } = {},
) {
  const id = `bench${Date.now().toString(36)}`;
  const env = benchEnv(envFile(root), id);
  const topics = topicNames(env.FUNDGUARD_TOPIC_PREFIX);
  const fed = await replay(root, files, env);
  const { settlements, events } = fed;

  const ceiling = consumerCeiling(root, env.KAFKA_BROKERS as string, topics.settlements, settlements);

  const { worker, profile } = await workerEndToEnd(root, env, settlements, opts.profileDir);
  // The same worker with its engines on its main thread (FUNDGUARD_LANES=0), same topics, a group and
  // store of its own: what the lanes buy, in one run.
  const inline = await workerEndToEnd(
    root,
    {
      ...env,
      FUNDGUARD_GROUP: `${id}-inline`,
      FUNDGUARD_DATA_DIR: join(mkdtempSync(join(tmpdir(), "fg-bench-")), "data"),
      FUNDGUARD_LANES: "0",
    },
    settlements,
  );
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
    dataDir: env.FUNDGUARD_DATA_DIR as string,
    latencyAt5k: latency,
    events,
    settlements,
    replay: {
      seconds: fed.seconds,
      eventsPerSecond: events / fed.seconds,
      settlementsPerSecond: settlements / fed.seconds,
    },
    kafkaConsumerCeiling: ceiling,
    worker,
    workerInline: inline.worker,
    lanesSpeedup: worker.settlementsPerSecond / inline.worker.settlementsPerSecond,
    note: "worker wall time includes start-up (registry, group join, restore) and the caught-up check",
    workerShareOfCeiling: worker.settlementsPerSecond / ceiling.messagesPerSecond,
    ...(profile ? { profile } : {}),
    targets: "≥ 50k settlements/s and ≥ 50% of the consumer ceiling",
  };
}
