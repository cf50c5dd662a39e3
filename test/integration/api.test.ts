// The investigator API over embedded chdb in a temp directory: filters, pagination, the case
// view, CSV export, aggregates, the case workflow, 401 on every route, region isolation,
// masking, audit rows, and a suite of hostile filter values. Requests go through fastify's
// inject (the whole stack but the socket); the browser test covers a real listener.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeathRecord, Settlement, Suspect } from "../../schemas/index.ts";
import { buildServer, usersFromList } from "../../services/api/index.ts";
import { createLogger } from "../../services/log.ts";
import { chdbConfig, eventVersion, openStore, type Store } from "../../services/store/index.ts";
import { death, line, settlement, stay } from "../fixtures/events.ts";
import { asEvent, newEngine } from "../fixtures/run.ts";

const REGION_A = "341502";
const REGION_B = "341503";
const INST_A = "H34150200123";
const INST_B = "H34150300456";

const TOKENS = {
  admin: "fg_admin_token_0123456789",
  invA: "fg_investigator_a_0123456789",
  invB: "fg_investigator_b_0123456789",
  invAClear: "fg_investigator_a_unmask_0123",
  auditor: "fg_auditor_token_0123456789",
  invNone: "fg_investigator_no_regions_01",
};

const users = usersFromList([
  { name: "admin", role: "admin", token: TOKENS.admin },
  { name: "inv-a", role: "investigator", regions: [REGION_A], token: TOKENS.invA },
  { name: "inv-b", role: "investigator", regions: [REGION_B], token: TOKENS.invB },
  { name: "inv-a-clear", role: "investigator", regions: [REGION_A], unmask: true, token: TOKENS.invAClear },
  { name: "auditor", role: "auditor", token: TOKENS.auditor },
  { name: "inv-none", role: "investigator", token: TOKENS.invNone },
]);

// --- fixtures: real findings of the engine, in two regions --------------------------------
const inA = { region_code: REGION_A, institution_id: INST_A, institution_name: "六安市人民医院" };
const inB = { region_code: REGION_B, institution_id: INST_B, institution_name: "裕安区人民医院" };

const events: (Settlement | DeathRecord)[] = [
  // 分解住院: a second stay 5 days after the first, same hospital (region A).
  stay("2025-03-01", "2025-03-05", { settlement_id: "SA1", person_id: "PA-READMIT", ...inA }),
  stay("2025-03-10", "2025-03-15", { settlement_id: "SA2", person_id: "PA-READMIT", ...inA }),
  // An outpatient visit of the same person in region B: on the timeline only for B's eyes.
  settlement({ settlement_id: "SB9", person_id: "PA-READMIT", admission_date: "2025-02-20", ...inB }),
  // 药品限儿童使用: a children-only drug for a 45-year-old (region A).
  settlement({
    settlement_id: "SA3",
    person_id: "PA-PEDIATRIC",
    birth_date: "1980-06-15",
    admission_date: "2025-04-02",
    items: [
      line({
        item_code: "ZZ01AAD0305010",
        item_name: "丁桂儿脐贴",
        category: "DRUG",
        service_date: "2025-04-02",
        unit_price_fen: 2500,
        quantity: 2,
      }),
    ],
    ...inA,
  }),
  // 女病男治 in reverse: a male-only diagnosis for a woman (region B).
  settlement({
    settlement_id: "SB1",
    person_id: "PB-GENDER",
    gender: "F",
    admission_date: "2025-05-03",
    diagnoses: [{ code: "C61.x00", name: "前列腺恶性肿瘤", primary: true }],
    ...inB,
  }),
  // 死亡人员医保结算: a settlement four months after the death (region B).
  death("2025-02-01", { person_id: "PB-DECEASED" }),
  settlement({ settlement_id: "SB2", person_id: "PB-DECEASED", admission_date: "2025-06-01", ...inB }),
];

function bulkSuspect(i: number, overrides: Partial<Suspect> = {}): Suspect {
  const regions = [REGION_A, REGION_B, "341504"];
  const rules: [string, string, Suspect["severity"]][] = [
    ["frequent_admission", "readmission", "WARN"],
    ["frequent_admission", "high_frequency", "REMIND"],
    ["duplicate_billing", "duplicate_line", "WARN"],
    ["duplicate_billing", "overlapping_stays", "BLOCK"],
    ["deceased_activity", "deceased_activity", "BLOCK"],
  ];
  const [detector, rule, severity] = rules[i % rules.length] as [string, string, Suspect["severity"]];
  const month = String((i % 12) + 1).padStart(2, "0");
  const day = String((i % 27) + 1).padStart(2, "0");
  return {
    suspect_id: `bulk${String(i).padStart(5, "0")}`,
    detector,
    rule,
    severity,
    person_id: `BP${i % 37}`,
    settlement_ids: [`BS${i}`, `BS${i}-prev`],
    institution_id: `H3415020000${i % 5}`,
    region_code: regions[i % 3] as string,
    amount_at_risk_fen: ((i * 7919) % 500_000) + 100,
    event_time: `2025-${month}-${day}T${String(8 + (i % 10)).padStart(2, "0")}:30:00+08:00`,
    detected_at: "2026-01-01T00:00:00.000Z",
    detector_version: "1.0.0",
    evidence: { birth_date: "1970-01-01", gap_days: i % 15 },
    ...overrides,
  };
}
const BULK = 150;

// --- setup ----------------------------------------------------------------------------------
const dir = mkdtempSync(join(tmpdir(), "fundguard-api-"));
let store: Store;
let app: Awaited<ReturnType<typeof buildServer>>;
let live: Suspect[] = [];

