// Privacy of the investigator API over embedded chdb: findings whose related settlements lie in
// another region (test/fixtures/cross-region.ts) read, for an investigator of the suspect's
// region, with those settlements redacted in every route and export; and a masked user cannot
// filter by a raw person id (which would reveal its pseudonym).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Suspect } from "../../schemas/index.ts";
import { buildServer, usersFromList } from "../../services/api/index.ts";
import { createLogger } from "../../services/log.ts";
import { chdbConfig, openStore, type Store } from "../../services/store/index.ts";
import { A, B, direct, inA, inA2, loadCrossRegion, SECRETS_A, SECRETS_B } from "../fixtures/cross-region.ts";

const TOKENS = {
  admin: "fg_privacy_admin_0123456789",
  invA: "fg_privacy_inv_a_0123456789",
  invB: "fg_privacy_inv_b_0123456789",
  invAClear: "fg_privacy_inv_a_clear_01234",
  auditor: "fg_privacy_auditor_012345678",
  auditorA: "fg_privacy_auditor_a_0123456",
};
type Who = keyof typeof TOKENS;
const users = usersFromList([
  { name: "admin", role: "admin", token: TOKENS.admin },
  { name: "inv-a", role: "investigator", regions: [A], token: TOKENS.invA },
  { name: "inv-b", role: "investigator", regions: [B], token: TOKENS.invB },
  { name: "inv-a-clear", role: "investigator", regions: [A], unmask: true, token: TOKENS.invAClear },
  { name: "auditor", role: "auditor", token: TOKENS.auditor },
  { name: "auditor-a", role: "auditor", regions: [A], token: TOKENS.auditorA },
]);

const dir = mkdtempSync(join(tmpdir(), "fundguard-api-privacy-"));
let store: Store;
let app: Awaited<ReturnType<typeof buildServer>>;
let live: Suspect[] = [];

