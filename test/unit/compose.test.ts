// docker-compose.yml is checked by Docker Compose itself (`config`: the Compose schema, references
// between services, interpolation), and by structural checks of what the deployment needs. Compose
// is the `docker compose` plugin where installed, else built from the Go module proxy by
// infra/compose/ensure.sh (cached under .cache/tools); it needs no Docker engine for `config`.
// No database password has a default, and `serve` reaches ClickHouse as the API's read-only user
// (infra/compose/clickhouse/fundguard-api.xml; its grants against the API's statements are
// test/integration/api-grants.test.ts).
import { execFileSync, spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { z } from "zod";
import { API_USERS_FILE, apiUser } from "../fixtures/clickhouse-users.ts";

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

const PASSWORDS = { CLICKHOUSE_PASSWORD: "writer-secret-1", CLICKHOUSE_API_PASSWORD: "api-secret-2" };

/** `docker compose config` of the file with `env` as the whole of the variables it may read. */
function composeConfig(env: Record<string, string>) {
  const [cmd, ...args] = (compose as { argv: string[] }).argv as [string, ...string[]];
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/PASSWORD|^CLICKHOUSE_|^FUNDGUARD_/.test(k)),
  );
  return spawnSync(cmd, [...args, "-f", fileURLToPath(file), "config", "--format", "json"], {
    encoding: "utf8",
    env: { ...clean, ...env },
  });
}

/** The variable a `${NAME:?message}` value requires, or undefined for anything else. */
const required = (v: string | number | undefined) => /^\$\{(\w+):\?[^}]+\}$/.exec(String(v ?? ""))?.[1];

describe("docker-compose.yml", () => {
  const doc = composeFile.parse(parse(readFileSync(file, "utf8"), { merge: true }));

  const composeCheck =
    "argv" in compose
      ? "is accepted by docker compose config"
      : `is accepted by docker compose config (skipped: ${compose.missing}; the structural checks below stand in)`;
  it.runIf("argv" in compose)(composeCheck, () => {
    const r = composeConfig(PASSWORDS);
    expect(r.status, r.stderr).toBe(0);
    // As Compose resolves it: the API runs as its own user with its own password, the rest as the writer.
    const env = (name: string) =>
      (JSON.parse(r.stdout) as { services: Record<string, { environment: Record<string, string> }> })
        .services[name]?.environment ?? {};
    expect(env("serve")).toMatchObject({
      CLICKHOUSE_USER: apiUser().name,
      CLICKHOUSE_PASSWORD: PASSWORDS.CLICKHOUSE_API_PASSWORD,
    });
    for (const name of ["worker", "init"])
      expect(env(name)).toMatchObject({
        CLICKHOUSE_USER: env("clickhouse").CLICKHOUSE_USER,
        CLICKHOUSE_PASSWORD: PASSWORDS.CLICKHOUSE_PASSWORD,
      });
  });

  it.runIf("argv" in compose)("refuses to run without each database password (no defaults)", () => {
    for (const missing of Object.keys(PASSWORDS)) {
      const r = composeConfig(Object.fromEntries(Object.entries(PASSWORDS).filter(([k]) => k !== missing)));
      expect(r.status, `config without ${missing}`).not.toBe(0);
      expect(r.stderr).toContain(`required variable ${missing} is missing a value: set ${missing}`);
    }
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

  it("has no default password and no credentials in a URL", () => {
    const text = readFileSync(file, "utf8");
    expect(text).not.toMatch(/\$\{\w*PASSWORD\w*:?-/);
    for (const [name, s] of Object.entries(doc.services)) {
      for (const [key, value] of Object.entries(s.environment ?? {})) {
        if (/PASSWORD/.test(key)) expect(required(value), `${name}.${key} = ${value}`).toBeDefined();
        if (/_URL$/.test(key)) expect(new URL(String(value)).username, `${name}.${key}`).toBe("");
      }
    }
  });

  it("runs serve as the API's read-only ClickHouse user, the workers as the writer", () => {
    const api = apiUser();
    const clickhouse = doc.services.clickhouse?.environment ?? {};
    const serve = doc.services.serve?.environment ?? {};
    expect(serve.CLICKHOUSE_USER).toBe(api.name);
    expect(api.name).not.toBe(clickhouse.CLICKHOUSE_USER);
    // The server reads the API user's password from the variable serve is given.
    expect(api.passwordFromEnv).toBeDefined();
    expect(required(clickhouse[api.passwordFromEnv as string])).toBe(required(serve.CLICKHOUSE_PASSWORD));
    expect(doc.services.clickhouse?.volumes).toContain(
      `./${API_USERS_FILE}:/etc/clickhouse-server/users.d/fundguard-api.xml:ro`,
    );
    for (const name of ["worker", "init"]) {
      const env = doc.services[name]?.environment ?? {};
      expect(env.CLICKHOUSE_USER, name).toBe(clickhouse.CLICKHOUSE_USER);
      expect(required(env.CLICKHOUSE_PASSWORD), name).toBe(required(clickhouse.CLICKHOUSE_PASSWORD));
    }
    // serve starts once init has migrated the schema: its user may not.
    expect(doc.services.serve?.depends_on?.init?.condition).toBe("service_completed_successfully");
    expect(String(doc.services.init?.command)).toContain("fundguard.js migrate");
  });

  it("grants the API's user reads and appends only, on tables of the schema", () => {
    const migrations = fileURLToPath(new URL("../../services/store/migrations/", import.meta.url));
    const tables = new Set(["schema_migrations"]);
    for (const f of readdirSync(migrations))
      for (const m of readFileSync(`${migrations}${f}`, "utf8").matchAll(/CREATE TABLE IF NOT EXISTS (\w+)/g))
        tables.add(m[1] as string);
    const { grants } = apiUser();
    expect(grants.length).toBeGreaterThan(0);
    for (const g of grants) {
      expect(g.database).toBe(doc.services.clickhouse?.environment?.CLICKHOUSE_DB);
      expect(tables.has(g.table), `grant on unknown table ${g.table}`).toBe(true);
      for (const p of g.privileges) expect(["SELECT", "INSERT"]).toContain(p);
    }
  });
});