beforeAll(async () => {
  store = await openStore(chdbConfig(join(dir, "data")));
  const engine = newEngine();
  let v = 0;
  for (const e of events) {
    const changes = engine.process(asEvent(e));
    const position = ++v;
    await store.writeChanges(changes, { versionOf: (_c, i) => eventVersion(position, i) });
  }
  live = [...engine.activeSuspects()];
  await store.writeSettlements(events.filter((e): e is Settlement => "settlement_id" in e));
  await store.writeDeaths(events.filter((e): e is DeathRecord => !("settlement_id" in e)));
  // The bulk run: 150 suspects over three regions, five rules, twelve months; some retracted.
  const bulk = Array.from({ length: BULK }, (_, i) => bulkSuspect(i));
  await store.writeChanges(
    bulk.map((s) => ({ op: "upsert" as const, suspect: s })),
    { runId: "bulk", versionOf: (_c, i) => eventVersion(1, i) },
  );
  await store.writeChanges(
    bulk.filter((_, i) => i % 10 === 0).map((s) => ({ op: "retract" as const, suspect: s })),
    { runId: "bulk", versionOf: (_c, i) => eventVersion(2, i) },
  );
  // A cell a spreadsheet would run as a formula.
  await store.writeChanges(
    [
      {
        op: "upsert",
        suspect: bulkSuspect(9001, { region_code: REGION_A, institution_id: '=HYPERLINK("x")' }),
      },
    ],
    { runId: "formula", versionOf: () => 1 },
  );
  app = await buildServer({
    store,
    users,
    log: createLogger("api-test", process.env.API_TEST_LOG ?? "silent"),
    maskKey: "test-mask-key",
  });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

// --- helpers -------------------------------------------------------------------------------
type Who = keyof typeof TOKENS;

async function get(who: Who | null, url: string) {
  const res = await app.inject({
    method: "GET",
    url,
    headers: who ? { authorization: `Bearer ${TOKENS[who]}` } : {},
  });
  return res;
}
async function json<T = Record<string, unknown>>(who: Who, url: string, status = 200): Promise<T> {
  const res = await get(who, url);
  expect(res.statusCode, `${url}: ${res.body.slice(0, 500)}`).toBe(status);
  return res.json() as T;
}
async function post(who: Who | null, url: string, body: unknown) {
  return app.inject({
    method: "POST",
    url,
    headers: who ? { authorization: `Bearer ${TOKENS[who]}` } : {},
    payload: body as Record<string, unknown>,
  });
}

interface Item {
  suspect_id: string;
  detector: string;
  rule: string;
  rule_title_zh: string;
  severity: string;
  person_id: string;
  region_code: string;
  institution_id: string;
  amount_at_risk_fen: number;
  event_time: string;
  retracted: boolean;
  case_status: string;
}
interface ListResponse {
  total: number;
  amount_at_risk_fen: number;
  items: Item[];
}
const list = (who: Who, q = "") => json<ListResponse>(who, `/api/v1/suspects${q ? `?${q}` : ""}`);

function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(cell);
      cell = "";
    } else if (c === "\r" && text[i + 1] === "\n") {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = "";
      i++;
    } else cell += c;
  }
  if (cell || row.length) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

const byRule = (rule: string) => live.find((s) => s.rule === rule) as Suspect;

// --- tests ----------------------------------------------------------------------------------
describe("fixtures", () => {
  it("the engine found the four planted findings", () => {
    expect(live.map((s) => `${s.detector}/${s.rule}/${s.region_code}`).sort()).toEqual([
      `deceased_activity/deceased_activity/${REGION_B}`,
      `frequent_admission/readmission/${REGION_A}`,
      `gender_mismatch/gender_mismatch/${REGION_B}`,
      `pediatric_drug/pediatric_drug/${REGION_A}`,
    ]);
  });
});

describe("authentication: 401 on every API route", () => {
  const routes: [string, string][] = [
    ["GET", "/api/v1/me"],
    ["GET", "/api/v1/meta"],
    ["GET", "/api/v1/suspects"],
    ["GET", "/api/v1/suspects?detector=pediatric_drug"],
    ["GET", "/api/v1/suspects/export.csv"],
    ["GET", "/api/v1/suspects/count"],
    ["GET", "/api/v1/suspects/some-id"],
    ["POST", "/api/v1/suspects/some-id/status"],
    ["GET", "/api/v1/aggregates"],
    ["GET", "/api/v1/audit"],
    ["GET", "/api/v1/does-not-exist"],
    ["GET", "/api/v1/suspects/a/b/c"],
    ["DELETE", "/api/v1/suspects"],
    ["PUT", "/api/v1/suspects/x/status"],
    ["GET", "/api/v2/suspects"],
    ["GET", "/api/v1"],
    ["GET", "/api/v1/"],
    ["GET", "/api"],
    ["OPTIONS", "/api/v1/suspects"],
    ["HEAD", "/api/v1/suspects"],
  ];
  const bad: [string, Record<string, string>][] = [
    ["no header", {}],
    ["unknown token", { authorization: "Bearer fg_not_a_real_token_at_all" }],
    ["empty bearer", { authorization: "Bearer " }],
    ["basic auth", { authorization: `Basic ${Buffer.from("admin:x").toString("base64")}` }],
    ["token without scheme", { authorization: TOKENS.admin }],
    ["token with junk", { authorization: `Bearer ${TOKENS.admin} extra` }],
    ["token in a query string", {}],
  ];
  it.each(routes)("%s %s", async (method, url) => {
    for (const [why, headers] of bad) {
      const target =
        why === "token in a query string"
          ? `${url}${url.includes("?") ? "&" : "?"}token=${TOKENS.admin}`
          : url;
      const res = await app.inject({
        method: method as "GET",
        url: target,
        headers,
        payload: method === "POST" || method === "PUT" ? { status: "confirmed" } : undefined,
      });
      expect(res.statusCode, `${method} ${url} (${why})`).toBe(401);
      expect(res.headers["www-authenticate"]).toMatch(/^Bearer/);
      if (method !== "HEAD") expect(res.body).not.toContain("suspect_id");
    }
  });

  it("with a valid token, unknown API routes are 404 and known ones answer", async () => {
    expect((await get("admin", "/api/v1/does-not-exist")).statusCode).toBe(404);
    expect((await get("admin", "/api/v1/suspects/a/b/c")).statusCode).toBe(404);
    expect((await json<{ name: string; role: string }>("admin", "/api/v1/me")).role).toBe("admin");
  });

  it("the UI and the health check need no token", async () => {
    const ui = await get(null, "/");
    expect(ui.statusCode).toBe(200);
    expect(ui.headers["content-type"]).toMatch(/text\/html/);
    expect(ui.headers["content-security-policy"]).toContain("default-src 'self'");
    expect((await get(null, "/ui/app.js")).statusCode).toBe(200);
    expect((await get(null, "/ui/app.css")).statusCode).toBe(200);
    expect((await get(null, "/healthz")).statusCode).toBe(200);
  });
});