beforeAll(async () => {
  store = await openStore(chdbConfig(join(dir, "data")));
  live = await loadCrossRegion(store);
  app = await buildServer({ store, users, log: createLogger("api-privacy-test", "silent"), maskKey: "k" });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function get(who: Who, url: string) {
  return app.inject({ method: "GET", url, headers: { authorization: `Bearer ${TOKENS[who]}` } });
}
async function json<T>(who: Who, url: string): Promise<T> {
  const res = await get(who, url);
  expect(res.statusCode, `${url}: ${res.body.slice(0, 300)}`).toBe(200);
  return res.json() as T;
}
const finding = (rule: string, region: string) =>
  live.find((s) => s.rule === rule && s.region_code === region) as Suspect;
const marker = (n: number) => `(outside your regions #${n})`;
const OUT = "(outside your regions)";

interface Item {
  suspect_id: string;
  rule: string;
  settlement_ids: string[];
  evidence?: Record<string, unknown>;
}
interface CaseResponse {
  suspect: Item & { evidence: Record<string, unknown> };
  settlements: { settlement_id: string }[];
  settlements_not_shown: string[];
  timeline: { rows: { settlement_id: string }[]; hidden_outside_regions: number };
}

/** CSV rows keyed by header (cells without embedded quotes or line breaks, as these are). */
function csvObjects(body: string): Record<string, string>[] {
  const rows: string[][] = [];
  for (const text of body
    .replace(/^\uFEFF/, "")
    .trim()
    .split("\r\n")) {
    const cells: string[] = [];
    for (const m of text.matchAll(/("(?:[^"]|"")*"|[^,]*)(,|$)/g)) {
      const c = m[1] as string;
      cells.push(c.startsWith('"') ? c.slice(1, -1).replaceAll('""', '"') : c);
      if (m[2] === "") break;
    }
    rows.push(cells);
  }
  const [head, ...rest] = rows as [string[], ...string[][]];
  return rest.map((r) => Object.fromEntries(head.map((h, i) => [h, r[i] ?? ""])));
}

describe("fixtures", () => {
  it("the engine found cross-region findings", () => {
    expect(live.map((s) => `${s.rule}/${s.region_code}:${s.settlement_ids.join(">")}`).sort()).toEqual([
      `duplicate_line/${A}:SA-D2>SB-D1`,
      `high_frequency/${A}:SA-F4>SB-F1>SB-F2>SA-F0>SB-F3`,
      `high_frequency/${B}:SB-F3>SB-F1>SB-F2>SA-F0`,
      `outpatient_during_stay/${A}:SA-OP>SB-ST`,
      `overlapping_stays/${A}:SA-OV2>SB-OV1`,
    ]);
  });
});

describe("related settlements in other regions are redacted", () => {
  it("list: settlement ids of the other region are markers, nothing of region B in the body", async () => {
    const res = await get("invA", "/api/v1/suspects?limit=500");
    for (const s of SECRETS_B) expect(res.body).not.toContain(s);
    const items = (res.json() as { items: Item[] }).items;
    const ids = Object.fromEntries(items.map((i) => [i.rule, i.settlement_ids]));
    expect(ids).toEqual({
      overlapping_stays: ["SA-OV2", marker(1)],
      outpatient_during_stay: ["SA-OP", marker(1)],
      high_frequency: ["SA-F4", marker(1), marker(2), "SA-F0", marker(3)],
      duplicate_line: ["SA-D2", marker(1)],
    });
    // The same redaction on every page shape: newest-first probe, amount order, deep pages.
    for (const q of ["sort=amount_desc", "sort=oldest&limit=1&offset=2", "limit=2&offset=2"]) {
      const page = await get("invA", `/api/v1/suspects?${q}`);
      for (const s of SECRETS_B) expect(page.body, q).not.toContain(s);
    }
    // Count, aggregates and meta carry no related settlements; they name nothing of B either.
    for (const url of ["/api/v1/aggregates", "/api/v1/suspects/count", "/api/v1/meta"]) {
      const other = await get("invA", url);
      expect(other.statusCode).toBe(200);
      for (const s of SECRETS_B) expect(other.body, url).not.toContain(s);
    }
  });

  it("case view: evidence keeps dates and drops the institution; settlements, not-shown list and timeline too", async () => {
    const overlap = finding("overlapping_stays", A);
    const res = await get("invA", `/api/v1/suspects/${overlap.suspect_id}`);
    for (const s of SECRETS_B) expect(res.body).not.toContain(s);
    const c = res.json() as CaseResponse;
    expect(c.suspect.settlement_ids).toEqual(["SA-OV2", marker(1)]);
    expect(c.suspect.evidence.overlapping_stays).toEqual([
      {
        settlement_id: marker(1),
        institution_id: OUT,
        institution_name: OUT,
        admission_date: "2025-07-01",
        discharge_date: "2025-07-10",
        discharge_reason: OUT,
      },
    ]);
    // The suspect's own stay is shown as stored.
    expect(c.suspect.evidence.stay).toEqual(overlap.evidence.stay);
    expect(c.settlements.map((s) => s.settlement_id)).toEqual(["SA-OV2"]);
    expect(c.settlements_not_shown).toEqual([marker(1)]);
    expect(c.timeline.rows.map((r) => r.settlement_id)).toEqual(["SA-OV2"]);
    expect(c.timeline.hidden_outside_regions).toBe(1);

    // Mixed: the stay in A stays readable, the three in B are numbered in settlement_ids order.
    const freq = finding("high_frequency", A);
    const f = await get("invA", `/api/v1/suspects/${freq.suspect_id}`);
    for (const s of SECRETS_B) expect(f.body).not.toContain(s);
    const fc = f.json() as CaseResponse;
    const stays = fc.suspect.evidence.stays as Record<string, unknown>[];
    expect(stays.map((s) => [s.settlement_id, s.institution_id, s.admission_date])).toEqual([
      [marker(1), OUT, "2025-01-05"],
      [marker(2), OUT, "2025-02-10"],
      ["SA-F0", inA2.institution_id, "2025-03-01"],
      [marker(3), OUT, "2025-03-20"],
      ["SA-F4", inA.institution_id, "2025-04-20"],
    ]);
    expect(fc.settlements.map((s) => s.settlement_id).sort()).toEqual(["SA-F0", "SA-F4"]);
    expect(fc.settlements_not_shown).toEqual([marker(1), marker(2), marker(3)]);

    // A first copy of a line: its settlement and line number hidden, its time and the suspect's own line kept.
    const dup = finding("duplicate_line", A);
    const d = await json<CaseResponse>("invA", `/api/v1/suspects/${dup.suspect_id}`);
    const [stored] = dup.evidence.lines as Record<string, unknown>[];
    expect(d.suspect.evidence.lines).toEqual([
      { ...stored, first_settlement_id: marker(1), first_line_no: OUT },
    ]);
    expect(JSON.stringify(d)).not.toContain("SB-D1");

    const visit = finding("outpatient_during_stay", A);
    const v = await get("invA", `/api/v1/suspects/${visit.suspect_id}`);
    for (const s of SECRETS_B) expect(v.body).not.toContain(s);
    expect((v.json() as CaseResponse).suspect.evidence.stays).toEqual([
      {
        settlement_id: marker(1),
        institution_id: OUT,
        institution_name: OUT,
        admission_date: "2025-08-01",
        discharge_date: "2025-08-20",
        discharge_reason: OUT,
      },
    ]);
  });

  it("CSV export: the settlement ids and evidence columns are redacted alike", async () => {
    const res = await get("invA", "/api/v1/suspects/export.csv");
    expect(res.statusCode).toBe(200);
    for (const s of SECRETS_B) expect(res.body).not.toContain(s);
    const rows = csvObjects(res.body);
    expect(rows).toHaveLength(4);
    for (const row of rows) {
      const c = await json<CaseResponse>("invA", `/api/v1/suspects/${row.suspect_id}`);
      expect(row.settlement_ids).toBe(c.suspect.settlement_ids.join(";"));
      expect(JSON.parse(row.evidence as string)).toEqual(c.suspect.evidence);
    }
    // With filters and a sort the statement changes: the redaction does not.
    const sorted = await get(
      "invA",
      "/api/v1/suspects/export.csv?sort=amount_desc&detector=frequent_admission&limit=5",
    );
    expect(csvObjects(sorted.body).map((r) => r.settlement_ids)).toEqual([
      `SA-F4;${marker(1)};${marker(2)};SA-F0;${marker(3)}`,
    ]);
  });

  it("the other way round: region B's investigator reads region A's stay as a marker", async () => {
    const freq = finding("high_frequency", B);
    const res = await get("invB", `/api/v1/suspects/${freq.suspect_id}`);
    for (const s of SECRETS_A) expect(res.body).not.toContain(s);
    expect((res.json() as CaseResponse).suspect.settlement_ids).toEqual([
      "SB-F3",
      "SB-F1",
      "SB-F2",
      marker(1),
    ]);
    const csv = await get("invB", "/api/v1/suspects/export.csv");
    for (const s of SECRETS_A) expect(csv.body).not.toContain(s);
  });

  it("a related settlement missing from the archive is redacted too (its region is unknown)", async () => {
    const c = await get("invA", "/api/v1/suspects/direct0001?run_id=direct");
    for (const s of SECRETS_B) expect(c.body).not.toContain(s);
    const body = c.json() as CaseResponse;
    expect(body.suspect.evidence.previous_stay).toEqual({
      settlement_id: marker(1),
      institution_id: OUT,
      institution_name: OUT,
      admission_date: "2025-09-01",
      discharge_date: "2025-09-05",
    });
    expect(body.settlements_not_shown).toEqual([marker(1)]);
    for (const url of ["/api/v1/suspects?run_id=direct", "/api/v1/suspects/export.csv?run_id=direct"]) {
      const res = await get("invA", url);
      for (const s of SECRETS_B) expect(res.body, url).not.toContain(s);
      expect(res.body).toContain(marker(1));
    }
  });

  it("an auditor scoped to region A is redacted like an investigator; users of every region see all", async () => {
    const overlap = finding("overlapping_stays", A);
    const scoped = await get("auditorA", `/api/v1/suspects/${overlap.suspect_id}`);
    for (const s of SECRETS_B) expect(scoped.body).not.toContain(s);
    for (const who of ["admin", "auditor"] as const) {
      for (const s of live) {
        const c = await json<CaseResponse>(who, `/api/v1/suspects/${s.suspect_id}`);
        expect(c.suspect.settlement_ids).toEqual(s.settlement_ids);
        // Evidence as stored (masked person fields aside: these findings carry none).
        expect(c.suspect.evidence).toEqual(s.evidence);
        expect(c.settlements_not_shown).toEqual([]);
      }
      const csv = await get(who, "/api/v1/suspects/export.csv");
      expect(
        csvObjects(csv.body)
          .map((r) => r.settlement_ids)
          .sort(),
      ).toEqual(live.map((s) => s.settlement_ids.join(";")).sort());
      const d = await json<CaseResponse>(who, "/api/v1/suspects/direct0001?run_id=direct");
      expect(d.suspect.evidence).toEqual(direct.evidence);
      expect(d.settlements_not_shown).toEqual(["SB-UNARCHIVED"]);
    }
  });
});

describe("a masked user filters by the pseudonym only", () => {
  const FILTERED = [
    "/api/v1/suspects",
    "/api/v1/suspects/count",
    "/api/v1/suspects/export.csv",
    "/api/v1/aggregates",
  ];

  it("a raw person id is a 400 naming the pseudonym, on list, count, export and aggregates, whether it exists or not", async () => {
    const outcomes = { refused: 0, answered: 0 };
    // Real ids, ids that match nothing, and the sequential guesses an enumeration would try.
    const guesses = [
      "P-OVERLAP",
      "P-FREQ",
      "P-NOBODY",
      ...Array.from({ length: 20 }, (_, i) => String(i + 1)),
    ];
    for (const who of ["invA", "invB", "auditor", "auditorA"] as const) {
      for (const person of guesses) {
        for (const route of FILTERED) {
          const res = await get(who, `${route}?person=${encodeURIComponent(person)}`);
          if (res.statusCode === 400) outcomes.refused++;
          else outcomes.answered++;
          expect(res.statusCode, `${who} ${route} ${person}`).toBe(400);
          const body = res.json() as { error: string; issues: { path: string; message: string }[] };
          expect(body.error).toBe("bad_request");
          expect(body.issues).toEqual([{ path: "person", message: expect.stringContaining("pseudonym") }]);
        }
      }
    }
    expect(outcomes).toEqual({ refused: 4 * guesses.length * FILTERED.length, answered: 0 });
  });

  it("look-alikes of a pseudonym are raw ids, no other door takes a person id, the pseudonym shown works", async () => {
    const overlap = finding("overlapping_stays", A);
    const c = await json<CaseResponse & { suspect: { person_id: string } }>(
      "invA",
      `/api/v1/suspects/${overlap.suspect_id}`,
    );
    const pseudonym = c.suspect.person_id;
    expect(pseudonym).toMatch(/^~[0-9a-f]{16}$/);
    const lookAlikes = [
      pseudonym.toUpperCase(),
      `${pseudonym}0`,
      pseudonym.slice(0, -1),
      pseudonym.slice(1),
      ` ${pseudonym}`,
      `~~${pseudonym.slice(1)}`,
    ];
    for (const v of lookAlikes) {
      expect((await get("invA", `/api/v1/suspects?person=${encodeURIComponent(v)}`)).statusCode, v).toBe(400);
    }
    // The case view and its timeline take no person; a person id is no suspect id.
    for (const url of [
      `/api/v1/suspects/${overlap.suspect_id}?person=P-OVERLAP`,
      "/api/v1/suspects/P-OVERLAP",
      "/api/v1/meta?person=P-OVERLAP",
    ]) {
      const res = await get("invA", url);
      expect([400, 404], url).toContain(res.statusCode);
      expect(res.body).not.toMatch(/~[0-9a-f]{16}/);
    }
    // What was shown works on every filtered route; unmasked users and admins may use raw ids.
    const p = encodeURIComponent(pseudonym);
    const l = await json<{ items: Item[] }>("invA", `/api/v1/suspects?person=${p}`);
    expect(l.items.map((i) => i.suspect_id)).toEqual([overlap.suspect_id]);
    expect(await json("invA", `/api/v1/suspects/count?person=${p}`)).toMatchObject({ total: 1 });
    expect(await json("invA", `/api/v1/aggregates?person=${p}`)).toMatchObject({ total: 1 });
    expect(csvObjects((await get("invA", `/api/v1/suspects/export.csv?person=${p}`)).body)).toHaveLength(1);
    for (const who of ["admin", "invAClear"] as const) {
      const raw = await json<{ items: Item[] }>(who, "/api/v1/suspects?person=P-OVERLAP");
      expect(raw.items.map((i) => i.suspect_id)).toEqual([overlap.suspect_id]);
    }
  });
});
