// The nightly-batch baseline bureaus run today: the contract's rules as plain SQL over the
// settlement archive in ClickHouse. The bench times it and checks it finds what the stream found.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { BUNDLED_REFERENCE_DIR } from "../../detectors/catalog.ts";
import { chdbConfig, openStore, type Store } from "../../services/store/index.ts";

/** Completed years between two Date32 expressions. */
const age = (birth: string, on: string) =>
  `(toYear(${on}) - toYear(${birth}) - if(formatDateTime(${on}, '%m%d') < formatDateTime(${birth}, '%m%d'), 1, 0))`;

/** All prefixes of a code, for longest-prefix joins against a catalog. */
const prefixes = (code: string) => `arrayMap(i -> substring(${code}, 1, i), range(1, length(${code}) + 1))`;

const SETUP = [
  "DROP TABLE IF EXISTS batch_eff",
  `CREATE TABLE batch_eff ENGINE = MergeTree ORDER BY (person_id, settlement_id) AS
     SELECT *, settled_at FROM settlements FINAL
     WHERE event_type = 'SETTLE'
       AND settlement_id NOT IN (SELECT original_settlement_id FROM settlements FINAL WHERE event_type = 'REVERSAL')`,
];

/** rule → query returning the suspect settlement ids. */
export const BATCH_RULES: Record<string, string> = {
  "pediatric_drug/pediatric_drug": `
    SELECT DISTINCT settlement_id FROM (
      SELECT settlement_id, line_no, any(sdate) AS sdate, any(birth_date) AS birth,
             argMax(age_limit, length(prefix)) AS lim
      FROM (SELECT settlement_id, birth_date, item.1 AS line_no, item.2 AS code, item.8 AS sdate
            FROM batch_eff ARRAY JOIN items AS item WHERE item.4 = 'DRUG')
      ARRAY JOIN ${prefixes("code")} AS prefix
      INNER JOIN batch_pediatric AS c ON c.code_prefix = prefix
      GROUP BY settlement_id, line_no)
    WHERE ${age("birth", "sdate")} >= ifNull(lim, 18)`,
  "gender_mismatch/gender_mismatch": `
    SELECT DISTINCT settlement_id FROM (
      SELECT settlement_id, gender, code, kind, argMax(allowed_sex, length(prefix)) AS allowed
      FROM (SELECT settlement_id, gender, d.1 AS code, 'DIAGNOSIS' AS kind FROM batch_eff ARRAY JOIN diagnoses AS d
            UNION ALL
            SELECT settlement_id, gender, i.2 AS code, 'ITEM' AS kind FROM batch_eff ARRAY JOIN items AS i)
      ARRAY JOIN ${prefixes("code")} AS prefix
      INNER JOIN batch_sex AS c ON c.code_prefix = prefix AND c.kind = kind
      GROUP BY settlement_id, gender, code, kind)
    WHERE toString(gender) != allowed`,
  "frequent_admission/readmission": `
    WITH stays AS (SELECT settlement_id, person_id, institution_id, admission_date, discharge_date, settled_at
                   FROM batch_eff WHERE visit_type = 'INPATIENT')
    SELECT s.settlement_id FROM stays AS s INNER JOIN stays AS p USING (person_id, institution_id)
    WHERE p.settlement_id != s.settlement_id AND p.discharge_date <= s.admission_date
      AND (p.admission_date, p.discharge_date, p.settled_at, p.settlement_id)
        < (s.admission_date, s.discharge_date, s.settled_at, s.settlement_id)
    GROUP BY s.settlement_id, s.admission_date
    HAVING dateDiff('day', max(p.discharge_date), s.admission_date) <= 15`,
  "duplicate_billing/duplicate_line": `
    SELECT DISTINCT settlement_id FROM (
      SELECT person_id, institution_id, i.2 AS code, i.8 AS sdate, i.5 AS qty, i.6 AS price, settlement_id, settled_at
      FROM batch_eff ARRAY JOIN items AS i)
    WHERE (person_id, institution_id, code, sdate, qty, price, settled_at, settlement_id) NOT IN (
      SELECT person_id, institution_id, code, sdate, qty, price, min((settled_at, settlement_id)).1, min((settled_at, settlement_id)).2
      FROM (SELECT person_id, institution_id, i.2 AS code, i.8 AS sdate, i.5 AS qty, i.6 AS price, settlement_id, settled_at
            FROM batch_eff ARRAY JOIN items AS i)
      GROUP BY person_id, institution_id, code, sdate, qty, price)`,
  "deceased_activity/deceased_activity": `
    SELECT s.settlement_id FROM batch_eff AS s INNER JOIN (SELECT * FROM deaths FINAL) AS d USING (person_id)
    WHERE s.admission_date > d.death_date
       OR (s.visit_type = 'INPATIENT' AND s.discharge_date > d.death_date)
       OR arrayExists(i -> i.8 > d.death_date, s.items)`,
};