describe("list", () => {
  it("returns the live findings newest first with totals and rule titles", async () => {
    const r = await list("admin");
    expect(r.total).toBe(4);
    expect(r.amount_at_risk_fen).toBe(live.reduce((n, s) => n + s.amount_at_risk_fen, 0));
    const times = r.items.map((i) => Date.parse(i.event_time));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    const readmission = r.items.find((i) => i.rule === "readmission");
    expect(readmission?.rule_title_zh).toBe("分解住院");
    expect(readmission?.case_status).toBe("new");
  });

  it("filters by detector, rule, severity, region, institution, person, time and amount", async () => {
    const ped = byRule("pediatric_drug");
    expect((await list("admin", "detector=pediatric_drug")).items.map((i) => i.suspect_id)).toEqual([
      ped.suspect_id,
    ]);
    expect((await list("admin", "rule=readmission")).total).toBe(1);
    expect((await list("admin", "detector=frequent_admission,gender_mismatch")).total).toBe(2);
    expect((await list("admin", "detector=frequent_admission&detector=gender_mismatch")).total).toBe(2);
    expect(
      (await list("admin", `severity=${byRule("readmission").severity}`)).items.map((i) => i.rule),
    ).toContain("readmission");
    expect((await list("admin", `region=${REGION_B}`)).total).toBe(2);
    expect((await list("admin", `institution=${INST_A}`)).total).toBe(2);
    expect((await list("admin", "person=PB-DECEASED")).items[0]?.rule).toBe("deceased_activity");
    expect((await list("admin", "from=2025-05-01")).total).toBe(2);
    expect((await list("admin", "to=2025-03-31")).total).toBe(1);
    expect((await list("admin", "from=2025-04-02&to=2025-04-02")).items[0]?.rule).toBe("pediatric_drug");
    expect((await list("admin", "from=2025-04-02T00:00:00%2B08:00&to=2025-05-31")).total).toBe(2);
    const amounts = live.map((s) => s.amount_at_risk_fen).sort((a, b) => a - b);
    const third = amounts[2] as number;
    expect(
      (await list("admin", `min_amount_fen=${third}`)).items.every((i) => i.amount_at_risk_fen >= third),
    ).toBe(true);
    expect((await list("admin", "detector=pediatric_drug&region=341503")).total).toBe(0);
  });

  it("paginates with limit/offset; every row exactly once; totals exclude retracted", async () => {
    const seen: string[] = [];
    let total = -1;
    for (let offset = 0; ; offset += 40) {
      const r = await list("admin", `run_id=bulk&limit=40&offset=${offset}`);
      total = r.total;
      seen.push(...r.items.map((i) => i.suspect_id));
      if (r.items.length < 40) break;
    }
    expect(total).toBe(BULK - BULK / 10);
    expect(seen).toHaveLength(total);
    expect(new Set(seen).size).toBe(total);
    expect(seen.some((id) => id === "bulk00000")).toBe(false);
  });

  it("gives the total with the page, or the page alone and the total from /suspects/count", async () => {
    const full = await list("admin", "run_id=bulk&limit=20&offset=20");
    const alone = await list("admin", "run_id=bulk&limit=20&offset=20&with_total=false");
    expect(alone.items).toEqual(full.items);
    expect(alone.total).toBeNull();
    const count = await json<{ total: number; amount_at_risk_fen: number }>(
      "admin",
      "/api/v1/suspects/count?run_id=bulk",
    );
    expect(count).toEqual({ total: full.total, amount_at_risk_fen: full.amount_at_risk_fen });
    // A first page that is not full is the whole match, so its total is known without a count.
    const few = await list("admin", "detector=pediatric_drug&with_total=false");
    expect(few.total).toBe(1);
    expect((await get("admin", "/api/v1/suspects/count?sort=newest")).statusCode).toBe(400);
    expect((await json<{ total: number }>("invA", "/api/v1/suspects/count?run_id=bulk")).total).toBe(
      BULK / 3 - BULK / 30,
    );
  });

  it("sorts by a whitelisted order only", async () => {
    const big = await list("admin", "run_id=bulk&sort=amount_desc&limit=100");
    const amounts = big.items.map((i) => i.amount_at_risk_fen);
    expect(amounts).toEqual([...amounts].sort((a, b) => b - a));
    const small = await list("admin", "run_id=bulk&sort=amount_asc&limit=100");
    expect(small.items[0]?.amount_at_risk_fen).toBe(
      Math.min(...amounts, ...small.items.map((i) => i.amount_at_risk_fen)),
    );
    const oldest = await list("admin", "run_id=bulk&sort=oldest&limit=5");
    expect(oldest.items[0]?.event_time.startsWith("2025-01")).toBe(true);
    expect((await get("admin", "/api/v1/suspects?sort=event_time")).statusCode).toBe(400);
    expect((await get("admin", "/api/v1/suspects?sort=amount_at_risk_fen%20DESC")).statusCode).toBe(400);
  });

  it("pages newest / oldest first exactly, whether the recent-month window suffices or not", async () => {
    const active = Array.from({ length: BULK }, (_, i) => bulkSuspect(i)).filter((_, i) => i % 10 !== 0);
    const ms = (s: Suspect) => Date.parse(s.event_time);
    const newest = [...active].sort((a, b) => ms(b) - ms(a) || (a.suspect_id < b.suspect_id ? 1 : -1));
    const oldest = [...newest].reverse();
    for (const [sort, expected] of [
      ["newest", newest],
      ["oldest", oldest],
    ] as const) {
      for (const [limit, offset] of [
        [3, 0],
        [5, 5],
        [10, 0],
        [40, 0],
        [20, 60],
      ] as const) {
        const r = await list(
          "admin",
          `run_id=bulk&sort=${sort}&limit=${limit}&offset=${offset}&with_total=false`,
        );
        expect(
          r.items.map((i) => i.suspect_id),
          `${sort} ${limit}@${offset}`,
        ).toEqual(expected.slice(offset, offset + limit).map((s) => s.suspect_id));
      }
    }
    const region = await list("invA", "run_id=bulk&sort=newest&limit=4");
    expect(region.items.map((i) => i.suspect_id)).toEqual(
      newest
        .filter((s) => s.region_code === REGION_A)
        .slice(0, 4)
        .map((s) => s.suspect_id),
    );
  });

  it("hides retracted suspects unless asked for", async () => {
    expect((await list("admin", "run_id=bulk&retracted=only&limit=500")).total).toBe(BULK / 10);
    const all = await list("admin", "run_id=bulk&retracted=include&limit=500");
    expect(all.total).toBe(BULK);
    expect(all.items.filter((i) => i.retracted)).toHaveLength(BULK / 10);
  });

  it("rejects unknown parameters and out-of-range values with 400", async () => {
    for (const q of [
      "bogus=1",
      "limit=0",
      "limit=501",
      "offset=-1",
      "from=2025-02-30",
      "severity=HIGH",
      "region=34150",
    ]) {
      expect((await get("admin", `/api/v1/suspects?${q}`)).statusCode, q).toBe(400);
    }
  });
});

