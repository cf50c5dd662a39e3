// The API's reads over the store. Every statement is fixed text plus the WHERE fragments of
// filters.ts; values are bound parameters. Reads of `suspects` use FINAL (one row per
// finding, its latest version) with move-to-prewhere off, so filters on columns that change
// between versions are applied after de-duplication.
import type { Settlement } from "../../schemas/index.ts";
import { FINAL_SETTINGS, FINAL_SETTINGS_LIST } from "../store/final.ts";
import type { Store } from "../store/index.ts";
import { SETTLEMENT_COLUMNS, type SettlementReadRow, settlementFromRow } from "../store/rows.ts";
import type { User } from "./auth.ts";
import {
  type AggregateDimension,
  type AggregateQuery,
  type CaseStatus,
  chTime,
  type Filters,
  SORTS,
  type Sort,
  suspectWhere,
} from "./filters.ts";

/** The first window a newest/oldest page is looked for in, and the deepest page that tries it. */
const PROBE_WINDOW_MS = 31 * 86_400_000;
const PROBE_MAX_ROWS = 2_000;

/** Columns of a suspect row as the API reads them (64-bit numbers as text, exact on any backend). */
const ROW_COLUMNS = [
  "suspect_id",
  "detector",
  "rule",
  "severity",
  "person_id",
  "settlement_ids",
  "institution_id",
  "region_code",
  // Aliases never reuse a column name: ClickHouse resolves WHERE / ORDER BY names to aliases first.
  "toString(amount_at_risk_fen) AS amount_text",
  "event_time_iso",
  "detected_at_iso",
  "detector_version",
  "status AS state",
].join(", ");

export interface SuspectListRow {
  suspect_id: string;
  detector: string;
  rule: string;
  severity: string;
  person_id: string;
  settlement_ids: string[];
  institution_id: string;
  region_code: string;
  amount_text: string;
  event_time_iso: string;
  detected_at_iso: string;
  detector_version: string;
  state: "active" | "retracted";
  evidence?: string;
  /**
   * Related settlements (settlement_ids[1..]) the archive does not place in the user's regions;
   * set for users with a region scope only (absent there means not looked up: all are hidden).
   */
  hidden_related?: string[];
  case_status?: string;
  case_at?: string;
}

/** A stored version of a suspect, as the stream reads them (any run, newest versions last). */
export interface StoredSuspectRow extends SuspectListRow {
  run_id: string;
  /** The row's version (UInt64) as text. */
  version_text: string;
}

export interface CaseEventRow {
  status: CaseStatus;
  note: string;
  user: string;
  at: string;
}

const num = (v: unknown) => Number(v ?? 0);

/**
 * The `hidden_related` column for users with a region scope: each row's related settlements
 * that are not archived in {scope_regions} (unarchived ones count as hidden). The archive is
 * read once per statement, for the related settlements of the suspects `source` selects (a
 * superset of the rows read; settlement_ids never change between versions, so no FINAL); the
 * person only narrows that read by the archive's primary key (settlement ids are unique).
 */
function hiddenRelatedColumn(source: string): string {
  return `arrayFilter(x -> x NOT IN (
      SELECT settlement_id FROM settlements
      WHERE region_code IN {scope_regions:Array(String)}
        AND (person_id, settlement_id) IN (
          SELECT person_id, arrayJoin(arraySlice(settlement_ids, 2)) FROM suspects WHERE ${source})),
    arraySlice(settlement_ids, 2)) AS hidden_related`;
}

export class ApiQueries {
  constructor(
    private readonly store: Store,
    private readonly maskKey: string,
  ) {}

  async count(f: Filters, user: User): Promise<{ total: number; amount_at_risk_fen: number }> {
    const { where, params } = suspectWhere(f, user, this.maskKey);
    const rows = await this.store.query<{ n: string; amount: string }>(
      `SELECT toString(count()) AS n, toString(sum(amount_at_risk_fen)) AS amount
       FROM suspects FINAL WHERE ${where} ${FINAL_SETTINGS}`,
      params,
    );
    return { total: num(rows[0]?.n), amount_at_risk_fen: num(rows[0]?.amount) };
  }

