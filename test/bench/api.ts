// Investigator API latency: fills embedded chdb with synthetic suspects (realistic skew of
// regions, institutions, detectors and months), serves them over a real HTTP listener and
// measures the first page of filtered lists, the case view, the aggregates and a CSV export.
// Targets: list p99 ≤ 200 ms, aggregates p99 ≤ 1 s. Every request is a full API call:
// token check, validation, SQL with FINAL, masking and the audit-log INSERT.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Suspect } from "../../schemas/index.ts";
import { buildServer, usersFromList } from "../../services/api/index.ts";
import type { Change } from "../../services/engine/engine.ts";
import { Rng } from "../../services/generate/prng.ts";
import { createLogger } from "../../services/log.ts";
import { chdbConfig, eventVersion, openStore, type Store } from "../../services/store/index.ts";

const RUN = "live";
/** Bump when the synthetic data changes, so a cached fill is not reused. */
const FILL_VERSION = 2;
const ADMIN = "fg_bench_admin_token_0123456789";
const INVESTIGATOR = "fg_bench_investigator_token_0123";

/** 16 county-level regions of one prefecture-sized area, the capital district busiest. */
const REGIONS = Array.from({ length: 16 }, (_, i) => `3415${String(i + 1).padStart(2, "0")}`);

const RULES: {
  detector: string;
  rule: string;
  severity: Suspect["severity"];
  share: number;
  median: number;
}[] = [
  { detector: "duplicate_billing", rule: "duplicate_line", severity: "WARN", share: 34, median: 8_000 },
  {
    detector: "duplicate_billing",
    rule: "outpatient_during_stay",
    severity: "WARN",
    share: 18,
    median: 12_000,
  },
  { detector: "duplicate_billing", rule: "overlapping_stays", severity: "BLOCK", share: 3, median: 450_000 },
  { detector: "frequent_admission", rule: "readmission", severity: "WARN", share: 15, median: 600_000 },
  { detector: "frequent_admission", rule: "high_frequency", severity: "REMIND", share: 8, median: 500_000 },
  { detector: "pediatric_drug", rule: "pediatric_drug", severity: "WARN", share: 9, median: 3_000 },
  { detector: "gender_mismatch", rule: "gender_mismatch", severity: "BLOCK", share: 5, median: 40_000 },
  { detector: "deceased_activity", rule: "deceased_activity", severity: "BLOCK", share: 2, median: 90_000 },
  { detector: "high_out_of_pocket", rule: "high_out_of_pocket", severity: "REMIND", share: 6, median: 0 },
];

function zipfWeights(n: number, s = 1.1): number[] {
  return Array.from({ length: n }, (_, i) => 1 / (i + 1) ** s);
}

/**
 * Deterministic synthetic suspects, in the order a stream finds them: month by month over two
 * years (volume growing), within a month in random order. The same `n` gives the same rows.
 */
export function* syntheticSuspects(n: number): Generator<Suspect> {
  const rng = new Rng(`bench-api-${n}`);
  const regionWeights = zipfWeights(REGIONS.length, 0.8);
  // ~1 institution per 500 suspects, at least 200; each belongs to one region.
  const institutions = Array.from({ length: Math.max(200, Math.round(n / 500)) }, (_, i) => {
    const region = REGIONS[rng.weightedIndex(regionWeights)] as string;
    const kind = rng.chance(0.35) ? "H" : rng.chance(0.5) ? "P" : "C";
    return { id: `${kind}${region}${String(i).padStart(5, "0")}`, region };
  });
  const institutionWeights = zipfWeights(institutions.length, 1.05);
  const ruleWeights = RULES.map((r) => r.share);
  const persons = Math.max(1000, Math.round(n / 3));
  // 24 months, growing volume (more settlements, more findings).
  const monthWeights = Array.from({ length: 24 }, (_, i) => 1 + i / 24);
  const totalWeight = monthWeights.reduce((a, b) => a + b, 0);
  let i = 0;
  for (let month = 0; month < 24; month++) {
    const inMonth =
      month === 23 ? n - i : Math.min(n - i, Math.round((n * (monthWeights[month] as number)) / totalWeight));
    const monthStart = Date.UTC(2024 + Math.floor(month / 12), month % 12, 1);
    for (let k = 0; k < inMonth; k++, i++) {
      const rule = RULES[rng.weightedIndex(ruleWeights)] as (typeof RULES)[number];
      const inst = institutions[rng.weightedIndex(institutionWeights)] as (typeof institutions)[number];
      const ms = monthStart + rng.int(0, 27) * 86_400_000 + rng.int(0, 10 * 3600) * 1000;
      const cst = new Date(ms + 8 * 3600_000).toISOString().slice(0, 19);
      const sid = `B${String(i).padStart(9, "0")}`;
      const amount = rule.median === 0 ? 0 : Math.max(100, Math.round(rng.lognormal(rule.median, 1.0)));
      yield {
        suspect_id: `${i.toString(16).padStart(8, "0")}${"0".repeat(24)}`,
        detector: rule.detector,
        rule: rule.rule,
        severity: rule.severity,
        person_id: `P${String(rng.int(0, persons)).padStart(10, "0")}`,
        settlement_ids:
          rule.rule.endsWith("stay") || rule.detector === "frequent_admission" ? [sid, `${sid}-r`] : [sid],
        institution_id: inst.id,
        region_code: inst.region,
        amount_at_risk_fen: amount,
        event_time: `${cst}+08:00`,
        detected_at: new Date(ms + 60_000).toISOString(),
        detector_version: "1.0.0",
        evidence: {
          birth_date: `19${rng.int(30, 99)}-0${rng.int(1, 9)}-1${rng.int(0, 9)}`,
          institution_name: `医疗机构${inst.id.slice(-5)}`,
          lines: [{ line_no: 1, item_code: `XA${rng.int(1000, 9999)}`, amount_fen: amount }],
        },
      };
    }
  }
}