interface CaseResponse {
  suspect: Item & { evidence: Record<string, unknown>; settlement_ids: string[] };
  rule: { titleZh: string; title: string; severity: string };
  history: { status: string; note: string; user: string; at: string }[];
  settlements: Settlement[];
  settlements_not_shown: string[];
  timeline: {
    rows: { settlement_id: string; region_code: string; involved: boolean; person_id?: string }[];
    hidden_outside_regions: number;
  };
  death: DeathRecord | null;
}

describe("case view", () => {
  it("shows evidence, the settlements involved, the timeline and no death record", async () => {
    const s = byRule("readmission");
    const c = await json<CaseResponse>("admin", `/api/v1/suspects/${s.suspect_id}`);
    expect(c.suspect.suspect_id).toBe(s.suspect_id);
    expect(c.suspect.evidence).toEqual(s.evidence);
    expect(c.rule.titleZh).toBe("分解住院");
    expect(c.settlements.map((x) => x.settlement_id).sort()).toEqual(["SA1", "SA2"]);
    expect(c.settlements[0]?.items.length).toBeGreaterThan(0);
    expect(c.timeline.rows.map((r) => r.settlement_id)).toEqual(["SB9", "SA1", "SA2"]);
    expect(c.timeline.rows.filter((r) => r.involved).map((r) => r.settlement_id)).toEqual(["SA1", "SA2"]);
    expect(c.death).toBeNull();
    expect(c.history).toEqual([]);
  });

  it("includes the death record of a deceased person", async () => {
    const s = byRule("deceased_activity");
    const c = await json<CaseResponse>("admin", `/api/v1/suspects/${s.suspect_id}`);
    expect(c.death).toMatchObject({ death_date: "2025-02-01", source: "CIVIL_AFFAIRS" });
    expect(c.suspect.evidence.death_date).toBe("2025-02-01");
  });

  it("404 for an unknown id, 400 for a malformed one", async () => {
    expect((await get("admin", "/api/v1/suspects/nope")).statusCode).toBe(404);
    expect((await get("admin", `/api/v1/suspects/${encodeURIComponent("x' OR '1'='1")}`)).statusCode).toBe(
      400,
    );
  });
});

describe("CSV export", () => {
  it("streams the filtered list with a BOM, a header row and one line per suspect", async () => {
    const res = await get("admin", "/api/v1/suspects/export.csv?run_id=bulk");
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("text/csv; charset=utf-8");
    expect(res.headers["content-disposition"]).toMatch(
      /^attachment; filename="fundguard-suspects-\d{4}-\d{2}-\d{2}\.csv"$/,
    );
    expect(res.rawPayload.subarray(0, 3)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]));
    const rows = parseCsv(res.body.replace(/^\uFEFF/, ""));
    const header = rows[0] as string[];
    expect(header.slice(0, 3)).toEqual(["suspect_id", "detector", "rule"]);
    expect(rows).toHaveLength(1 + BULK - BULK / 10);
    const col = (name: string) => header.indexOf(name);
    const ids = rows.slice(1).map((r) => r[col("suspect_id")]);
    expect(new Set(ids).size).toBe(ids.length);
    const evidence = JSON.parse(rows[1]?.[col("evidence")] as string);
    expect(evidence).toHaveProperty("gap_days");
    expect(rows.slice(1).every((r) => r.length === header.length)).toBe(true);
  });

  it("applies filters, Chinese headers and the workflow status", async () => {
    const res = await get("admin", `/api/v1/suspects/export.csv?lang=zh&region=${REGION_B}`);
    const rows = parseCsv(res.body.replace(/^\uFEFF/, ""));
    expect(rows[0]?.[0]).toBe("线索编号");
    expect(rows[0]).toContain("规则名称");
    expect(rows).toHaveLength(3);
    expect(
      rows
        .slice(1)
        .map((r) => r[3])
        .sort(),
    ).toEqual(["男病女治/女病男治", "死亡人员医保结算"].sort());
  });

  it("neutralises cells a spreadsheet would run as formulas", async () => {
    const res = await get("admin", "/api/v1/suspects/export.csv?run_id=formula");
    const rows = parseCsv(res.body.replace(/^\uFEFF/, ""));
    const col = (rows[0] as string[]).indexOf("institution_id");
    expect(rows[1]?.[col]).toBe('\'=HYPERLINK("x")');
  });

  it("rejects bad filters before streaming", async () => {
    const res = await get("admin", "/api/v1/suspects/export.csv?limit=abc");
    expect(res.statusCode).toBe(400);
  });
});