  /**
   * Suspect rows written with a version above `after` (every run, every region: the stream
   * scopes them per connection), oldest version first. No FINAL: each version is an event.
   */
  storedAfter(after: string, limit: number): Promise<StoredSuspectRow[]> {
    return this.store.query<StoredSuspectRow>(
      `SELECT run_id, ${ROW_COLUMNS}, toString(version) AS version_text
       FROM suspects WHERE version > {after:UInt64}
       ORDER BY version LIMIT {limit:UInt32}`,
      { after, limit },
    );
  }

  /** The highest suspect row version stored, as text ("0" for none). */
  async newestVersion(): Promise<string> {
    const [r] = await this.store.query<{ v: string }>("SELECT toString(max(version)) AS v FROM suspects");
    return r?.v ?? "0";
  }

  /** Which of `ids` match the filters for this user now (the list's own WHERE, under FINAL). */
  async matching(f: Filters, user: User, ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const { where, params } = suspectWhere(f, user, this.maskKey);
    const rows = await this.store.query<{ suspect_id: string }>(
      `SELECT suspect_id FROM suspects FINAL
       WHERE ${where} AND suspect_id IN {stream_ids:Array(String)} ${FINAL_SETTINGS}`,
      { ...params, stream_ids: [...ids] },
    );
    return rows.map((r) => r.suspect_id);
  }

  /** One page, sorted by a whitelisted order, with each suspect's current case status. */
  async page(
    f: Filters,
    user: User,
    o: { sort: Sort; limit: number; offset: number },
  ): Promise<SuspectListRow[]> {
    const { where, params } = suspectWhere(f, user, this.maskKey);
    const order = SORTS[o.sort];
    const select = (extra: string, extraParams: Record<string, unknown>) =>
      this.store.query<SuspectListRow>(
        `SELECT ${ROW_COLUMNS}
         FROM suspects FINAL WHERE ${where} ${extra}
         ORDER BY ${order}
         LIMIT {limit:UInt32} OFFSET {offset:UInt32} ${FINAL_SETTINGS}`,
        { ...params, ...extraParams, limit: o.limit, offset: o.offset },
      );
    let rows: SuspectListRow[] | undefined;
    // Newest / oldest first: try the most recent (earliest) month of the match first. The
    // event_time minmax index then skips most granules, and FINAL de-duplicates only those.
    // If that window holds fewer rows than offset + limit, the whole match is read after all.
    if ((o.sort === "newest" || o.sort === "oldest") && o.offset + o.limit <= PROBE_MAX_ROWS) {
      const edge = await this.timeEdge(f, user, o.sort === "newest" ? "max" : "min");
      if (edge !== null) {
        const cutoff = o.sort === "newest" ? edge - PROBE_WINDOW_MS : edge + PROBE_WINDOW_MS;
        const probe = await select(
          o.sort === "newest"
            ? "AND event_time >= {probe_cutoff:DateTime64(3, 'UTC')}"
            : "AND event_time <= {probe_cutoff:DateTime64(3, 'UTC')}",
          { probe_cutoff: chTime(cutoff) },
        );
        if (probe.length === o.limit) rows = probe;
      }
    }
    rows ??= await select("", {});
    if (rows.length === 0) return rows;
    await this.markHiddenRelated(rows, user);
    const status = await this.caseStatuses(
      f.run_id,
      rows.map((r) => r.suspect_id),
    );
    for (const r of rows) {
      const c = status.get(r.suspect_id);
      r.case_status = c?.status ?? "new";
      if (c) r.case_at = c.at;
    }
    return rows;
  }

  /**
   * The latest (or earliest) event time over a superset of the match (no FINAL: event_time
   * never changes between versions), as epoch ms; null when nothing matches.
   */
  private async timeEdge(f: Filters, user: User, fn: "max" | "min"): Promise<number | null> {
    const { where, params } = suspectWhere(f, user, this.maskKey, { immutableOnly: true });
    const rows = await this.store.query<{ n: string; edge: string }>(
      `SELECT toString(count()) AS n, toString(toUnixTimestamp64Milli(${fn === "max" ? "max" : "min"}(event_time))) AS edge
       FROM suspects WHERE ${where}`,
      params,
    );
    const r = rows[0];
    return r && Number(r.n) > 0 ? Number(r.edge) : null;
  }

