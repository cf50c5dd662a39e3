// Global setup for integration tests: real Kafka and a real schema registry, provisioned by
// infra/up.sh unless KAFKA_BROKERS and SCHEMA_REGISTRY_URL point at running ones.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";

const root = fileURLToPath(new URL("../../", import.meta.url));

declare module "vitest" {
  export interface ProvidedContext {
    kafkaBrokers: string;
    schemaRegistryUrl: string;
  }
}

function readEnvFile(path: string): Record<string, string> {
  return Object.fromEntries(
    readFileSync(path, "utf8")
      .split("\n")
      .filter((l) => l.includes("="))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1).trim()]),
  );
}

/** Whether the locally provisioned services already answer (then this run leaves them running). */
async function alreadyUp(envFile: string): Promise<boolean> {
  if (!existsSync(envFile)) return false;
  const env = readEnvFile(envFile);
  const [host, port] = (env.KAFKA_BROKERS ?? "").split(":");
  const kafka = await new Promise<boolean>((resolve) => {
    const socket = connect({ host, port: Number(port) }, () => {
      socket.end();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
  const registry = await fetch(`${env.SCHEMA_REGISTRY_URL}/subjects`).then(
    (r) => r.ok,
    () => false,
  );
  return kafka && registry;
}

export default async function setup(project: TestProject): Promise<() => void> {
  // Services this run started are stopped at the end unless FUNDGUARD_KEEP_INFRA=1 (faster reruns).
  let startedHere = false;
  let brokers = process.env.KAFKA_BROKERS;
  let registry = process.env.SCHEMA_REGISTRY_URL;
  if (!brokers || !registry) {
    const cache = process.env.FUNDGUARD_CACHE ?? `${root}.cache`;
    const wasUp = await alreadyUp(`${cache}/run/env`);
    execFileSync("bash", [`${root}infra/up.sh`], { stdio: ["ignore", process.stderr, process.stderr] });
    startedHere = !wasUp;
    const env = readEnvFile(`${cache}/run/env`);
    brokers = env.KAFKA_BROKERS as string;
    registry = env.SCHEMA_REGISTRY_URL as string;
  }
  project.provide("kafkaBrokers", brokers);
  project.provide("schemaRegistryUrl", registry);
  return () => {
    if (startedHere && process.env.FUNDGUARD_KEEP_INFRA !== "1") {
      execFileSync("bash", [`${root}infra/down.sh`], { stdio: ["ignore", process.stderr, process.stderr] });
    }
  };
}