interface Aggregates {
  total: number;
  amount_at_risk_fen: number;
  groups: Record<
    string,
    { key: string; count: number; amount_at_risk_fen: number; detector?: string; title_zh?: string }[]
  >;
}

describe("aggregates", () => {
  it("counts and amounts by detector, rule, institution (top N), month, region and status", async () => {
    const a = await json<Aggregates>("admin", "/api/v1/aggregates?run_id=bulk&top=3");
    const bulk = Array.from({ length: BULK }, (_, i) => bulkSuspect(i)).filter((_, i) => i % 10 !== 0);
    expect(a.total).toBe(bulk.length);
    const sum = (list: { count: number }[]) => list.reduce((n, g) => n + g.count, 0);
    for (const d of ["detector", "rule", "month", "region", "severity", "status"]) {
      expect(sum(a.groups[d] ?? []), d).toBe(bulk.length);
    }
    expect(a.groups.institution).toHaveLength(3);
    const amounts = (a.groups.institution ?? []).map((g) => g.amount_at_risk_fen);
    expect(amounts).toEqual([...amounts].sort((x, y) => y - x));
    const byDetector = new Map<string, number>();
    for (const s of bulk)
      byDetector.set(s.detector, (byDetector.get(s.detector) ?? 0) + s.amount_at_risk_fen);
    for (const g of a.groups.detector ?? []) expect(g.amount_at_risk_fen).toBe(byDetector.get(g.key));
    expect((a.groups.month ?? []).map((g) => g.key)).toEqual(
      Array.from({ length: 12 }, (_, i) => `2025-${String(i + 1).padStart(2, "0")}`),
    );
    const readmission = (a.groups.rule ?? []).find((g) => g.key === "readmission");
    expect(readmission?.title_zh).toBe("分解住院");
    expect(a.groups.status).toEqual([expect.objectContaining({ key: "new", count: bulk.length })]);
  });

  it("takes the list filters and a dimension choice", async () => {
    const a = await json<Aggregates>(
      "admin",
      `/api/v1/aggregates?run_id=bulk&region=${REGION_A}&by=month,institution`,
    );
    expect(Object.keys(a.groups).sort()).toEqual(["institution", "month"]);
    expect(a.total).toBe(
      Array.from({ length: BULK }, (_, i) => i).filter((i) => i % 10 !== 0 && i % 3 === 0).length,
    );
  });
});

describe("case workflow", () => {
  it("records status changes with notes; the list and case show the latest", async () => {
    const s = byRule("pediatric_drug");
    const url = `/api/v1/suspects/${s.suspect_id}/status`;
    const first = await post("invA", url, { status: "under_review", note: "调取病历 fetch records" });
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json().case_status).toBe("under_review");
    await new Promise((r) => setTimeout(r, 5));
    const second = await post("invA", url, { status: "confirmed", note: "成人使用儿童专用药 confirmed" });
    expect(second.json().case_status).toBe("confirmed");

    const c = await json<CaseResponse>("admin", `/api/v1/suspects/${s.suspect_id}`);
    expect(c.suspect.case_status).toBe("confirmed");
    expect(c.history.map((h) => [h.status, h.user])).toEqual([
      ["under_review", "inv-a"],
      ["confirmed", "inv-a"],
    ]);
    expect(c.history[0]?.note).toBe("调取病历 fetch records");

    const confirmed = await list("admin", "status=confirmed");
    expect(confirmed.items.map((i) => i.suspect_id)).toEqual([s.suspect_id]);
    expect(confirmed.items[0]?.case_status).toBe("confirmed");
    expect((await list("admin", "status=new")).total).toBe(3);
    expect((await list("admin", "status=new,confirmed")).total).toBe(4);
    expect((await list("admin", "status=dismissed")).total).toBe(0);
    const agg = await json<Aggregates>("admin", "/api/v1/aggregates?by=status");
    expect(agg.groups.status?.find((g) => g.key === "confirmed")?.count).toBe(1);
    const csv = parseCsv(
      (await get("admin", "/api/v1/suspects/export.csv?status=confirmed")).body.replace(/^\uFEFF/, ""),
    );
    expect(csv[1]?.[(csv[0] as string[]).indexOf("case_status")]).toBe("confirmed");
  });

  it("auditors may not change status (403); others' regions are 404; bad bodies are 400", async () => {
    const a = byRule("readmission");
    const b = byRule("gender_mismatch");
    expect(
      (await post("auditor", `/api/v1/suspects/${a.suspect_id}/status`, { status: "dismissed" })).statusCode,
    ).toBe(403);
    expect(
      (await post("invA", `/api/v1/suspects/${b.suspect_id}/status`, { status: "dismissed" })).statusCode,
    ).toBe(404);
    expect(
      (await post("invA", `/api/v1/suspects/${a.suspect_id}/status`, { status: "closed" })).statusCode,
    ).toBe(400);
    expect(
      (await post("invA", `/api/v1/suspects/${a.suspect_id}/status`, { status: ["confirmed"] })).statusCode,
    ).toBe(400);
    expect(
      (await post("invA", `/api/v1/suspects/${a.suspect_id}/status`, { status: "confirmed", admin: true }))
        .statusCode,
    ).toBe(400);
    expect(
      (
        await post("invA", `/api/v1/suspects/${a.suspect_id}/status`, {
          status: "confirmed",
          note: "x".repeat(5000),
        })
      ).statusCode,
    ).toBe(400);
    const raw = await app.inject({
      method: "POST",
      url: `/api/v1/suspects/${a.suspect_id}/status`,
      headers: { authorization: `Bearer ${TOKENS.invA}`, "content-type": "application/json" },
      payload: "{not json",
    });
    expect(raw.statusCode).toBe(400);
    const c = await json<CaseResponse>("admin", `/api/v1/suspects/${a.suspect_id}`);
    expect(c.history).toEqual([]);
  });
});