  /**
   * Sets `hidden_related` on rows read for a user with a region scope: one look-up in the
   * archive for the (person, settlement) pairs of the rows' related settlements.
   */
  private async markHiddenRelated(rows: SuspectListRow[], user: User): Promise<void> {
    if (user.regions === null) return;
    const related = rows.filter((r) => r.settlement_ids.length > 1);
    if (related.length === 0) return;
    const visible = await this.store.query<{ settlement_id: string }>(
      `SELECT DISTINCT settlement_id FROM settlements
       WHERE person_id IN {persons:Array(String)} AND settlement_id IN {ids:Array(String)}
         AND region_code IN {scope_regions:Array(String)}`,
      {
        persons: [...new Set(related.map((r) => r.person_id))],
        ids: [...new Set(related.flatMap((r) => r.settlement_ids.slice(1)))],
        scope_regions: [...user.regions],
      },
    );
    const shown = new Set(visible.map((v) => v.settlement_id));
    for (const r of related) r.hidden_related = r.settlement_ids.slice(1).filter((id) => !shown.has(id));
  }

  /** Latest workflow status of the given suspects (all of the run when `ids` is omitted). */
  async caseStatuses(
    runId: string,
    ids?: string[],
  ): Promise<Map<string, { status: CaseStatus; at: string }>> {
    const rows = await this.store.query<{ suspect_id: string; status: CaseStatus; at: string }>(
      `SELECT suspect_id, toString(argMax(case_events.status, case_events.at)) AS status,
              concat(replaceOne(toString(max(case_events.at)), ' ', 'T'), 'Z') AS at
       FROM case_events
       WHERE run_id = {run_id:String} ${ids ? "AND suspect_id IN {ids:Array(String)}" : ""}
       GROUP BY suspect_id`,
      ids ? { run_id: runId, ids } : { run_id: runId },
    );
    return new Map(rows.map((r) => [r.suspect_id, { status: r.status, at: r.at }]));
  }

  /** Rows for an export, streamed; sorting-key order (read in order, flat memory) unless `sort` is given. */
  exportRows(f: Filters, user: User, o: { sort?: Sort; limit?: number }): AsyncIterable<SuspectListRow> {
    const { where, params } = suspectWhere(f, user, this.maskKey);
    const order = o.sort ? SORTS[o.sort] : "region_code, detector, toYYYYMM(event_time), suspect_id";
    const limit = o.limit !== undefined ? "LIMIT {limit:UInt64}" : "";
    const hidden =
      user.regions !== null
        ? `, ${hiddenRelatedColumn(suspectWhere(f, user, this.maskKey, { immutableOnly: true }).where)}`
        : "";
    return this.store.stream<SuspectListRow>(
      `SELECT ${ROW_COLUMNS}, evidence${hidden}
       FROM suspects FINAL WHERE ${where}
       ORDER BY ${order} ${limit}
       SETTINGS max_block_size = 8192, ${FINAL_SETTINGS_LIST}`,
      o.limit !== undefined ? { ...params, limit: o.limit } : params,
    );
  }

