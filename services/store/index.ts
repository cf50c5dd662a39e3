// The ClickHouse store: client factory (HTTP server or embedded chdb), migrations, writers, queries.
export {
  type ArchiveFallback,
  type ArchiveRecord,
  ndjsonArchiveBytes,
  type RawArchiveRecord,
} from "./archive.ts";
export { type Backend, StoreLockedError } from "./backend.ts";
export {
  type ChdbStoreConfig,
  chdbConfig,
  describeStore,
  type HttpStoreConfig,
  httpConfig,
  type StoreConfig,
  storeConfigFromEnv,
} from "./config.ts";
export { loadMigrations, type MigrateResult, type Migration, migrate } from "./migrate.ts";
export {
  type AuditEntry,
  type CaseEvent,
  eventVersion,
  LIVE_RUN,
  type OpenStoreOptions,
  openStore,
  Store,
  VERSION_INDEX_BITS,
  type WriteChangesOptions,
} from "./store.ts";
