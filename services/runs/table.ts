// The `runs` table (migration 003) and the run-scoped reads and deletes on `suspects`.
import type { ClickHouseSettings } from "@clickhouse/client";
import { VersionClock } from "../pipeline/version-clock.ts";
import { FINAL_SETTINGS } from "../store/final.ts";
import { LIVE_RUN, type Store } from "../store/index.ts";
import type { ChosenDetector } from "./spec.ts";

export type RunStatus = "running" | "done" | "failed" | "interrupted";

export interface RunSourceFiles {
  kind: "files";
  settlements: string;
  deaths: string | null;
}

export interface RunSourceTopics {
  kind: "topics";
  from: string;
  to: string;
  topics: string[];
  /** "topic:partition" → first offset, and → offset to stop at (exclusive). */
  start: Record<string, string>;
  end: Record<string, string>;
}

export type RunSource = RunSourceFiles | RunSourceTopics;

export interface RunRecord {
  name: string;
  source: RunSource;
  detectors: ChosenDetector[];
  config_hash: string;
  status: RunStatus;
  started_at: string;
  finished_at: string | null;
  events: number;
  bad_events: number;
  suspects: number;
  suspects_by_detector: Record<string, number>;
  error: string;
}

/** Wall-time microseconds, strictly increasing in this process and above `floor`. */
const rowClock = new VersionClock();

/** ISO-8601 → 'YYYY-MM-DD hh:mm:ss.sss' (UTC) for DateTime64(3, 'UTC'). */
const chTime = (iso: string) => new Date(Date.parse(iso)).toISOString().replace("T", " ").replace("Z", "");

export async function writeRun(store: Store, r: RunRecord): Promise<void> {
  await store.client.insert({
    table: "runs",
    format: "JSONEachRow",
    clickhouse_settings: { async_insert: 0 },
    values: [
      {
        name: r.name,
        source_kind: r.source.kind,
        source: JSON.stringify(r.source),
        detectors: r.detectors.map((d) => ({ id: d.id, version: d.version, config_hash: d.config_hash })),
        config: JSON.stringify(Object.fromEntries(r.detectors.map((d) => [d.id, d.config]))),
        config_hash: r.config_hash,
        status: r.status,
        started_at: chTime(r.started_at),
        finished_at: r.finished_at ? chTime(r.finished_at) : null,
        events: r.events,
        bad_events: r.bad_events,
        suspects: r.suspects,
        suspects_by_detector: r.suspects_by_detector,
        error: r.error,
        version: String(rowClock.next()),
      },
    ],
  });
}

interface RunReadRow {
  name: string;
  source: string;
  detectors: { id: string; version: string; config_hash: string }[];
  config: string;
  config_hash: string;
  status: RunStatus;
  started_ms: string | number;
  finished_ms: string | number | null;
  events: string | number;
  bad_events: string | number;
  suspects: string | number;
  suspects_by_detector: Record<string, string | number>;
  error: string;
}

const RUN_COLUMNS = `name, source, detectors, config, config_hash, status,
  toUnixTimestamp64Milli(started_at) AS started_ms,
  if(isNull(finished_at), NULL, toUnixTimestamp64Milli(assumeNotNull(finished_at))) AS finished_ms,
  events, bad_events, suspects, suspects_by_detector, error`;

function fromRow(r: RunReadRow): RunRecord {
  const configs = JSON.parse(r.config) as Record<string, unknown>;
  return {
    name: r.name,
    source: JSON.parse(r.source) as RunSource,
    detectors: r.detectors.map((d) => ({ ...d, config: configs[d.id] })),
    config_hash: r.config_hash,
    status: r.status,
    started_at: new Date(Number(r.started_ms)).toISOString(),
    finished_at: r.finished_ms === null ? null : new Date(Number(r.finished_ms)).toISOString(),
    events: Number(r.events),
    bad_events: Number(r.bad_events),
    suspects: Number(r.suspects),
    suspects_by_detector: Object.fromEntries(
      Object.entries(r.suspects_by_detector).map(([k, v]) => [k, Number(v)]),
    ),
    error: r.error,
  };
}

export async function getRun(store: Store, name: string): Promise<RunRecord | null> {
  const rows = await store.query<RunReadRow>(
    `SELECT ${RUN_COLUMNS} FROM runs FINAL WHERE name = {name:String}`,
    {
      name,
    },
  );
  return rows[0] ? fromRow(rows[0]) : null;
}

export async function listRuns(store: Store): Promise<RunRecord[]> {
  const rows = await store.query<RunReadRow>(
    `SELECT ${RUN_COLUMNS} FROM runs FINAL ORDER BY started_at DESC, name`,
  );
  return rows.map(fromRow);
}

/** FINAL reads filter changing columns (status) in WHERE, never PREWHERE (see services/store/README.md). */

/** Active suspects per detector of one run, from the store. */
export async function suspectCounts(store: Store, runId: string): Promise<Record<string, number>> {
  const rows = await store.query<{ detector: string; n: string | number }>(
    `SELECT detector, count() AS n FROM suspects FINAL
     WHERE run_id = {run:String} AND status = 'active'
     GROUP BY detector ORDER BY detector ${FINAL_SETTINGS}`,
    { run: runId },
  );
  return Object.fromEntries(rows.map((r) => [r.detector, Number(r.n)]));
}

/** Runs that have suspects but no row (the live stream's `live`, runs written by other tools). */
export async function runIdsWithoutRow(store: Store): Promise<string[]> {
  const rows = await store.query<{ run_id: string }>(
    "SELECT DISTINCT run_id FROM suspects WHERE run_id NOT IN (SELECT name FROM runs) ORDER BY run_id",
  );
  return rows.map((r) => r.run_id);
}

/** Deletes a run's suspects and its row (lightweight deletes, synchronous). Returns the suspect rows removed. */
export async function dropRun(store: Store, name: string): Promise<number> {
  const [count] = await store.query<{ n: string | number }>(
    "SELECT count() AS n FROM suspects WHERE run_id = {run:String}",
    { run: name },
  );
  const settings: ClickHouseSettings = { lightweight_deletes_sync: "2", mutations_sync: "2" };
  await store.client.command({
    query: "DELETE FROM suspects WHERE run_id = {run:String}",
    query_params: { run: name },
    clickhouse_settings: settings,
  });
  await store.client.command({
    query: "DELETE FROM runs WHERE name = {run:String}",
    query_params: { run: name },
    clickhouse_settings: settings,
  });
  return Number(count?.n ?? 0);
}

export { LIVE_RUN };
