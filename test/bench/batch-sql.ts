// The nightly-batch baseline bureaus run today: the contract's rules as plain SQL over the
// settlement archive in ClickHouse. The bench times it and checks it finds what the stream found.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { BUNDLED_REFERENCE_DIR } from "../../detectors/catalog.ts";
import type { Store } from "../../services/store/index.ts";

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
