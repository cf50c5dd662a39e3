// One @clickhouse/client for both backends: HTTP to a server, or chdb's in-process engine
// plugged in through `createClient({ connection })`. The only backend-specific path is
// streaming reads: chdb/connection materialises a query's whole result before returning it,
// so large reads on chdb go through a Layer 1 chdb Session on the same data directory
// (sessions on one path coexist in a process) and its bound, chunked `queryStreamBind`.
// Raw inserts (bytes in a ClickHouse input format) differ too: chdb's connection turns a body
// into a UTF-8 string, which corrupts Avro, so there Avro goes through a file and FROM INFILE.
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { type ClickHouseClient, createClient } from "@clickhouse/client";
import { ensurePrivateDir } from "../config/private-fs.ts";
import type { ChdbStoreConfig, HttpStoreConfig, StoreConfig } from "./config.ts";

type ClientConnection = NonNullable<NonNullable<Parameters<typeof createClient>[0]>["connection"]>;

export type QueryParams = Record<string, unknown>;

/** The tables raw bytes may go into (migration 005's staging tables); nothing else is ever named. */
export const RAW_TABLES = ["settlements_in", "deaths_in"] as const;
export type RawTable = (typeof RAW_TABLES)[number];
export type RawFormat = "JSONEachRow" | "AvroConfluent";

export interface RawInsert {
  table: RawTable;
  format: RawFormat;
  /** The body, in `format`: whole NDJSON lines, or whole Confluent-framed Avro messages. */
  chunks: readonly Uint8Array[];
  /** The registry for AvroConfluent when the store's configuration names none. */
  registryUrl?: string;
}

export interface Backend {
  readonly kind: StoreConfig["kind"];
  /** The stream's bulk writes (archive, suspects) and migrations. */
  readonly client: ClickHouseClient;
  /**
   * Statements made for API requests (reads, audit rows, case events). A chdb session runs one
   * statement at a time, so on chdb this is a session of its own: a check's audit row then waits
   * for no archive insert (p99 59 → 11 ms for the row at 200 checks/s beside a 20/s trickle).
   * Over HTTP it is `client`, whose pool already runs statements side by side.
   */
  readonly requestClient: ClickHouseClient;
  /** Rows of a bound SELECT (JSONEachRow), fetched chunk by chunk, never the whole result at once. */
  stream<T>(query: string, params: QueryParams): AsyncIterable<T>;
  /** One INSERT of raw bytes, resolved once the rows (and what the table's views make of them) are on disk. */
  insertRaw(insert: RawInsert): Promise<void>;
  close(): Promise<void>;
  /** Creates the configured database on a server (none on chdb); migrations call it only when needed. */
  createDatabase?: () => Promise<void>;
}

/** The data directory is held by another process (or another path is open in this one). */
export class StoreLockedError extends Error {
  override readonly name = "StoreLockedError";
}

export async function openBackend(config: StoreConfig): Promise<Backend> {
  return config.kind === "http" ? openHttp(config) : openChdb(config);
}

async function openHttp(config: HttpStoreConfig): Promise<Backend> {
  const base = { url: config.url, username: config.username, password: config.password };
  const client = createClient({ ...base, database: config.database });
  return {
    kind: "http",
    client,
    requestClient: client,
    async createDatabase() {
      if (config.database === "default") return;
      const boot = createClient({ ...base, database: "default" });
      try {
        // The name was checked to be an identifier in httpConfig; it comes from configuration, not input.
        await boot.command({ query: `CREATE DATABASE IF NOT EXISTS ${config.database}` });
      } finally {
        await boot.close();
      }
    },
    async *stream<T>(query: string, params: QueryParams) {
      const rs = await client.query({ query, query_params: params, format: "JSONEachRow" });
      for await (const rows of rs.stream<T>()) for (const row of rows) yield row.json<T>();
    },
    async insertRaw(insert: RawInsert) {
      const { table, format } = checkRaw(insert);
      const result = await client.exec({
        query: `INSERT INTO ${table} FORMAT ${format}`,
        values: Readable.from(insert.chunks),
        clickhouse_settings: {
          async_insert: 0,
          ...RAW_SETTINGS,
          ...(format === "AvroConfluent"
            ? { format_avro_schema_registry_url: registryOf(config, insert) }
            : {}),
        },
      });
      // The server reports a failure that happens after the headers in the body: read it to the end.
      for await (const _ of result.stream);
    },
    close: () => client.close(),
  };
}