  /**
   * Counts and amounts at risk grouped by each requested dimension, in one FINAL pass
   * (GROUPING SETS). The workflow status comes from a join with the (small) case history.
   */
  async aggregates(q: AggregateQuery, user: User): Promise<Partial<Record<AggregateDimension, AggRow[]>>> {
    const dims = new Set<AggregateDimension>(
      q.by ?? ["detector", "rule", "severity", "region", "institution", "month", "status"],
    );
    const { where, params } = suspectWhere(q, user, this.maskKey);
    const sets: [AggregateDimension, string[]][] = [
      ["detector", ["detector"]],
      ["rule", ["detector", "rule"]],
      ["severity", ["severity"]],
      ["region", ["region_code"]],
      ["institution", ["institution_id"]],
      ["month", ["month"]],
      ["status", ["case_status"]],
    ];
    const chosen = sets.filter(([d]) => dims.has(d));
    const needStatus = dims.has("status");
    // grouping() may only name GROUP BY keys: the columns of the chosen sets, in a fixed order.
    const keys = [...new Set(chosen.flatMap(([, cols]) => cols))];
    const bit = (col: string) => 1 << (keys.length - 1 - keys.indexOf(col));
    // A row of set S has grouping() bits set exactly for the key columns outside S.
    const maskOf = (cols: string[]) => keys.filter((k) => !cols.includes(k)).reduce((m, k) => m | bit(k), 0);
    const setOfMask = new Map(chosen.map(([d, cols]) => [maskOf(cols), d]));
    const source = needStatus
      ? `(SELECT detector, rule, severity, region_code, institution_id, toYYYYMM(event_time) AS month,
                amount_at_risk_fen, suspect_id
         FROM suspects FINAL WHERE ${where} ${FINAL_SETTINGS}) AS s
         LEFT JOIN (SELECT suspect_id, toString(argMax(status, at)) AS latest FROM case_events
                    WHERE run_id = {run_id:String} GROUP BY suspect_id) AS c ON s.suspect_id = c.suspect_id`
      : `(SELECT detector, rule, severity, region_code, institution_id, toYYYYMM(event_time) AS month,
                amount_at_risk_fen
         FROM suspects FINAL WHERE ${where} ${FINAL_SETTINGS}) AS s`;
    const rows = await this.store.query<{
      g: number | string;
      detector: string;
      rule: string;
      severity: string;
      region_code: string;
      institution_id: string;
      month: number | string;
      case_status: string;
      n: string;
      amount: string;
    }>(
      `SELECT grouping(${keys.join(", ")}) AS g,
              ${["detector", "rule", "severity", "region_code", "institution_id"]
                .map((c) => (keys.includes(c) ? c : `'' AS ${c}`))
                .join(", ")},
              ${keys.includes("month") ? "month" : "0 AS month"},
              ${needStatus ? "if(c.latest = '', 'new', c.latest)" : "''"} AS case_status,
              toString(count()) AS n, toString(sum(amount_at_risk_fen)) AS amount
       FROM ${source}
       GROUP BY GROUPING SETS (${chosen.map(([, cols]) => `(${cols.join(", ")})`).join(", ")})`,
      params,
    );
    const out: Partial<Record<AggregateDimension, AggRow[]>> = {};
    for (const [d] of chosen) out[d] = [];
    for (const r of rows) {
      const set = setOfMask.get(Number(r.g));
      if (!set) continue;
      const key =
        set === "detector"
          ? r.detector
          : set === "rule"
            ? r.rule
            : set === "severity"
              ? r.severity
              : set === "region"
                ? r.region_code
                : set === "institution"
                  ? r.institution_id
                  : set === "month"
                    ? monthKey(r.month)
                    : r.case_status;
      out[set]?.push({
        key,
        ...(set === "rule" ? { detector: r.detector } : {}),
        count: num(r.n),
        amount_at_risk_fen: num(r.amount),
      });
    }
    const byAmount = (a: AggRow, b: AggRow) =>
      b.amount_at_risk_fen - a.amount_at_risk_fen || b.count - a.count || (a.key < b.key ? -1 : 1);
    for (const d of ["detector", "rule", "severity", "region", "status", "institution"] as const)
      out[d]?.sort(byAmount);
    if (out.institution) out.institution = out.institution.slice(0, q.top);
    out.month?.sort((a, b) => (a.key < b.key ? -1 : 1));
    return out;
  }

  /** Distinct region codes with suspects in a run, within the user's scope (filter choices). */
  async regions(runId: string, user: User): Promise<string[]> {
    const scope = user.regions !== null ? "AND region_code IN {scope:Array(String)}" : "";
    const rows = await this.store.query<{ region_code: string }>(
      `SELECT DISTINCT region_code FROM suspects WHERE run_id = {run_id:String} ${scope} ORDER BY region_code`,
      user.regions !== null ? { run_id: runId, scope: [...user.regions] } : { run_id: runId },
    );
    return rows.map((r) => r.region_code);
  }

  async suspect(runId: string, id: string, user: User): Promise<SuspectListRow | null> {
    const of = "run_id = {run_id:String} AND suspect_id = {id:String}";
    const scoped = user.regions !== null;
    const rows = await this.store.query<SuspectListRow & { version: string }>(
      `SELECT ${ROW_COLUMNS}, evidence, toString(version) AS version${scoped ? `, ${hiddenRelatedColumn(of)}` : ""}
       FROM suspects FINAL
       WHERE ${of} ${scoped ? "AND region_code IN {scope_regions:Array(String)}" : ""} ${FINAL_SETTINGS}`,
      user.regions !== null ? { run_id: runId, id, scope_regions: [...user.regions] } : { run_id: runId, id },
    );
    return rows[0] ?? null;
  }

