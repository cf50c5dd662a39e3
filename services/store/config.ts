// Where the store lives: a ClickHouse server over HTTP, or embedded chdb in a data directory.
import { resolve } from "node:path";
import { clickhouseRegistryUrl } from "../config/env.ts";

interface CommonStoreConfig {
  /**
   * The schema registry as ClickHouse reaches it, for the archive's AvroConfluent inserts
   * (FUNDGUARD_CH_SCHEMA_REGISTRY_URL, else SCHEMA_REGISTRY_URL); unset: the writer's own registry.
   */
  schemaRegistryUrl?: string;
}

export interface HttpStoreConfig extends CommonStoreConfig {
  kind: "http";
  /** Server origin, e.g. http://127.0.0.1:8123 (credentials and database are split out). */
  url: string;
  username: string;
  password: string;
  database: string;
}

export interface ChdbStoreConfig extends CommonStoreConfig {
  kind: "chdb";
  /** Absolute path of the data directory. One process at a time may open it. */
  dataDir: string;
}

export type StoreConfig = HttpStoreConfig | ChdbStoreConfig;

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * `CLICKHOUSE_URL` selects a server (`http://user:password@host:8123/database`; `CLICKHOUSE_USER`,
 * `CLICKHOUSE_PASSWORD` and `CLICKHOUSE_DATABASE` fill in what the URL leaves out); otherwise
 * embedded chdb in `FUNDGUARD_DATA_DIR` (default `./data`).
 */
export function storeConfigFromEnv(env: NodeJS.ProcessEnv = process.env): StoreConfig {
  const url = env.CLICKHOUSE_URL?.trim();
  const config: StoreConfig = url
    ? httpConfig(url, {
        username: env.CLICKHOUSE_USER,
        password: env.CLICKHOUSE_PASSWORD,
        database: env.CLICKHOUSE_DATABASE,
      })
    : chdbConfig(env.FUNDGUARD_DATA_DIR?.trim() || "./data");
  const schemaRegistryUrl = clickhouseRegistryUrl(env);
  return schemaRegistryUrl ? { ...config, schemaRegistryUrl } : config;
}

export function chdbConfig(dataDir: string): ChdbStoreConfig {
  // chdb keys its connection registry by path string: always hand it the same absolute spelling.
  return { kind: "chdb", dataDir: resolve(dataDir) };
}

export function httpConfig(
  url: string,
  fallback: {
    username?: string | undefined;
    password?: string | undefined;
    database?: string | undefined;
  } = {},
): HttpStoreConfig {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`CLICKHOUSE_URL is not a URL: ${JSON.stringify(url)}`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new Error(`CLICKHOUSE_URL must be http:// or https://, got ${u.protocol}`);
  }
  const fromPath = decodeURIComponent(u.pathname.replace(/^\/+|\/+$/g, ""));
  const database = fromPath || fallback.database || "default";
  if (!IDENTIFIER.test(database)) {
    throw new Error(`ClickHouse database name must be an identifier, got ${JSON.stringify(database)}`);
  }
  return {
    kind: "http",
    url: u.origin,
    username: decodeURIComponent(u.username) || fallback.username || "default",
    password: decodeURIComponent(u.password) || fallback.password || "",
    database,
  };
}

/** For logs: never the password. */
export function describeStore(config: StoreConfig): string {
  return config.kind === "chdb"
    ? `chdb:${config.dataDir}`
    : `${config.url}/${config.database} (user ${config.username})`;
}
