// Helpers for tests that run the real `fundguard` executable against the provisioned services.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Admin, Kafka, logLevel } from "kafkajs";
import { inject } from "vitest";
import type { Suspect } from "../../schemas/index.ts";
import { topicNames } from "../../services/kafka/topics.ts";
import { canonical } from "../fixtures/run.ts";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BIN = join(ROOT, "bin/fundguard.js");

export function tempDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `fg-${label}-`));
}

/** Environment for one isolated pipeline: its own topic prefix, group and ClickHouse data dir. */
export function pipelineEnv(label: string, extra: Record<string, string> = {}): Record<string, string> {
  const id = `${label}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  return {
    KAFKA_BROKERS: inject("kafkaBrokers"),
    SCHEMA_REGISTRY_URL: inject("schemaRegistryUrl"),
    FUNDGUARD_TOPIC_PREFIX: `${id}.`,
    FUNDGUARD_GROUP: `${id}-detectors`,
    FUNDGUARD_PARTITIONS: "3",
    FUNDGUARD_DATA_DIR: join(tempDir(label), "data"),
    LOG_LEVEL: "warn",
    FUNDGUARD_METRICS_PORT: "0",
    ...extra,
  };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const running = new Set<ChildProcess>();

/** Kills every CLI process a test started and left running (after a failed assertion). */
export function killStrays(): void {
  for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  running.clear();
}

export type RunningCli = ChildProcess & { result: Promise<CliResult>; stdoutAndErr(): string };

/** `as` runs the process as another user (a test that needs file permissions to hold for it). */
export function spawnCli(
  args: string[],
  env: Record<string, string>,
  as?: { uid: number; gid: number },
): RunningCli {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env, CLICKHOUSE_URL: env.CLICKHOUSE_URL ?? "" },
    stdio: ["ignore", "pipe", "pipe"],
    ...as,
  });
  let stdout = "";
  let stderr = "";
  // A StringDecoder per stream: a chunk may end inside a multi-byte character (Chinese names).
  child.stdout?.setEncoding("utf8");
  child.stderr?.setEncoding("utf8");
  child.stdout?.on("data", (d) => {
    stdout += d;
  });
  child.stderr?.on("data", (d) => {
    stderr += d;
  });
  running.add(child);
  const result = new Promise<CliResult>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return Object.assign(child, { result, stdoutAndErr: () => stdout + stderr });
}

/** Runs the CLI to completion and fails loudly, with its stderr, on a non-zero exit. */
export async function cli(args: string[], env: Record<string, string>): Promise<CliResult> {
  const r = await spawnCli(args, env).result;
  if (r.code !== 0) throw new Error(`fundguard ${args.join(" ")} exited ${r.code ?? r.signal}:\n${r.stderr}`);
  return r;
}

/** `fundguard export` of the live run, compared as detect's output is (canonical). */
export async function exported(env: Record<string, string>): Promise<string[]> {
  const out = (await cli(["export"], env)).stdout;
  return canonical(
    out
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Suspect),
  );
}

/** Produces the files into the input topics; returns how many events went in. */
export async function replay(env: Record<string, string>, f: StreamFiles): Promise<number> {
  const r = await cli(["replay", "--settlements", f.settlements, "--deaths", f.deaths], env);
  const m = /replay: (\d+) settlements, (\d+) death records/.exec(r.stderr);
  return Number(m?.[1]) + Number(m?.[2]);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string,
  ms = 120_000,
): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/**
 * Runs `fn` with an admin client, again while the broker answers with a retriable error: a fresh
 * broker's group coordinator answers NOT_COORDINATOR while __consumer_offsets is still loading.
 */
async function withAdmin<T>(env: Record<string, string>, fn: (admin: Admin) => Promise<T>): Promise<T> {
  const kafka = new Kafka({ brokers: [env.KAFKA_BROKERS as string], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(admin);
      } catch (e) {
        if (!(e as { retriable?: boolean }).retriable || attempt >= 50) throw e;
        await sleep(200);
      }
    }
  } finally {
    await admin.disconnect();
  }
}

const inputTopics = (env: Record<string, string>) => {
  const t = topicNames(env.FUNDGUARD_TOPIC_PREFIX);
  return [t.settlements, t.deaths];
};

/** Committed offsets of a group (default: the detector group, on both input topics), summed. */
export function committed(
  env: Record<string, string>,
  groupId = env.FUNDGUARD_GROUP as string,
  topics = inputTopics(env),
): Promise<number> {
  return withAdmin(env, async (admin) => {
    const offsets = await admin.fetchOffsets({ groupId, topics });
    return offsets.flatMap((o) => o.partitions).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
  });
}

/** End offsets of the topics, summed: how many records they ever held. */
export function endOffsetsOf(env: Record<string, string>, topics: string[]): Promise<number> {
  return withAdmin(env, async (admin) => {
    let n = 0;
    for (const t of topics) for (const p of await admin.fetchTopicOffsets(t)) n += Number(p.high);
    return n;
  });
}

/** Member ids of a group: the same ones before and after an event mean nobody left or joined. */
export function membersOf(
  env: Record<string, string>,
  groupId = env.FUNDGUARD_GROUP as string,
): Promise<string[]> {
  return withAdmin(env, async (admin) => {
    const { groups } = await admin.describeGroups([groupId]);
    return (groups[0]?.members ?? []).map((m) => m.memberId);
  });
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

/** Sum of a metric's samples in the Prometheus text format, of those whose labels contain `label`. */
export function metricTotal(text: string, name: string, label = ""): number {
  return text
    .split("\n")
    .filter((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(label))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
}

export type StreamFiles = { settlements: string; deaths: string };

/** The stream cut into `parts` runs of settlement lines; the deaths all go with part `deathsIn`. */
export function splitStream(f: StreamFiles, dir: string, parts: number, deathsIn: number): StreamFiles[] {
  const lines = readFileSync(f.settlements, "utf8").split("\n").filter(Boolean);
  const write = (name: string, rows: string[]) => {
    const path = join(dir, name);
    writeFileSync(path, rows.map((r) => `${r}\n`).join(""));
    return path;
  };
  const empty = write("no-deaths.ndjson", []);
  return Array.from({ length: parts }, (_, i) => ({
    settlements: write(
      `part${i + 1}.ndjson`,
      lines.slice(Math.floor((i * lines.length) / parts), Math.floor(((i + 1) * lines.length) / parts)),
    ),
    deaths: i === deathsIn ? f.deaths : empty,
  }));
}
