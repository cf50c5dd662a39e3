// docker-compose.yml is checked by Docker Compose itself (`config`: the Compose schema, references
// between services, interpolation), and by structural checks of what the deployment needs. Compose
// is the `docker compose` plugin where installed, else built from the Go module proxy by
// infra/compose/ensure.sh (cached under .cache/tools); it needs no Docker engine for `config`.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { z } from "zod";

const file = new URL("../../docker-compose.yml", import.meta.url);

/** The Compose command line, or why there is none (no plugin and no Go toolchain to build one). */
const compose = ((): { argv: string[] } | { missing: string } => {
  try {
    const out = execFileSync(
      "bash",
      [fileURLToPath(new URL("../../infra/compose/ensure.sh", import.meta.url))],
      {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
        timeout: 900_000,
      },
    ).trim();
    return { argv: out.split(" ") };
  } catch (e) {
    const stderr = String((e as { stderr?: unknown }).stderr ?? e).trim();
    return { missing: stderr.split("\n").at(-1) ?? "infra/compose/ensure.sh failed" };
  }
})();

const service = z
  .object({
    image: z.string().optional(),
    build: z.union([z.string(), z.object({ context: z.string() })]).optional(),
    command: z.union([z.string(), z.array(z.string())]).optional(),
    environment: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
    depends_on: z
      .record(
        z.string(),
        z.object({
          condition: z.enum(["service_healthy", "service_started", "service_completed_successfully"]),
        }),
      )
      .optional(),
    healthcheck: z
      .object({ test: z.array(z.string()), interval: z.string(), retries: z.number() })
      .optional(),
  })
  .passthrough()
  .refine((s) => s.image !== undefined || s.build !== undefined, "needs an image or a build");

const composeFile = z.object({
  services: z.record(z.string(), service),
  volumes: z.record(z.string(), z.unknown()).optional(),
});

describe("docker-compose.yml", () => {
  const doc = composeFile.parse(parse(readFileSync(file, "utf8"), { merge: true }));

  const composeCheck =
    "argv" in compose
      ? "is accepted by docker compose config"
      : `is accepted by docker compose config (skipped: ${compose.missing}; the structural checks below stand in)`;
  it.runIf("argv" in compose)(composeCheck, () => {
    const [cmd, ...args] = (compose as { argv: string[] }).argv as [string, ...string[]];
    execFileSync(cmd, [...args, "-f", fileURLToPath(file), "config", "--quiet"], {
      stdio: ["ignore", "ignore", "pipe"],
    });
  });

  it("runs the whole stack: Kafka, the registry, ClickHouse, workers and the API", () => {
    expect(Object.keys(doc.services).sort()).toEqual(
      ["clickhouse", "init", "kafka", "schema-registry", "serve", "worker"].sort(),
    );
  });

  it("waits on health: every dependency exists, and each waited-on service has a health check", () => {
    for (const [name, s] of Object.entries(doc.services)) {
      for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
        const target = doc.services[dep];
        expect(target, `${name} depends on missing ${dep}`).toBeDefined();
        if (condition === "service_healthy")
          expect(target?.healthcheck, `${dep} has no healthcheck`).toBeDefined();
      }
    }
  });

  it("configures the fundguard services through the environment variables the CLI reads", () => {
    for (const name of ["worker", "serve", "init"]) {
      const env = doc.services[name]?.environment ?? {};
      expect(Object.keys(env)).toEqual(
        expect.arrayContaining(["KAFKA_BROKERS", "SCHEMA_REGISTRY_URL", "CLICKHOUSE_URL"]),
      );
    }
  });
});
