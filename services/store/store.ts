// The ClickHouse store: open (client + migrations), writers for the stream's outputs, and
// the reads the CLI needs. SQL only ever takes values through bound `query_params`.
import type { ClickHouseClient } from "@clickhouse/client";
import type { DeathRecord, Settlement, Suspect } from "../../schemas/index.ts";
import type { Change } from "../engine/engine.ts";
import {
  type ArchiveFallback,
  type ArchiveRecord,
  archiveEvent,
  archiveKind,
  cutBodies,
  isDataError,
  type RawArchiveRecord,
} from "./archive.ts";
import { importAuditSpool } from "./audit-spool.ts";
import { type Backend, openBackend, type QueryParams, type RawFormat } from "./backend.ts";
import { type StoreConfig, storeConfigFromEnv } from "./config.ts";
import { FINAL_SETTINGS_LIST } from "./final.ts";
import { type MigrateResult, migrate } from "./migrate.ts";
import {
  type DeathReadRow,
  deathFromRow,
  deathRow,
  SETTLEMENT_COLUMNS,
  type SettlementReadRow,
  SUSPECT_COLUMNS,
  type SuspectReadRow,
  settlementFromRow,
  settlementRow,
  suspectFromRow,
  suspectRow,
} from "./rows.ts";

export const LIVE_RUN = "live";

/** Bits of a row version given to the index of a change within one input event. */
export const VERSION_INDEX_BITS = 20;
const MAX_UINT64 = (1n << 64n) - 1n;

/**
 * The row version of the `index`-th change produced by the input event at `position`
 * (a partition offset or a file line): position × 2^20 + index. A replay of the same input
 * rewrites the same versions, so a re-delivered batch can never overturn a later state.
 */
export function eventVersion(position: bigint | number, index: number): bigint {
  if (!Number.isInteger(index) || index < 0 || index >= 2 ** VERSION_INDEX_BITS) {
    throw new RangeError(`change index ${index} is outside [0, 2^${VERSION_INDEX_BITS})`);
  }
  const pos = BigInt(position);
  if (pos < 0n) throw new RangeError(`input position ${position} is negative`);
  return checkVersion((pos << BigInt(VERSION_INDEX_BITS)) + BigInt(index));
}

function checkVersion(v: bigint | number): bigint {
  if (typeof v === "number" && !Number.isSafeInteger(v)) {
    throw new RangeError(`version ${v} is not a safe integer; pass a bigint`);
  }
  const b = BigInt(v);
  if (b < 0n || b > MAX_UINT64) throw new RangeError(`version ${v} does not fit UInt64`);
  return b;
}

export interface WriteChangesOptions {
  /** `live` for the stream; a replay or experiment writes its own run. */
  runId?: string;
  /** The row version of each change (see eventVersion). Higher versions win. */
  versionOf: (change: Change, index: number) => bigint | number;
  /** Hash of the detector configuration that produced the changes, for changes without their own `configHash`. */
  configHash?: string;
}

export interface CaseEvent {
  runId?: string;
  suspectId: string;
  status: "under_review" | "confirmed" | "dismissed";
  note?: string;
  user: string;
  /** ISO-8601; the server's clock when omitted. */
  at?: string;
}

export interface AuditEntry {
  who: string;
  route: string;
  filters: Record<string, unknown>;
  rows: number;
  at?: string;
  address?: string;
  userAgent?: string;
  tokenLabel?: string;
  /** The caller's region grants; null: every region (default: none recorded). */
  callerRegions?: readonly string[] | null;
  id?: string;
}

export interface OpenStoreOptions {
  /** Apply pending migrations at open (default true). */
  migrate?: boolean;
  /** Rows per INSERT statement; larger writes are split (each part is atomic on its own). */
  insertChunkRows?: number;
}

/**
 * Inserts are synchronous whatever the server's default: the promise resolves once the part is on
 * disk. Embedded chdb has no server default to override, and its connection turns settings into a
 * `SET …;` statement in front of the INSERT, which measured about a quarter slower, so it gets none.
 */
const INSERT_SETTINGS = { async_insert: 0 } as const;

/** How often a process holding the embedded store imports the CLI's spooled audit rows. */
const SPOOL_IMPORT_MS = 1_000;