  async history(runId: string, id: string): Promise<CaseEventRow[]> {
    return this.store.query<CaseEventRow>(
      `SELECT status, note, user, concat(replaceOne(toString(case_events.at), ' ', 'T'), 'Z') AS at
       FROM case_events WHERE run_id = {run_id:String} AND suspect_id = {id:String}
       ORDER BY case_events.at, case_events.status`,
      { run_id: runId, id },
    );
  }

  async appendCaseEvent(e: {
    runId: string;
    id: string;
    status: CaseStatus;
    note: string;
    user: string;
  }): Promise<void> {
    await this.store.appendCaseEvent({
      runId: e.runId,
      suspectId: e.id,
      status: e.status,
      note: e.note,
      user: e.user,
    });
  }

  /** The person's settlements with the given ids (the ones a finding names), full records. */
  async settlements(personId: string, ids: string[], user: User): Promise<Settlement[]> {
    const scope = user.regions !== null ? "AND region_code IN {scope:Array(String)}" : "";
    const rows = await this.store.query<SettlementReadRow>(
      `SELECT ${SETTLEMENT_COLUMNS} FROM settlements FINAL
       WHERE person_id = {person:String} AND settlement_id IN {ids:Array(String)} ${scope}
       ORDER BY settled_at, settlement_id`,
      { person: personId, ids, ...(user.regions !== null ? { scope: [...user.regions] } : {}) },
    );
    return rows.map(settlementFromRow);
  }

  /**
   * The person's settlements admitted within `days` of `aroundMs` (a summary per settlement,
   * items left out), and how many more there are in regions the user may not see.
   */
  async timeline(
    personId: string,
    aroundMs: number,
    days: number,
    user: User,
  ): Promise<{ rows: TimelineRow[]; hidden: number; truncated: boolean }> {
    const from = new Date(aroundMs - days * 86_400_000 + 8 * 3600_000).toISOString().slice(0, 10);
    const to = new Date(aroundMs + days * 86_400_000 + 8 * 3600_000).toISOString().slice(0, 10);
    const base = "person_id = {person:String} AND admission_date BETWEEN {from:Date32} AND {to:Date32}";
    const params: Record<string, unknown> = { person: personId, from, to, limit: TIMELINE_LIMIT + 1 };
    let scope = "";
    if (user.regions !== null) {
      scope = "AND region_code IN {scope:Array(String)}";
      params.scope = [...user.regions];
    }
    const rows = await this.store.query<TimelineRow>(
      `SELECT settlement_id, event_type, original_settlement_id,
              visit_type, institution_id, institution_name, region_code,
              admission_date, discharge_date, discharge_reason, settled_at_iso,
              toString(total_fen) AS total_text, toString(fund_paid_fen) AS fund_paid_text,
              arrayMap(d -> tuple(d.code, d.name), arrayFilter(d -> d.primary, diagnoses)) AS primary_diagnoses
       FROM settlements FINAL
       WHERE ${base} ${scope}
       ORDER BY admission_date, settled_at, settlement_id
       LIMIT {limit:UInt32}`,
      params,
    );
    let hidden = 0;
    if (user.regions !== null) {
      const h = await this.store.query<{ n: string }>(
        `SELECT toString(count()) AS n FROM settlements FINAL
         WHERE ${base} AND region_code NOT IN {scope:Array(String)}`,
        { person: personId, from, to, scope: [...user.regions] },
      );
      hidden = num(h[0]?.n);
    }
    const truncated = rows.length > TIMELINE_LIMIT;
    return { rows: rows.slice(0, TIMELINE_LIMIT), hidden, truncated };
  }

  async death(
    personId: string,
  ): Promise<{ person_id: string; death_date: string; source: string; reported_at: string } | null> {
    const rows = await this.store.query<{
      person_id: string;
      death_date: string;
      source: string;
      reported_at: string;
    }>(
      `SELECT person_id, death_date, source, reported_at_iso AS reported_at
       FROM deaths FINAL WHERE person_id = {person:String}`,
      { person: personId },
    );
    return rows[0] ?? null;
  }