async function openChdb(config: ChdbStoreConfig): Promise<Backend> {
  // Loaded lazily: an HTTP-only deployment never maps libchdb into the process.
  const [{ createChdbConnection }, chdb] = await Promise.all([import("chdb/connection"), import("chdb")]);
  ensurePrivateDir(config.dataDir);
  let connection: ReturnType<typeof createChdbConnection>;
  let requestConnection: ReturnType<typeof createChdbConnection>;
  try {
    connection = createChdbConnection({ path: config.dataDir });
    requestConnection = createChdbConnection({ path: config.dataDir });
  } catch (err) {
    throw lockedError(config.dataDir, err);
  }
  // chdb types its Connection against its own copy of @clickhouse/client-common; the runtime
  // contract is the one createClient expects (the integration is chdb's documented use).
  const client = createClient({ connection: connection as unknown as ClientConnection });
  const requestClient = createClient({ connection: requestConnection as unknown as ClientConnection });
  const inserts = join(config.dataDir, "fundguard-inserts");
  removeStaleInserts(inserts);
  return {
    kind: "chdb",
    client,
    requestClient,
    async insertRaw(insert: RawInsert) {
      const { table, format } = checkRaw(insert);
      if (format === "JSONEachRow") {
        await connection.chdb.rawInsert({
          table,
          format,
          values: Buffer.concat(insert.chunks),
          settings: RAW_SETTINGS,
        });
        return;
      }
      ensurePrivateDir(inserts);
      const file = join(inserts, `${process.pid}-${++insertFiles}.avro`);
      try {
        const fh = await open(file, "wx", 0o600);
        try {
          await fh.writev(insert.chunks as Uint8Array[]);
        } finally {
          await fh.close();
        }
        const settings = Object.entries({
          ...RAW_SETTINGS,
          format_avro_schema_registry_url: registryOf(config, insert),
        })
          .map(([k, v]) => `${k} = ${typeof v === "string" ? sqlString(v) : v}`)
          .join(", ");
        await client.command({
          query: `INSERT INTO ${table} FROM INFILE ${sqlString(file)} SETTINGS ${settings} FORMAT AvroConfluent`,
        });
      } finally {
        rmSync(file, { force: true });
      }
    },
    async *stream<T>(query: string, params: QueryParams) {
      // A Session per stream: one active stream per session, and same-path sessions are cheap.
      const session = new chdb.Session(config.dataDir);
      try {
        const rows = session.queryStreamBind(query, params, { format: "JSONEachRow" }).rows<T>();
        for await (const row of rows) yield row;
      } finally {
        session.close();
      }
    },
    async close() {
      await Promise.all([client.close(), requestClient.close()]);
      // close() returns before the native connection is gone when work is still in flight;
      // wait, so that another data directory (or another process) can open right after.
      await chdb.drainPending();
    },
  };
}

/** Numbers the Avro insert files of this process (stores on one path in one process share the directory). */
let insertFiles = 0;

/** Only this process may hold the data directory, so another process's insert files are a crash's leftovers. */
function removeStaleInserts(dir: string): void {
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir)) {
    if (!f.startsWith(`${process.pid}-`)) rmSync(join(dir, f), { force: true });
  }
}

/**
 * Settings of every raw insert: keys a newer producer added are skipped, fields an older writer
 * schema lacks take their column's default (NULL for the optional ones), as the JS path does.
 */
const RAW_SETTINGS = {
  input_format_skip_unknown_fields: 1,
  input_format_avro_allow_missing_fields: 1,
} as const;

function checkRaw(insert: RawInsert): { table: RawTable; format: RawFormat } {
  if (!(RAW_TABLES as readonly string[]).includes(insert.table)) {
    throw new Error(
      `raw inserts go into ${RAW_TABLES.join(" or ")} only, not ${JSON.stringify(insert.table)}`,
    );
  }
  if (insert.format !== "JSONEachRow" && insert.format !== "AvroConfluent") {
    throw new Error(
      `raw insert format must be JSONEachRow or AvroConfluent, not ${JSON.stringify(insert.format)}`,
    );
  }
  return { table: insert.table, format: insert.format };
}

function registryOf(config: StoreConfig, insert: RawInsert): string {
  const url = config.schemaRegistryUrl ?? insert.registryUrl;
  if (!url) {
    throw new Error(
      "an AvroConfluent insert needs the schema registry: set FUNDGUARD_CH_SCHEMA_REGISTRY_URL or SCHEMA_REGISTRY_URL",
    );
  }
  return url;
}

/** A ClickHouse string literal: backslashes and quotes escaped, so a path or URL stays one value. */
export function sqlString(s: string): string {
  return `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

function lockedError(dataDir: string, cause: unknown): Error {
  const status = join(dataDir, "status");
  let holder = "";
  if (existsSync(status)) {
    const pid = /PID:\s*(\d+)/.exec(readFileSync(status, "utf8"))?.[1];
    if (pid && Number(pid) !== process.pid) holder = ` (its status file names process ${pid})`;
  }
  const message =
    `cannot open the embedded ClickHouse (chdb) data directory ${dataDir}${holder}: ` +
    "chdb locks a data directory for one process at a time, and one process can hold only one " +
    "data directory. Stop the other fundguard process using it, point FUNDGUARD_DATA_DIR at " +
    "another directory, or run a ClickHouse server and set CLICKHOUSE_URL so several processes " +
    `can share the store. (${cause instanceof Error ? cause.message : String(cause)})`;
  return new StoreLockedError(message, { cause });
}