describe("region isolation", () => {
  const allRegionsOf = (body: string) => [...body.matchAll(/"region_code":"(\d+)"/g)].map((m) => m[1]);

  it("an investigator of region A never sees region B in list, case, export, aggregates or meta", async () => {
    for (const [who, mine, other] of [
      ["invA", REGION_A, REGION_B],
      ["invB", REGION_B, REGION_A],
    ] as const) {
      const l = await list(who, "retracted=include");
      expect(l.total).toBe(2);
      expect(l.items.every((i) => i.region_code === mine)).toBe(true);
      expect((await list(who, `region=${other}`)).total).toBe(0);
      const bulk = await get(who, "/api/v1/suspects?run_id=bulk&limit=500&retracted=include");
      expect(new Set(allRegionsOf(bulk.body))).toEqual(new Set([mine]));

      for (const s of live) {
        const res = await get(who, `/api/v1/suspects/${s.suspect_id}`);
        expect(res.statusCode).toBe(s.region_code === mine ? 200 : 404);
        if (res.statusCode === 200) expect(new Set(allRegionsOf(res.body))).toEqual(new Set([mine]));
      }

      const csv = parseCsv(
        (await get(who, "/api/v1/suspects/export.csv?run_id=bulk&retracted=include")).body.replace(
          /^\uFEFF/,
          "",
        ),
      );
      const col = (csv[0] as string[]).indexOf("region_code");
      expect(csv.length).toBe(1 + BULK / 3);
      expect(new Set(csv.slice(1).map((r) => r[col]))).toEqual(new Set([mine]));

      const a = await json<Aggregates>(who, "/api/v1/aggregates?run_id=bulk");
      expect(a.groups.region?.map((g) => g.key)).toEqual([mine]);
      expect(a.total).toBe(BULK / 3 - BULK / 30);
      const other_ = await json<Aggregates>(who, `/api/v1/aggregates?run_id=bulk&region=${other}`);
      expect(other_.total).toBe(0);

      const meta = await json<{ regions: string[] }>(who, "/api/v1/meta");
      expect(meta.regions).toEqual([mine]);
    }
  });

  it("the timeline leaves out settlements in other regions and says how many", async () => {
    const s = byRule("readmission");
    const c = await json<CaseResponse>("invA", `/api/v1/suspects/${s.suspect_id}`);
    expect(c.timeline.rows.map((r) => r.settlement_id)).toEqual(["SA1", "SA2"]);
    expect(c.timeline.hidden_outside_regions).toBe(1);
    const res = await get("invA", `/api/v1/suspects/${s.suspect_id}`);
    expect(res.body).not.toContain("SB9");
    expect(res.body).not.toContain(INST_B);
  });

  it("an investigator with no regions sees nothing", async () => {
    expect((await list("invNone", "run_id=bulk")).total).toBe(0);
    expect((await json<Aggregates>("invNone", "/api/v1/aggregates?run_id=bulk")).total).toBe(0);
  });
});

describe("masking", () => {
  it("person ids and birth dates are masked for investigators without unmask", async () => {
    const s = byRule("pediatric_drug");
    const l = await list("invA", "detector=pediatric_drug");
    const masked = l.items[0]?.person_id as string;
    expect(masked).toMatch(/^~[0-9a-f]{16}$/);
    const res = await get("invA", `/api/v1/suspects/${s.suspect_id}`);
    expect(res.body).not.toContain("PA-PEDIATRIC");
    expect(res.body).not.toContain("1980-06-15");
    const c = res.json() as CaseResponse;
    expect(c.suspect.person_id).toBe(masked);
    expect(c.suspect.evidence.birth_date).toBe("1980-**-**");
    expect(c.settlements[0]?.person_id).toBe(masked);
    expect(c.settlements[0]?.birth_date).toBe("1980-**-**");
    expect(c.suspect.evidence.lines).toEqual((s.evidence.lines as unknown[]).map((x) => x));
    const csv = (await get("invA", "/api/v1/suspects/export.csv")).body;
    expect(csv).not.toContain("PA-PEDIATRIC");
    expect(csv).not.toContain("1980-06-15");
    expect(csv).toContain(masked);
    // The pseudonym works as a person filter.
    expect(
      (await list("invA", `person=${encodeURIComponent(masked)}`)).items.map((i) => i.suspect_id),
    ).toEqual([s.suspect_id]);
  });

  it("admins and users with the unmask flag see them as stored", async () => {
    const s = byRule("pediatric_drug");
    for (const who of ["admin", "invAClear"] as const) {
      const c = await json<CaseResponse>(who, `/api/v1/suspects/${s.suspect_id}`);
      expect(c.suspect.person_id).toBe("PA-PEDIATRIC");
      expect(c.suspect.evidence.birth_date).toBe("1980-06-15");
      expect(c.settlements[0]?.birth_date).toBe("1980-06-15");
    }
    const me = await json<{ unmask: boolean }>("auditor", "/api/v1/me");
    expect(me.unmask).toBe(false);
    expect((await list("auditor", "detector=pediatric_drug")).items[0]?.person_id).toMatch(/^~/);
  });
});

