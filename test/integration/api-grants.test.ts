// The API's ClickHouse user in docker-compose.yml may do exactly what the API does: every route
// is called over a real store (embedded chdb) while each statement the server sends is recorded,
// and the tables it reads and writes are compared with the user's grants
// (infra/compose/clickhouse/fundguard-api.xml). A new read or write of the API fails here until
// the grant is added; a grant the API does not use fails too.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeathRecord, Settlement } from "../../schemas/index.ts";
import { buildServer, usersFromList } from "../../services/api/index.ts";
import { createLogger } from "../../services/log.ts";
import { chdbConfig, openStore, type Store } from "../../services/store/index.ts";
import { apiUser, tablesWith } from "../fixtures/clickhouse-users.ts";
import { death, settlement, stay } from "../fixtures/events.ts";
import { storeEvents } from "../fixtures/run.ts";

const ADMIN = "fg_grants_admin_token_012345";
const inA = { region_code: "341502", institution_id: "H34150200123", institution_name: "六安市人民医院" };
const events: (Settlement | DeathRecord)[] = [
  stay("2025-03-01", "2025-03-05", { settlement_id: "G1", person_id: "P-READMIT", ...inA }),
  stay("2025-03-10", "2025-03-15", { settlement_id: "G2", person_id: "P-READMIT", ...inA }),
  death("2025-02-01", { person_id: "P-DECEASED" }),
  settlement({ settlement_id: "G3", person_id: "P-DECEASED", admission_date: "2025-06-01", ...inA }),
];

const dir = mkdtempSync(join(tmpdir(), "fundguard-grants-"));
let store: Store;
let app: Awaited<ReturnType<typeof buildServer>>;
let suspectId = "";
const reads: string[] = [];
const writes: string[] = [];
const other: string[] = [];

/** Table names after FROM / JOIN (sub-selects, `FROM (`, are skipped; their own FROM counts). */
const tablesIn = (sql: string) =>
  [...sql.matchAll(/\b(?:FROM|JOIN)\s+([A-Za-z_][\w.]*)/gi)].map((m) => m[1] as string);

beforeAll(async () => {
  store = await openStore(chdbConfig(join(dir, "data")));
  suspectId = (await storeEvents(store, events))[0]?.suspect_id ?? "";

  // From here on, every statement reaching ClickHouse is recorded on its way (through either client).
  for (const client of new Set([store.client, store.requestClient])) {
    const query = client.query.bind(client);
    const insert = client.insert.bind(client);
    const command = client.command.bind(client);
    const exec = client.exec.bind(client);
    client.query = ((p: Parameters<typeof query>[0]) => {
      reads.push(...tablesIn(p.query));
      return query(p);
    }) as typeof client.query;
    client.insert = ((p: Parameters<typeof insert>[0]) => {
      writes.push(String(p.table));
      return insert(p);
    }) as typeof client.insert;
    client.command = ((p: Parameters<typeof command>[0]) => {
      other.push(p.query);
      return command(p);
    }) as typeof client.command;
    client.exec = ((p: Parameters<typeof exec>[0]) => {
      other.push(p.query);
      return exec(p);
    }) as typeof client.exec;
  }
  const stream = store.stream.bind(store);
  store.stream = ((sql: string, params?: Record<string, unknown>) => {
    reads.push(...tablesIn(sql));
    return stream(sql, params);
  }) as typeof store.stream;

  app = await buildServer({
    store,
    users: usersFromList([{ name: "admin", role: "admin", token: ADMIN }]),
    log: createLogger("grants-test", "silent"),
  });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the API's ClickHouse user", () => {
  it("is granted what every API route reads and writes, and nothing more", async () => {
    expect(suspectId).not.toBe("");
    const calls: [method: "GET" | "POST", url: string, body?: object][] = [
      ["GET", "/api/v1/me"],
      ["GET", "/api/v1/meta"],
      ["GET", "/api/v1/suspects?status=new,under_review&sort=amount_desc"],
      ["GET", "/api/v1/suspects/count?status=new"],
      ["GET", "/api/v1/suspects/export.csv?status=new"],
      ["GET", `/api/v1/suspects/${suspectId}`],
      ["POST", `/api/v1/suspects/${suspectId}/status`, { status: "under_review", note: "grants" }],
      ["GET", "/api/v1/aggregates"],
      ["GET", "/api/v1/audit"],
    ];
    for (const [method, url, payload] of calls) {
      const res = await app.inject({ method, url, payload, headers: { authorization: `Bearer ${ADMIN}` } });
      expect(res.statusCode, `${method} ${url}: ${res.body.slice(0, 200)}`).toBeLessThan(300);
    }

    const user = apiUser();
    expect(new Set(user.grants.map((g) => g.database))).toEqual(new Set(["fundguard"]));
    expect(new Set(user.grants.flatMap((g) => g.privileges))).toEqual(new Set(["SELECT", "INSERT"]));
    expect(other, "DDL or other statements from the API").toEqual([]);
    // Opening the store reads schema_migrations and nothing else once the schema is current
    // (test/integration/store-readonly.test.ts).
    const read = [...new Set([...reads, "schema_migrations"])].sort();
    expect(read, "tables the API reads (expected: the SELECT grants)").toEqual(tablesWith(user, "SELECT"));
    const written = [...new Set(writes)].sort();
    expect(written, "tables the API inserts into (expected: the INSERT grants)").toEqual(
      tablesWith(user, "INSERT"),
    );
  });
});
