// Versioned, idempotent schema migrations: services/store/migrations/NNN_name.sql, applied in
// order at open and recorded in `schema_migrations`. Each statement must itself be idempotent
// (CREATE ... IF NOT EXISTS, ADD COLUMN IF NOT EXISTS), because ClickHouse DDL is not
// transactional: a run interrupted between a statement and its record simply repeats it, and
// two processes migrating one server at once both succeed.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { ClickHouseClient } from "@clickhouse/client";

export interface Migration {
  version: number;
  name: string;
  checksum: string;
  statements: string[];
}

const MIGRATIONS_DIR = fileURLToPath(new URL("./migrations/", import.meta.url));
const FILE_RE = /^(\d{3,})_([a-z0-9_]+)\.sql$/;

export function loadMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  const out: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    const m = FILE_RE.exec(file);
    if (!m) continue;
    const text = readFileSync(`${dir}/${file}`, "utf8");
    out.push({
      version: Number(m[1]),
      name: m[2] as string,
      checksum: createHash("sha256").update(text).digest("hex"),
      statements: splitStatements(text),
    });
  }
  const seen = new Set<number>();
  for (const mig of out) {
    if (seen.has(mig.version)) throw new Error(`two migrations share version ${mig.version}`);
    seen.add(mig.version);
  }
  return out;
}

/** Drops `--` comment lines and splits on a `;` that ends a line. Migrations keep to that form. */
export function splitStatements(sql: string): string[] {
  return sql
    .split("\n")
    .filter((line) => !/^\s*--/.test(line))
    .join("\n")
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

const MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY version`;

export interface MigrateResult {
  applied: number[];
  current: number;
}

export interface MigrateOptions {
  /** Creates the store's database where it is missing; called only when the schema table cannot be read. */
  createDatabase?: () => Promise<void>;
}

/**
 * Applies the pending migrations. A store already at the latest schema is opened by reading
 * `schema_migrations` alone, with no DDL, so a user that may only read the store (the API's
 * ClickHouse user in docker-compose.yml) opens it too; one that is behind, or has no schema yet,
 * fails with the reason and the way out.
 */
export async function migrate(
  client: ClickHouseClient,
  migrations: Migration[] = loadMigrations(),
  opts: MigrateOptions = {},
): Promise<MigrateResult> {
  let done = await appliedMigrations(client).catch(() => undefined);
  if (!done) {
    await schemaChange("create the store's schema", async () => {
      await opts.createDatabase?.();
      await client.command({ query: MIGRATIONS_TABLE });
    });
    done = await appliedMigrations(client);
  }
  const applied: number[] = [];
  for (const mig of migrations) {
    const sum = done.get(mig.version);
    if (sum !== undefined) {
      if (sum !== mig.checksum) {
        throw new Error(
          `migration ${mig.version}_${mig.name} was changed after it was applied ` +
            "(add a new migration instead of editing an applied one)",
        );
      }
      continue;
    }
    await schemaChange(`apply migration ${mig.version}_${mig.name}`, async () => {
      for (const statement of mig.statements) await client.command({ query: statement });
      await client.insert({
        table: "schema_migrations",
        format: "JSONEachRow",
        values: [{ version: mig.version, name: mig.name, checksum: mig.checksum }],
      });
    });
    applied.push(mig.version);
  }
  const current = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  return { applied, current };
}

async function appliedMigrations(client: ClickHouseClient): Promise<Map<number, string>> {
  const rs = await client.query({
    query: "SELECT version, any(checksum) AS checksum FROM schema_migrations GROUP BY version",
    format: "JSONEachRow",
  });
  const done = new Map<number, string>();
  for (const r of await rs.json<{ version: number | string; checksum: string }>()) {
    done.set(Number(r.version), r.checksum);
  }
  return done;
}

async function schemaChange(what: string, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(
      `cannot ${what}: ${reason.trim()} — a user that may only read the store (as the API's in ` +
        "docker-compose.yml) needs it migrated first by one that may change it: `fundguard migrate`, " +
        "a worker or a sink",
      { cause: err },
    );
  }
}