describe("audit log", () => {
  interface AuditResponse {
    total: number;
    items: { at: string; who: string; route: string; filters: Record<string, unknown>; rows: number }[];
  }

  it("records every call: who, route, filters and rows returned; readable by auditors only", async () => {
    await list("invB", "detector=gender_mismatch");
    await get(null, "/api/v1/suspects?region=341502");
    await get("invB", "/api/v1/nothing-here");
    const a = await json<AuditResponse>("auditor", "/api/v1/audit?who=inv-b&limit=5");
    const [notFound, listing] = a.items;
    expect(notFound).toMatchObject({ who: "inv-b", route: "GET (unknown route)", rows: 0 });
    expect(notFound?.filters.http_status).toBe(404);
    expect(listing).toMatchObject({ who: "inv-b", route: "GET /api/v1/suspects", rows: 1 });
    expect(listing?.filters).toMatchObject({
      detector: ["gender_mismatch"],
      run_id: "live",
      http_status: 200,
    });
    const anon = await json<AuditResponse>("auditor", "/api/v1/audit?who=(unauthenticated)&limit=1");
    expect(anon.items[0]?.filters.http_status).toBe(401);
    expect(anon.items[0]?.filters.query).toBe("region=341502");

    const exportRows = await json<AuditResponse>(
      "admin",
      `/api/v1/audit?route=${encodeURIComponent("GET /api/v1/suspects/export.csv")}&limit=1`,
    );
    expect(exportRows.items[0]?.filters.complete).toBe(true);
    expect(exportRows.items[0]?.rows).toBeGreaterThan(0);

    expect((await get("invA", "/api/v1/audit")).statusCode).toBe(403);
    const own = await json<AuditResponse>("auditor", "/api/v1/audit?who=auditor&limit=1");
    expect(own.items[0]?.route).toBe("GET /api/v1/audit");
  });
});

// --- hostile input -------------------------------------------------------------------------
const HOSTILE: string[] = [
  "' OR '1'='1",
  "' OR 1=1 --",
  "') OR ('1'='1",
  "1; DROP TABLE suspects",
  "1'; DROP TABLE suspects; --",
  "'; TRUNCATE TABLE audit_log; --",
  "x' UNION SELECT * FROM system.users --",
  "x' UNION ALL SELECT name FROM system.tables --",
  "\\' OR 1=1 --",
  "\\",
  "\\\\",
  "'",
  "''",
  '"',
  '" OR ""="',
  "`",
  "`suspects`",
  "{run_id:String}",
  "{x:Array(String)}",
  "}{",
  "$1",
  "?",
  "%",
  "%27",
  "%00",
  "_",
  "*",
  "-- comment",
  "/* comment */",
  "/*!50000 SELECT*/",
  "SLEEP(10)",
  "sleep(3)",
  "1 AND sleep(5)",
  "toString(1)",
  "currentUser()",
  "file('/etc/passwd')",
  "url('http://127.0.0.1/')",
  "SELECT 1",
  "1 OR 1",
  "1=1",
  "NULL",
  "null",
  "\\N",
  "undefined",
  "true",
  "0x41",
  "1e309",
  "-1",
  "-0",
  "+1",
  "NaN",
  "Infinity",
  "9223372036854775808",
  "18446744073709551616",
  "99999999999999999999999999",
  "1.5",
  "0.0000001",
  "2025-13-45",
  "2025-02-30",
  "0000-00-00",
  "9999-12-31T23:59:59+99:99",
  "2025-01-01T00:00:00",
  "2025-01-01' OR '1'='1",
  "341502' OR '1'='1",
  "341502,341503' --",
  "341502\u0000",
  "pediatric_drug' --",
  "PEDIATRIC_DRUG",
  "newest; DROP TABLE suspects",
  "event_time",
  "amount_at_risk_fen DESC",
  "suspect_id, (SELECT 1)",
  "分解住院' OR 1=1 --",
  "分解住院",
  "人员编号\u202e",
  "\u202eevil",
  "\u200b",
  "\ufeffBOM",
  "\ud83d\ude00",
  "😀' OR '😀'='😀",
  "ｓｅｌｅｃｔ",
  "＇ OR １＝１",
  "Ω≈ç√∫",
  "\u0000",
  "a\u0000b",
  "\t",
  "\n",
  "\r\n",
  "line1\nline2",
  "a\tb",
  "<script>alert(1)</script>",
  '"><img src=x onerror=alert(1)>',
  "javascript:alert(1)",
  "\u0024{7*7}",
  "{{7*7}}",
  "../../../../etc/passwd",
  "..%2F..%2Fetc%2Fpasswd",
  '=HYPERLINK("http://x")',
  "@SUM(1+1)",
  "+cmd|' /C calc'!A0",
  "a".repeat(65),
  "a".repeat(5_000),
  "x".repeat(100_000),
  "汉".repeat(300),
  "' OR '".repeat(200),
  "[]",
  "{}",
  '{"$gt":""}',
  "[object Object]",
  "__proto__",
  "constructor",
  " ",
  "  ",
  ",",
  ",,,",
];

/** Parameters a hostile value is tried in; each value also goes in as an array and as an object key. */
const PARAMS = [
  "detector",
  "rule",
  "severity",
  "region",
  "institution",
  "person",
  "from",
  "to",
  "min_amount_fen",
  "status",
  "retracted",
  "sort",
  "limit",
  "offset",
  "run_id",
];

