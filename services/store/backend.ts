// One @clickhouse/client for both backends: HTTP to a server, or chdb's in-process engine
// plugged in through `createClient({ connection })`. The only backend-specific path is
// streaming reads: chdb/connection materialises a query's whole result before returning it,
// so large reads on chdb go through a Layer 1 chdb Session on the same data directory
// (sessions on one path coexist in a process) and its bound, chunked `queryStreamBind`.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type ClickHouseClient, createClient } from "@clickhouse/client";
import { ensurePrivateDir } from "../config/private-fs.ts";
import type { ChdbStoreConfig, HttpStoreConfig, StoreConfig } from "./config.ts";

type ClientConnection = NonNullable<NonNullable<Parameters<typeof createClient>[0]>["connection"]>;

export type QueryParams = Record<string, unknown>;

export interface Backend {
  readonly kind: StoreConfig["kind"];
  readonly client: ClickHouseClient;
  /** Rows of a bound SELECT (JSONEachRow), fetched chunk by chunk, never the whole result at once. */
  stream<T>(query: string, params: QueryParams): AsyncIterable<T>;
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
    close: () => client.close(),
  };
}

async function openChdb(config: ChdbStoreConfig): Promise<Backend> {
  // Loaded lazily: an HTTP-only deployment never maps libchdb into the process.
  const [{ createChdbConnection }, chdb] = await Promise.all([import("chdb/connection"), import("chdb")]);
  ensurePrivateDir(config.dataDir);
  let connection: ReturnType<typeof createChdbConnection>;
  try {
    connection = createChdbConnection({ path: config.dataDir });
  } catch (err) {
    throw lockedError(config.dataDir, err);
  }
  // chdb types its Connection against its own copy of @clickhouse/client-common; the runtime
  // contract is the one createClient expects (the integration is chdb's documented use).
  const client = createClient({ connection: connection as unknown as ClientConnection });
  return {
    kind: "chdb",
    client,
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
      await client.close();
      // close() returns before the native connection is gone when work is still in flight;
      // wait, so that another data directory (or another process) can open right after.
      await chdb.drainPending();
    },
  };
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