async function loadCatalogTables(store: Store): Promise<void> {
  const rows = (file: string) =>
    parse(readFileSync(join(BUNDLED_REFERENCE_DIR, file), "utf8"), {
      columns: true,
      skip_empty_lines: true,
    }) as Record<string, string>[];
  await store.client.command({ query: "DROP TABLE IF EXISTS batch_pediatric" });
  await store.client.command({
    query: "CREATE TABLE batch_pediatric (code_prefix String, age_limit Nullable(UInt8)) ENGINE = Memory",
  });
  await store.client.insert({
    table: "batch_pediatric",
    format: "JSONEachRow",
    values: rows("pediatric-drugs.csv").map((r) => ({
      code_prefix: r.code_prefix,
      age_limit: r.age_limit ? Number(r.age_limit) : null,
    })),
  });
  await store.client.command({ query: "DROP TABLE IF EXISTS batch_sex" });
  await store.client.command({
    query: "CREATE TABLE batch_sex (code_prefix String, kind String, allowed_sex String) ENGINE = Memory",
  });
  await store.client.insert({
    table: "batch_sex",
    format: "JSONEachRow",
    values: rows("sex-restricted-codes.csv").map((r) => ({
      code_prefix: r.code_prefix,
      kind: r.kind,
      allowed_sex: r.allowed_sex,
    })),
  });
}

/** Runs the batch job; returns per rule its time, its findings and its agreement with `streamed`. */
export async function benchBatchSql(store: Store, streamed: Map<string, Set<string>>) {
  const t0 = performance.now();
  await loadCatalogTables(store);
  for (const q of SETUP) await store.client.command({ query: q });
  const setupSeconds = (performance.now() - t0) / 1000;
  const rules: Record<string, unknown> = {};
  let total = setupSeconds;
  for (const [rule, query] of Object.entries(BATCH_RULES)) {
    const t = performance.now();
    const ids = new Set((await store.query<{ settlement_id: string }>(query)).map((r) => r.settlement_id));
    const seconds = (performance.now() - t) / 1000;
    total += seconds;
    const stream = streamed.get(rule) ?? new Set<string>();
    const both = [...ids].filter((id) => stream.has(id)).length;
    rules[rule] = { seconds, batchFindings: ids.size, streamFindings: stream.size, inBoth: both };
  }
  await store.client.command({ query: "DROP TABLE IF EXISTS batch_eff" });
  return { setupSeconds, totalSeconds: total, rules };
}

// The NDJSON as the files hold it; settled_at and reported_at go into the tables' *_iso columns.
const ITEM = `Tuple(line_no Int32, item_code String, item_name String, category String, quantity Float64,
  unit_price_fen Int64, amount_fen Int64, service_date String)`;
const SETTLEMENT_FILE_STRUCTURE = `settlement_id String, event_type String, original_settlement_id Nullable(String),
  visit_id String, person_id String, gender String, birth_date String, insurance_type String, institution_id String,
  institution_name String, region_code String, visit_type String, admission_date String, discharge_date String,
  discharge_reason Nullable(String), settled_at String, diagnoses Array(Tuple(code String, name String, primary Bool)),
  items Array(${ITEM}), total_fen Int64, fund_paid_fen Int64`;
const DEATH_FILE_STRUCTURE = "person_id String, death_date String, source String, reported_at String";

const quote = (s: string) => `'${s.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;

/**
 * The nightly job as a bureau would run it: an empty ClickHouse (embedded chdb, the project's migrations),
 * the day's NDJSON loaded by ClickHouse itself (file(), parsed in C++), then the five rules.
 */
export async function benchBatchJob(
  files: { settlements: string; deaths: string },
  streamed: Map<string, Set<string>>,
) {
  const dir = mkdtempSync(join(tmpdir(), "fg-batch-"));
  const store = await openStore(chdbConfig(join(dir, "data")));
  try {
    const t0 = performance.now();
    await store.client.command({
      query: `INSERT INTO settlements (settlement_id, event_type, original_settlement_id, visit_id, person_id, gender,
          birth_date, insurance_type, institution_id, institution_name, region_code, visit_type, admission_date,
          discharge_date, discharge_reason, settled_at_iso, diagnoses, items, total_fen, fund_paid_fen)
        SELECT * REPLACE (settled_at AS settled_at)
        FROM file(${quote(files.settlements)}, 'JSONEachRow', ${quote(SETTLEMENT_FILE_STRUCTURE)})`,
      clickhouse_settings: { input_format_allow_errors_num: "0" },
    });
    await store.client.command({
      query: `INSERT INTO deaths (person_id, death_date, source, reported_at_iso)
        SELECT * FROM file(${quote(files.deaths)}, 'JSONEachRow', ${quote(DEATH_FILE_STRUCTURE)})`,
    });
    const loadSeconds = (performance.now() - t0) / 1000;
    const [count] = await store.query<{ n: string }>("SELECT count() AS n FROM settlements");
    const rules = await benchBatchSql(store, streamed);
    return {
      loadSeconds,
      rowsLoaded: Number(count?.n),
      ...rules,
      jobSeconds: loadSeconds + rules.totalSeconds,
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
