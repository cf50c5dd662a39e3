// docker-compose.yml is checked with `docker compose config` where the Compose plugin exists;
// otherwise (as on machines without Docker) by this structural check of what the deployment needs.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { z } from "zod";

const file = new URL("../../docker-compose.yml", import.meta.url);

const hasCompose = (() => {
  try {
    execFileSync("docker", ["compose", "version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
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

const compose = z.object({
  services: z.record(z.string(), service),
  volumes: z.record(z.string(), z.unknown()).optional(),
});

describe("docker-compose.yml", () => {
  const doc = compose.parse(parse(readFileSync(file, "utf8"), { merge: true }));

  const composeCheck = hasCompose
    ? "is accepted by docker compose config"
    : "is accepted by docker compose config (skipped: no Docker Compose plugin here; the structural checks below stand in)";
  it.runIf(hasCompose)(composeCheck, () => {
    execFileSync("docker", ["compose", "-f", file.pathname, "config", "--quiet"]);
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