async function fill(store: Store, n: number, marker: string): Promise<number> {
  const tag = `${FILL_VERSION}:${n}`;
  if (existsSync(marker) && readFileSync(marker, "utf8").trim() === tag) return 0;
  await store.client.command({ query: "TRUNCATE TABLE IF EXISTS suspects" });
  const t0 = performance.now();
  let batch: Change[] = [];
  let position = 0;
  const flush = async () => {
    const p = ++position;
    await store.writeChanges(batch, { runId: RUN, versionOf: (_c, i) => eventVersion(p, i) });
    batch = [];
  };
  // Stream order; every 100th finding of the last three months is later retracted (a reversal)
  // or refined (a late event), as re-evaluation does: rewrites of recent findings.
  const rewrites: Change[] = [];
  const recent = Date.UTC(2025, 9, 1);
  for (const s of syntheticSuspects(n)) {
    batch.push({ op: "upsert", suspect: s });
    if (batch.length === 20_000) await flush();
    const idx = Number.parseInt(s.suspect_id.slice(0, 8), 16);
    if (idx % 100 === 0 && Date.parse(s.event_time) >= recent) {
      rewrites.push(
        idx % 200 === 0
          ? { op: "retract", suspect: s }
          : { op: "upsert", suspect: { ...s, amount_at_risk_fen: s.amount_at_risk_fen + 100 } },
      );
    }
  }
  if (batch.length) await flush();
  batch = rewrites;
  await flush();
  writeFileSync(marker, tag);
  return (performance.now() - t0) / 1000;
}

/**
 * Waits until background merges after the fill are done (at most two minutes), so latencies
 * are those of the steady state and not of a machine busy merging what was just written.
 */
async function settled(store: Store): Promise<{ parts: number; waited: number }> {
  const t0 = performance.now();
  let quiet = 0;
  while (quiet < 3 && performance.now() - t0 < 120_000) {
    const [m] = await store.query<{ n: string }>(
      "SELECT toString(count()) AS n FROM system.merges WHERE database = currentDatabase() AND table = 'suspects'",
    );
    const [mu] = await store.query<{ n: string }>(
      "SELECT toString(count()) AS n FROM system.mutations WHERE database = currentDatabase() AND table = 'suspects' AND NOT is_done",
    );
    quiet = Number(m?.n) === 0 && Number(mu?.n) === 0 ? quiet + 1 : 0;
    await new Promise((r) => setTimeout(r, 1000));
  }
  const [p] = await store.query<{ n: string }>(
    "SELECT toString(count()) AS n FROM system.parts WHERE database = currentDatabase() AND table = 'suspects' AND active",
  );
  return { parts: Number(p?.n), waited: Math.round((performance.now() - t0) / 100) / 10 };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

function stats(ms: number[]): { n: number; p50_ms: number; p99_ms: number; max_ms: number } {
  const s = [...ms].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    n: s.length,
    p50_ms: r(percentile(s, 50)),
    p99_ms: r(percentile(s, 99)),
    max_ms: r(s.at(-1) ?? 0),
  };
}