export class Store {
  readonly migrations: MigrateResult;
  private readonly chunkRows: number;
  private spoolTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly backend: Backend,
    migrations: MigrateResult,
    opts: OpenStoreOptions,
  ) {
    this.migrations = migrations;
    this.chunkRows = opts.insertChunkRows ?? 10_000;
  }

  static async open(config: StoreConfig = storeConfigFromEnv(), opts: OpenStoreOptions = {}): Promise<Store> {
    const backend = await openBackend(config);
    try {
      const result =
        opts.migrate === false
          ? { applied: [], current: 0 }
          : await migrate(backend.client, undefined, { createDatabase: backend.createDatabase });
      const store = new Store(backend, result, opts);
      if (config.kind === "chdb" && opts.migrate !== false) store.importSpool(config.dataDir);
      return store;
    } catch (err) {
      await backend.close();
      throw err;
    }
  }

  get kind(): StoreConfig["kind"] {
    return this.backend.kind;
  }

  /** The underlying client, for callers with their own (bound) queries. */
  get client(): ClickHouseClient {
    return this.backend.client;
  }

  /** The client of API requests' statements (see Backend.requestClient). */
  get requestClient(): ClickHouseClient {
    return this.backend.requestClient;
  }

  /**
   * Upserts as `active` rows, retractions as `retracted` rows carrying the same suspect content.
   * Resolves once every row is written to disk, so a consumer may commit its offsets then.
   */
  async writeChanges(changes: readonly Change[], opts: WriteChangesOptions): Promise<number> {
    const runId = opts.runId ?? LIVE_RUN;
    const rows = changes.map((change, i) =>
      suspectRow(change.suspect, change.op === "upsert" ? "active" : "retracted", {
        runId,
        // A change carries the hash of the config that decided it; the option is the fallback.
        configHash: change.configHash ?? opts.configHash ?? "",
        version: checkVersion(opts.versionOf(change, i)),
      }),
    );
    await this.insert(this.backend.client, "suspects", rows);
    return rows.length;
  }

  /** Archives settlement events; re-delivery of a settlement_id collapses to one row. */
  async writeSettlements(events: readonly Settlement[]): Promise<number> {
    await this.insert(this.backend.client, "settlements", events.map(settlementRow));
    return events.length;
  }

  /** Death records; per person the latest `reported_at` wins. */
  async writeDeaths(records: readonly DeathRecord[]): Promise<number> {
    await this.insert(this.backend.client, "deaths", records.map(deathRow));
    return records.length;
  }

  /**
   * Archives valid input records from their own bytes (`format`: how `raw` is written), settlements
   * before deaths, each table durable on return. Where ClickHouse refuses a table's bytes as data
   * (a parse error, not an outage, which is thrown for the caller to retry), that table's records
   * go in through the JS rows instead (writeSettlements / writeDeaths), and the refusal is returned.
   */
  async archive(
    records: readonly (ArchiveRecord | RawArchiveRecord)[],
    format: RawFormat,
    opts: { registryUrl?: string } = {},
  ): Promise<ArchiveFallback[]> {
    const settlements = records.filter((r) => archiveKind(r) === "settlement");
    const deaths = records.filter((r) => archiveKind(r) === "death");
    const fallbacks: ArchiveFallback[] = [];
    const raw = async (
      table: "settlements_in" | "deaths_in",
      of: readonly (ArchiveRecord | RawArchiveRecord)[],
      js: () => Promise<unknown>,
    ) => {
      if (of.length === 0) return;
      try {
        for (const chunks of cutBodies(of.map((r) => r.raw))) {
          await this.backend.insertRaw({ table, format, chunks, registryUrl: opts.registryUrl });
        }
      } catch (err) {
        if (!isDataError(err)) throw err;
        // Bodies before the refused one may be in already: the tables collapse re-writes.
        await js();
        fallbacks.push({ table, format, message: err instanceof Error ? err.message : String(err) });
      }
    };
    const values = async (of: typeof records) =>
      (await Promise.all(of.map(archiveEvent))).map((e) => e.value);
    await raw("settlements_in", settlements, async () =>
      this.writeSettlements((await values(settlements)) as Settlement[]),
    );
    await raw("deaths_in", deaths, async () => this.writeDeaths((await values(deaths)) as DeathRecord[]));
    return fallbacks;
  }

  async appendCaseEvent(e: CaseEvent): Promise<void> {
    await this.insert(this.backend.requestClient, "case_events", [
      {
        run_id: e.runId ?? LIVE_RUN,
        suspect_id: e.suspectId,
        status: e.status,
        note: e.note ?? "",
        user: e.user,
        ...(e.at ? { at: isoToClickHouse(e.at) } : {}),
      },
    ]);
  }

  /** Audit rows, written in one INSERT (resolves once they are on disk). */
  async appendAudit(entries: AuditEntry | readonly AuditEntry[]): Promise<void> {
    const list = Array.isArray(entries) ? entries : [entries as AuditEntry];
    await this.insert(
      this.backend.requestClient,
      "audit_log",
      list.map((e) => ({
        who: e.who,
        route: e.route,
        filters: JSON.stringify(e.filters),
        rows: e.rows,
        ...(e.at ? { at: isoToClickHouse(e.at) } : {}),
        address: e.address ?? "",
        user_agent: e.userAgent ?? "",
        token_label: e.tokenLabel ?? "",
        caller_regions: e.callerRegions ?? [],
        caller_all_regions: e.callerRegions === null,
        id: e.id ?? "",
      })),
    );
  }

  /**
   * The active suspects of a run, each finding once (its highest version), in the contract's
   * shape (`schemas/suspect.ts`), streamed in sorting-key order (read in order, no sort
   * buffer). Small blocks keep memory flat: with the default 65k-row blocks an ordered FINAL
   * read of 1M suspects peaked near 1.2 GB RSS on chdb, with 8k-row blocks it stays ~0.6 GB.
   */
  async *exportSuspects(opts: { runId?: string } = {}): AsyncIterable<Suspect> {
    const rows = this.backend.stream<SuspectReadRow>(
      `SELECT ${SUSPECT_COLUMNS}
       FROM suspects FINAL
       WHERE run_id = {run_id:String} AND status = 'active'
       ORDER BY region_code, detector, toYYYYMM(event_time), suspect_id
       SETTINGS max_block_size = 8192, ${FINAL_SETTINGS_LIST}`,
      { run_id: opts.runId ?? LIVE_RUN },
    );
    for await (const row of rows) yield suspectFromRow(row);
  }

  /** Current state of one suspect, retracted ones included (null: never written). */
  async getSuspect(
    suspectId: string,
    opts: { runId?: string } = {},
  ): Promise<{ suspect: Suspect; status: "active" | "retracted"; version: bigint } | null> {
    const rows = await this.query<SuspectReadRow & { status: "active" | "retracted"; version: string }>(
      `SELECT ${SUSPECT_COLUMNS}, status, toString(version) AS version
       FROM suspects FINAL
       WHERE run_id = {run_id:String} AND suspect_id = {suspect_id:String}`,
      { run_id: opts.runId ?? LIVE_RUN, suspect_id: suspectId },
    );
    const r = rows[0];
    return r ? { suspect: suspectFromRow(r), status: r.status, version: BigInt(r.version) } : null;
  }

  /** One person's archived settlements in event-time order (the case view's timeline). */
  async personSettlements(personId: string): Promise<Settlement[]> {
    const rows = await this.query<SettlementReadRow>(
      `SELECT ${SETTLEMENT_COLUMNS}
       FROM settlements FINAL
       WHERE person_id = {person_id:String}
       ORDER BY settled_at, settlement_id`,
      { person_id: personId },
    );
    return rows.map(settlementFromRow);
  }

  async deathOf(personId: string): Promise<DeathRecord | null> {
    const rows = await this.query<DeathReadRow>(
      "SELECT person_id, death_date, source, reported_at_iso FROM deaths FINAL WHERE person_id = {person_id:String}",
      { person_id: personId },
    );
    return rows[0] ? deathFromRow(rows[0]) : null;
  }

  /** A bound query whose (small) result is returned whole. */
  async query<T>(query: string, params: QueryParams = {}): Promise<T[]> {
    const rs = await this.backend.requestClient.query({
      query,
      query_params: params,
      format: "JSONEachRow",
    });
    return rs.json<T>();
  }

  /** A bound query whose rows are streamed (use for anything that can be large). */
  stream<T>(query: string, params: QueryParams = {}): AsyncIterable<T> {
    return this.backend.stream<T>(query, params);
  }

  async close(): Promise<void> {
    clearTimeout(this.spoolTimer);
    this.spoolTimer = undefined;
    await this.backend.close();
  }

  /** Imports spooled CLI audit rows now and then every second while open (errors: retried). */
  private importSpool(dataDir: string): void {
    const tick = () => {
      importAuditSpool(this, dataDir)
        .catch(() => undefined)
        .finally(() => {
          if (this.spoolTimer) this.spoolTimer = setTimeout(tick, SPOOL_IMPORT_MS).unref();
        });
    };
    this.spoolTimer = setTimeout(tick, 0).unref();
  }

  private async insert<R extends object>(
    client: ClickHouseClient,
    table: string,
    rows: readonly R[],
  ): Promise<void> {
    for (let i = 0; i < rows.length; i += this.chunkRows) {
      await client.insert({
        table,
        values: rows.slice(i, i + this.chunkRows),
        format: "JSONEachRow",
        clickhouse_settings: this.backend.kind === "http" ? INSERT_SETTINGS : undefined,
      });
    }
  }
}

/** Opens the store from `config` (default: the environment) and applies pending migrations. */
export function openStore(config?: StoreConfig, opts?: OpenStoreOptions): Promise<Store> {
  return Store.open(config, opts);
}

/** ISO-8601 with offset → 'YYYY-MM-DD hh:mm:ss.sss' in UTC, for DateTime64(3, 'UTC') columns. */
function isoToClickHouse(iso: string): string {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) throw new RangeError(`not an ISO-8601 time: ${iso}`);
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}