  /** Names of institutions, from the settlement archive; cached (names rarely change). */
  async institutionNames(ids: string[]): Promise<Map<string, string>> {
    const now = Date.now();
    const missing = ids.filter((id) => {
      const c = this.nameCache.get(id);
      return !c || now - c.at > 600_000;
    });
    if (missing.length > 0) {
      const rows = await this.store.query<{ institution_id: string; name: string }>(
        `SELECT institution_id, any(institution_name) AS name FROM settlements
         WHERE institution_id IN {ids:Array(String)} GROUP BY institution_id`,
        { ids: missing },
      );
      const found = new Map(rows.map((r) => [r.institution_id, r.name]));
      for (const id of missing) this.nameCache.set(id, { name: found.get(id) ?? "", at: now });
      if (this.nameCache.size > 50_000) this.nameCache.clear();
    }
    return new Map(ids.map((id) => [id, this.nameCache.get(id)?.name ?? ""]));
  }
  private readonly nameCache = new Map<string, { name: string; at: number }>();

  /** The audit log, newest first; `scope` (see auditScope) limits it to callers within those regions. */
  async audit(
    q: {
      who?: string;
      route?: string;
      from?: number;
      to?: number;
      limit: number;
      offset: number;
    },
    scope: readonly string[] | null,
  ): Promise<{ total: number; rows: AuditRow[] }> {
    const conds = ["1"];
    const params: Record<string, unknown> = { limit: q.limit, offset: q.offset };
    if (scope !== null) {
      conds.push(
        "NOT caller_all_regions AND notEmpty(caller_regions) AND hasAll({scope:Array(String)}, caller_regions)",
      );
      params.scope = scope;
    }
    if (q.who !== undefined) {
      conds.push("who = {who:String}");
      params.who = q.who;
    }
    if (q.route !== undefined) {
      conds.push("route = {route:String}");
      params.route = q.route;
    }
    if (q.from !== undefined) {
      conds.push("audit_log.at >= {from:DateTime64(3, 'UTC')}");
      params.from = chTime(q.from);
    }
    if (q.to !== undefined) {
      conds.push("audit_log.at < {to:DateTime64(3, 'UTC')}");
      params.to = chTime(q.to);
    }
    const where = conds.join(" AND ");
    const [count, rows] = [
      await this.store.query<{ n: string }>(
        `SELECT toString(count()) AS n FROM audit_log WHERE ${where}`,
        params,
      ),
      await this.store.query<Omit<AuditRow, "filters" | "rows"> & { filters: string; rows: string }>(
        `SELECT concat(replaceOne(toString(at), ' ', 'T'), 'Z') AS at, who, route, filters,
                toString(audit_log.rows) AS rows, address, user_agent, token_label
         FROM audit_log WHERE ${where}
         ORDER BY audit_log.at DESC, who LIMIT {limit:UInt32} OFFSET {offset:UInt32}`,
        params,
      ),
    ];
    return {
      total: num(count[0]?.n),
      rows: rows.map((r) => ({ ...r, filters: safeJson(r.filters), rows: num(r.rows) })),
    };
  }
}

export interface AuditRow {
  at: string;
  who: string;
  route: string;
  filters: unknown;
  rows: number;
  address: string;
  user_agent: string;
  token_label: string;
}

const TIMELINE_LIMIT = 500;

export interface TimelineRow {
  settlement_id: string;
  event_type: string;
  original_settlement_id: string | null;
  visit_type: string;
  institution_id: string;
  institution_name: string;
  region_code: string;
  admission_date: string;
  discharge_date: string;
  discharge_reason: string | null;
  settled_at_iso: string;
  total_text: string;
  fund_paid_text: string;
  primary_diagnoses: [string, string][] | { code: string; name: string }[];
}

export interface AggRow {
  key: string;
  detector?: string;
  count: number;
  amount_at_risk_fen: number;
}

function monthKey(m: number | string): string {
  const s = String(m);
  return `${s.slice(0, 4)}-${s.slice(4, 6)}`;
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}
