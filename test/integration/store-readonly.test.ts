// Opening the store as a ClickHouse user that may only read it, as `serve` does in
// docker-compose.yml: a store at the latest schema opens with no DDL at all; one with no schema,
// or behind the code, is refused with the migration and the way out. chdb's `readonly = 2` (reads
// and settings only, as a server refuses DDL to a user without the grant) stands in for the
// server's grants; the database creation a server needs is attempted through the same connection.
import { copyFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type ClickHouseClient, createClient } from "@clickhouse/client";
import chdb from "chdb";
import { createChdbConnection } from "chdb/connection";
import { afterAll, describe, expect, it } from "vitest";
import { loadMigrations, type MigrateResult, migrate } from "../../services/store/index.ts";
import { cli, ROOT, tempDir } from "./harness.ts";

const dir = tempDir("store-readonly");
const data = join(dir, "data");
const latest = Math.max(...loadMigrations().map((m) => m.version));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function withClient<T>(readonly: boolean, fn: (c: ClickHouseClient) => Promise<T>): Promise<T> {
  const client = createClient({
    // Same cast as services/store/backend.ts: chdb types its connection against its own client copy.
    connection: createChdbConnection({ path: data }) as unknown as NonNullable<
      Parameters<typeof createClient>[0]
    >["connection"],
    ...(readonly ? { clickhouse_settings: { readonly: "2" } } : {}),
  });
  try {
    return await fn(client);
  } finally {
    await client.close();
    await chdb.drainPending();
  }
}

/** `migrate` as the read-only user: with the database creation a server would need. */
const openReadOnly = (migrations = loadMigrations()): Promise<MigrateResult> =>
  withClient(true, (c) =>
    migrate(c, migrations, {
      createDatabase: () =>
        c.command({ query: "CREATE DATABASE IF NOT EXISTS fundguard" }).then(() => undefined),
    }),
  );

describe("a store user that may only read", () => {
  it("is refused a store with no schema yet, and told who must create it", async () => {
    mkdirSync(data, { recursive: true });
    await expect(openReadOnly()).rejects.toThrow(
      /cannot create the store's schema: .*readonly mode.*`fundguard migrate`, a worker or a sink/s,
    );
  });

  it("opens a store that `fundguard migrate` brought to the latest schema, with reads alone", async () => {
    const { stderr } = await cli(["migrate"], { FUNDGUARD_DATA_DIR: data, LOG_LEVEL: "info" });
    expect(stderr).toContain('"msg":"store migrated"');
    expect(stderr).toContain(`"current":${latest}`);
    expect(await openReadOnly()).toEqual({ applied: [], current: latest });
  });

  it("is refused a store behind the code, naming the migration; a writer applies it, then it opens", async () => {
    const ahead = join(dir, "migrations");
    mkdirSync(ahead);
    const source = join(ROOT, "services/store/migrations");
    for (const file of readdirSync(source)) copyFileSync(join(source, file), join(ahead, file));
    writeFileSync(
      join(ahead, "999_readonly_probe.sql"),
      "CREATE TABLE IF NOT EXISTS readonly_probe (x UInt8) ENGINE = MergeTree ORDER BY x;\n",
    );
    const migrations = loadMigrations(ahead);
    await expect(openReadOnly(migrations)).rejects.toThrow(
      /cannot apply migration 999_readonly_probe: .*readonly mode/s,
    );
    expect(await withClient(false, (c) => migrate(c, migrations))).toEqual({ applied: [999], current: 999 });
    expect(await openReadOnly(migrations)).toEqual({ applied: [], current: 999 });
  });
});
