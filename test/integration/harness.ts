// Helpers for tests that run the real `fundguard` executable against the provisioned services.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { inject } from "vitest";

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

export function spawnCli(args: string[], env: Record<string, string>): RunningCli {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env, CLICKHOUSE_URL: env.CLICKHOUSE_URL ?? "" },
    stdio: ["ignore", "pipe", "pipe"],
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

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