export async function benchApi(o: { suspects: number; dir: string }): Promise<Record<string, unknown>> {
  const store = await openStore(chdbConfig(join(o.dir, "chdb")));
  const log = createLogger("bench-api", "warn");
  try {
    const fillSeconds = await fill(store, o.suspects, join(o.dir, "filled"));
    const settle = await settled(store);
    const app = await buildServer({
      store,
      log,
      maskKey: "bench",
      users: usersFromList([
        { name: "admin", role: "admin", token: ADMIN },
        { name: "investigator", role: "investigator", regions: REGIONS.slice(0, 2), token: INVESTIGATOR },
      ]),
    });
    await app.listen({ port: 0, host: "127.0.0.1" });
    const addr = app.server.address();
    if (!addr || typeof addr === "string") throw new Error("no address");
    const base = `http://127.0.0.1:${addr.port}`;

    const call = async (token: string, path: string): Promise<{ ms: number; body: string }> => {
      const t0 = performance.now();
      const res = await fetch(base + path, { headers: { authorization: `Bearer ${token}` } });
      const body = await res.text();
      const ms = performance.now() - t0;
      if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status} ${body.slice(0, 300)}`);
      return { ms, body };
    };

    const sample = JSON.parse((await call(ADMIN, "/api/v1/suspects?limit=200&sort=amount_desc")).body) as {
      total: number;
      items: { suspect_id: string; institution_id: string; person_id: string }[];
    };
    const inst = sample.items[0]?.institution_id ?? "";
    const lists: [string, string, string][] = [
      ["investigator, newest, own regions", INVESTIGATOR, "/api/v1/suspects?limit=50"],
      ["admin, newest, no filter", ADMIN, "/api/v1/suspects?limit=50"],
      [
        "detector + month",
        ADMIN,
        "/api/v1/suspects?detector=frequent_admission&from=2025-03-01&to=2025-03-31",
      ],
      ["region + severity", ADMIN, `/api/v1/suspects?region=${REGIONS[3]}&severity=BLOCK`],
      ["institution", ADMIN, `/api/v1/suspects?institution=${inst}`],
      ["min amount, largest first", ADMIN, "/api/v1/suspects?min_amount_fen=1000000&sort=amount_desc"],
      [
        "rule + region, page 5",
        INVESTIGATOR,
        `/api/v1/suspects?rule=duplicate_line&region=${REGIONS[0]}&offset=200`,
      ],
    ];
    const aggregates: [string, string, string][] = [
      ["admin, all", ADMIN, "/api/v1/aggregates"],
      ["investigator, own regions", INVESTIGATOR, "/api/v1/aggregates"],
      [
        "detector + year",
        ADMIN,
        "/api/v1/aggregates?detector=duplicate_billing&from=2025-01-01&to=2025-12-31",
      ],
    ];

    const measure = async (set: [string, string, string][], rounds: number) => {
      for (const [, token, path] of set) await call(token, path); // warm caches
      const all: number[] = [];
      const per: Record<string, ReturnType<typeof stats>> = {};
      const byName = new Map<string, number[]>();
      for (let r = 0; r < rounds; r++) {
        for (const [name, token, path] of set) {
          const { ms } = await call(token, path);
          all.push(ms);
          byName.set(name, [...(byName.get(name) ?? []), ms]);
        }
      }
      for (const [name, ms] of byName) per[name] = stats(ms);
      return { ...stats(all), queries: per };
    };

    const rounds = o.suspects >= 500_000 ? 30 : 60;
    const list = await measure(lists, rounds);
    // What the UI does: the page alone first, then the total from /suspects/count.
    const pageOnly = await measure(
      lists.map(([name, token, path]) => [
        name,
        token,
        `${path}${path.includes("?") ? "&" : "?"}with_total=false`,
      ]),
      rounds,
    );
    const counts = await measure(
      lists.map(([name, token, path]) => {
        const q = new URLSearchParams(path.split("?")[1] ?? "");
        for (const k of ["limit", "offset", "sort"]) q.delete(k);
        return [name, token, `/api/v1/suspects/count?${q}`];
      }),
      Math.ceil(rounds / 2),
    );
    const agg = await measure(aggregates, o.suspects >= 500_000 ? 10 : 20);

    const caseMs: number[] = [];
    for (const s of sample.items.slice(0, 60))
      caseMs.push((await call(ADMIN, `/api/v1/suspects/${s.suspect_id}`)).ms);

    const t0 = performance.now();
    const csv = await call(ADMIN, `/api/v1/suspects/export.csv?region=${REGIONS[0]}`);
    const exportMs = performance.now() - t0;
    const exportRows = csv.body.split("\r\n").length - 2;

    await app.close();
    return {
      suspects: o.suspects,
      fill_seconds: fillSeconds ? Math.round(fillSeconds * 10) / 10 : "reused",
      suspect_parts: settle.parts,
      merge_wait_seconds: settle.waited,
      list: { ...list, target_p99_ms: 200, ok: list.p99_ms <= 200 },
      list_page_only: { ...pageOnly, target_p99_ms: 200, ok: pageOnly.p99_ms <= 200 },
      list_count: counts,
      aggregates: { ...agg, target_p99_ms: 1000, ok: agg.p99_ms <= 1000 },
      case_view: stats(caseMs),
      export_csv: {
        region: REGIONS[0],
        rows: exportRows,
        seconds: Math.round(exportMs) / 1000,
        rows_per_second: Math.round(exportRows / (exportMs / 1000)),
      },
      note: "sequential requests over HTTP on 127.0.0.1; each includes token check, FINAL query, masking and the audit INSERT",
    };
  } finally {
    await store.close();
  }
}