describe("hostile filter values", () => {
  it(`has at least 100 distinct hostile values (${HOSTILE.length})`, () => {
    expect(new Set(HOSTILE).size).toBe(HOSTILE.length);
    expect(HOSTILE.length).toBeGreaterThanOrEqual(100);
  });

  it("each is rejected with 400 or treated as a literal (no rows, never 500), on list, export and aggregates", async () => {
    const snapshot = async () => ({
      suspects: await store.query<{ n: string }>("SELECT toString(count()) AS n FROM suspects FINAL"),
      settlements: await store.query<{ n: string }>("SELECT toString(count()) AS n FROM settlements FINAL"),
      tables: await store.query<{ name: string }>(
        "SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name",
      ),
    });
    const before = await snapshot();
    const outcomes = { rejected: 0, literal: 0 };
    const check = async (url: string, what: string) => {
      const res = await get("invA", url);
      expect([200, 400], `${what} → ${res.statusCode} ${res.body.slice(0, 200)}`).toContain(res.statusCode);
      if (res.statusCode === 400) {
        outcomes.rejected++;
        expect(res.json()).toMatchObject({ error: "bad_request" });
      } else {
        outcomes.literal++;
        if (url.startsWith("/api/v1/suspects?")) {
          const body = res.json() as ListResponse;
          // A literal never matches more than an honest filter could: region A only, and for
          // text filters nothing at all (no such institution or person).
          expect(
            body.items.every((i) => i.region_code === REGION_A),
            what,
          ).toBe(true);
          if (/[?&](institution|person)=/.test(url)) expect(body.total, what).toBe(0);
        }
      }
    };
    for (const value of HOSTILE) {
      const v = encodeURIComponent(value);
      const short = JSON.stringify(value.slice(0, 40));
      // Several at once, as a browser would send them (the audit writer groups their rows).
      await Promise.all([
        ...PARAMS.map((p) => check(`/api/v1/suspects?${p}=${v}`, `${p}=${short}`)),
        // Arrays where scalars are expected, and nested keys.
        check(`/api/v1/suspects?institution=${v}&institution=${v}`, `institution[] ${short}`),
        check(`/api/v1/suspects?person[${v}]=1`, `person[key] ${short}`),
        check(`/api/v1/suspects/export.csv?institution=${v}`, `export institution ${short}`),
        check(`/api/v1/suspects/export.csv?detector=${v}`, `export detector ${short}`),
        check(`/api/v1/aggregates?person=${v}`, `aggregates person ${short}`),
        check(`/api/v1/suspects/count?institution=${v}`, `count institution ${short}`),
        check(`/api/v1/aggregates?top=${v}`, `aggregates top ${short}`),
      ]);
      const c = await get("invA", `/api/v1/suspects/${encodeURIComponent(value)}`);
      expect([400, 404], `case id ${value.slice(0, 40)} → ${c.statusCode}`).toContain(c.statusCode);
      const s = await post("invA", `/api/v1/suspects/${byRule("readmission").suspect_id}/status`, {
        status: value,
      });
      expect([400, 413], `status body ${value.slice(0, 40)} → ${s.statusCode}`).toContain(s.statusCode);
    }
    expect(outcomes.rejected).toBeGreaterThan(0);
    expect(outcomes.literal).toBeGreaterThan(0);
    // Tables intact: same tables, same suspects and settlements, same answers.
    expect(await snapshot()).toEqual(before);
    expect((await list("admin")).total).toBe(4);
  });

  it("hostile notes are stored as text", async () => {
    const s = byRule("deceased_activity");
    const note = "'); DROP TABLE case_events; -- <script>alert(1)</script> 分解住院 \\ \u0000";
    const res = await post("admin", `/api/v1/suspects/${s.suspect_id}/status`, {
      status: "under_review",
      note,
    });
    expect(res.statusCode).toBe(200);
    const c = await json<CaseResponse>("admin", `/api/v1/suspects/${s.suspect_id}`);
    expect(c.history.at(-1)?.note).toBe(note);
  });
});

describe("users file", () => {
  it("`fundguard users add` prints a token once and stores only its hash; the server picks it up without a restart", async () => {
    const { execFileSync } = await import("node:child_process");
    const { readFileSync, writeFileSync } = await import("node:fs");
    const { UsersFileDirectory, removeUser } = await import("../../services/api/index.ts");
    const file = join(dir, "users.json");
    const bin = join(process.cwd(), "bin/fundguard.js");
    const add = (...args: string[]) =>
      execFileSync(process.execPath, [bin, "users", "add", "--file", file, ...args], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
        // The CLI audits into the store of its environment: a data directory of this test's own.
        env: { ...process.env, FUNDGUARD_DATA_DIR: join(dir, "cli-data") },
      }).trim();
    const adminToken = add("--name", "root", "--role", "admin");
    expect(adminToken).toMatch(/^fg_[A-Za-z0-9_-]{43}$/);
    const text = readFileSync(file, "utf8");
    expect(text).not.toContain(adminToken);
    const directory = await UsersFileDirectory.open(file);
    expect(directory.authenticate(adminToken)).toMatchObject({
      name: "root",
      role: "admin",
      regions: null,
      unmask: true,
    });
    expect(directory.authenticate(`${adminToken}x`)).toBeNull();

    // Added while "running": seen after the next check (at most a second later).
    const invToken = add("--name", "li", "--role", "investigator", "--regions", "341502,341503");
    await new Promise((r) => setTimeout(r, 1100));
    expect(directory.authenticate(invToken)).toMatchObject({
      role: "investigator",
      regions: ["341502", "341503"],
      unmask: false,
    });
    expect(() => add("--name", "nobody", "--role", "investigator")).toThrow();
    expect(() => add("--name", "li", "--role", "investigator", "--regions", "341502")).toThrow();

    await removeUser(file, "li");
    await new Promise((r) => setTimeout(r, 1100));
    expect(directory.authenticate(invToken)).toBeNull();

    // A broken edit keeps the last good users (and is reported); a broken file at start is fatal.
    const errors: string[] = [];
    const watched = await UsersFileDirectory.open(file, (e) => errors.push(e.message));
    writeFileSync(file, "{ not json");
    await new Promise((r) => setTimeout(r, 1100));
    expect(watched.authenticate(adminToken)?.name).toBe("root");
    expect(errors.length).toBeGreaterThan(0);
    await expect(UsersFileDirectory.open(file)).rejects.toThrow(/users file/);

    // YAML works too.
    const yamlFile = join(dir, "users.yaml");
    writeFileSync(
      yamlFile,
      `version: 1\nusers:\n  - name: aud\n    role: auditor\n    tokens:\n      - sha256: ${(await import("../../services/api/index.ts")).hashToken("fg_yaml_token_123456")}\n`,
    );
    const fromYaml = await UsersFileDirectory.open(yamlFile);
    expect(fromYaml.authenticate("fg_yaml_token_123456")).toMatchObject({
      name: "aud",
      role: "auditor",
      regions: null,
    });
  });
});
