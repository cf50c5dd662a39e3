// POST /api/v1/check over the real embedded chdb archive: for every rule of the six detectors, a
// settlement checked before it is ingested gets exactly the findings that ingesting it (through
// the embedded pipeline, which archives each batch) then produces; a clean one, one after a
// reversal, after a late death record, and for a person with no history are checked too. Every
// answer is also asked of the pipeline's live engines (as `fundguard start` answers) and must be
// the same. The check stores nothing and is audited; the machine roles reach their own routes only.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DETECTORS, loadCatalogs } from "../../detectors/index.ts";
import type { DeathRecord, Settlement, Suspect } from "../../schemas/index.ts";
import { buildServer, hashToken, UsersFileDirectory } from "../../services/api/index.ts";
import { EmbeddedPipeline } from "../../services/embedded/pipeline.ts";
import type { CheckAnswer, CheckFinding } from "../../services/engine/check.ts";
import { activate, type EngineEvent } from "../../services/engine/engine.ts";
import { createLogger } from "../../services/log.ts";
import { chdbConfig, openStore, type Store } from "../../services/store/index.ts";
import { death, line, reversal, settlement, stay } from "../fixtures/events.ts";

const T = {
  admin: "fg_admin_check_test_token_00001",
  his: "fg_his_check_test_token_0000002",
  ingest: "fg_ingest_check_test_token_0003",
  inv: "fg_inv_check_test_token_0000004",
};
const USERS = {
  version: 1,
  users: [
    { name: "admin", role: "admin", tokens: [{ sha256: hashToken(T.admin) }] },
    { name: "his-lu-an", role: "his", tokens: [{ sha256: hashToken(T.his) }] },
    { name: "loader", role: "ingest", tokens: [{ sha256: hashToken(T.ingest) }] },
    { name: "inv", role: "investigator", regions: ["341502"], tokens: [{ sha256: hashToken(T.inv) }] },
  ],
};

const dir = mkdtempSync(join(tmpdir(), "fg-api-check-"));
let store: Store;
let pipeline: EmbeddedPipeline;
let app: Awaited<ReturnType<typeof buildServer>>;
/** The same server answering /check from the pipeline's live engines, as `fundguard start` does. */
let onEngine: Awaited<ReturnType<typeof buildServer>>;

beforeAll(async () => {
  store = await openStore(chdbConfig(join(dir, "data")));
  writeFileSync(join(dir, "users.json"), JSON.stringify(USERS));
  const active = activate(DETECTORS, loadCatalogs());
  pipeline = new EmbeddedPipeline(store);
  app = await buildServer({
    store,
    users: await UsersFileDirectory.open(join(dir, "users.json")),
    log: createLogger("api-check-test", "silent"),
    active,
  });
  await app.ready();
  onEngine = await buildServer({
    store,
    users: await UsersFileDirectory.open(join(dir, "users.json")),
    log: createLogger("api-check-test", "silent"),
    active,
    checkOnEngine: (s) => pipeline.check(s),
  });
  await onEngine.ready();
});

afterAll(async () => {
  await app?.close();
  await onEngine?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function ingest(...events: (Settlement | DeathRecord)[]): Promise<void> {
  for (const value of events) {
    const event = (
      "settlement_id" in value ? { kind: "settlement", value } : { kind: "death", value }
    ) as EngineEvent;
    pipeline.publish(event, JSON.stringify(value));
  }
  await pipeline.drain();
}

async function suspectsOf(person: string): Promise<Suspect[]> {
  const out: Suspect[] = [];
  for await (const s of store.exportSuspects()) if (s.person_id === person) out.push(s);
  return out;
}

const check = (body: object, token = T.his, server = app) =>
  server.inject({
    method: "POST",
    url: "/api/v1/check",
    headers: { authorization: `Bearer ${token}` },
    payload: body,
  });

/** The archive's answer, which the live engines' answer must equal. */
async function checked(s: unknown): Promise<CheckAnswer> {
  const r = await check({ settlement: s });
  expect(r.statusCode, r.body).toBe(200);
  const live = await check({ settlement: s }, T.his, onEngine);
  expect(live.json(), "the live engine's answer").toEqual(r.json());
  return r.json() as CheckAnswer;
}

const asFinding = (s: Suspect) => ({
  detector: s.detector,
  rule: s.rule,
  severity: s.severity,
  settlement_ids: s.settlement_ids,
  amount_at_risk_fen: s.amount_at_risk_fen,
  evidence: s.evidence,
});
const withoutTitles = ({ title, title_zh, ...f }: CheckFinding) => f;
const byKey = (a: { detector: string; rule: string; settlement_ids: string[] }, b: typeof a) =>
  `${a.detector}/${a.rule}/${a.settlement_ids[0]}`.localeCompare(
    `${b.detector}/${b.rule}/${b.settlement_ids[0]}`,
  );

/** Checks `proposed` on top of `history`, then ingests it: the check's findings are the new suspects. */
async function checkThenIngest(history: (Settlement | DeathRecord)[], proposed: Settlement) {
  await ingest(...history);
  const person = proposed.person_id;
  const before = await suspectsOf(person);
  const answer = await checked(proposed);
  expect(await suspectsOf(person), "a check stores no suspect").toEqual(before);
  await ingest(proposed);
  const known = new Set(before.map((s) => `${s.suspect_id}/${JSON.stringify(s.evidence)}`));
  const produced = (await suspectsOf(person)).filter(
    (s) => !known.has(`${s.suspect_id}/${JSON.stringify(s.evidence)}`),
  );
  expect(answer.findings.map(withoutTitles).sort(byKey)).toEqual(produced.map(asFinding).sort(byKey));
  for (const f of answer.findings) {
    const info = DETECTORS.find((d) => d.id === f.detector)?.rules[f.rule];
    expect([f.title, f.title_zh, f.severity]).toEqual([info?.title, info?.titleZh, info?.severity]);
  }
  const rank = ["PASS", "REMIND", "WARN", "BLOCK"];
  expect(answer.decision).toBe(
    answer.findings.reduce<string>(
      (d, f) => (rank.indexOf(f.severity) > rank.indexOf(d) ? f.severity : d),
      "PASS",
    ),
  );
  return answer;
}

const DRUG = "ZA06CAE0020010101748"; // 儿童咳颗粒, restricted to children under 18
const seen = new Set<string>();
const record = (a: CheckAnswer) => {
  for (const f of a.findings) seen.add(`${f.detector}/${f.rule}`);
  return a;
};

describe("POST /api/v1/check", () => {
  it("pediatric_drug, for a person with no history, a provisional id and no amounts", async () => {
    const items = [
      line({ item_code: DRUG, item_name: "儿童咳颗粒", category: "DRUG", service_date: "2025-03-01" }),
    ];
    const s = settlement({ person_id: "P-PED", items });
    const { total_fen, fund_paid_fen, settlement_id, ...draft } = s;
    const early = await checked({ ...draft, settlement_id: "draft-0001" });
    expect(early.decision).toBe("WARN");
    expect(early.state_as_of).toBeNull();
    const a = record(await checkThenIngest([], s));
    expect(a.state_as_of).toBeNull();
    expect(early.findings.map(({ settlement_ids, ...f }) => f)).toEqual(
      a.findings.map(({ settlement_ids, ...f }) => f),
    );
    expect(early.findings[0]?.settlement_ids).toEqual(["draft-0001"]);
  });

  it("gender_mismatch", async () => {
    const s = settlement({
      person_id: "P-SEX",
      diagnoses: [{ code: "O80.000", name: "单胎顺产", primary: true }],
    });
    expect(record(await checkThenIngest([], s)).decision).toBe("WARN");
  });

  it("frequent_admission: readmission and high_frequency", async () => {
    const p = stay("2025-03-01", "2025-03-05", { person_id: "P-READ" });
    const a = record(await checkThenIngest([p], stay("2025-03-12", "2025-03-14", { person_id: "P-READ" })));
    expect(a.findings.map((f) => f.rule)).toEqual(["readmission"]);
    expect(a.state_as_of).toBe(new Date(p.settled_at).toISOString());
    const stays = ["01-01", "02-01", "03-01"].map((d) =>
      stay(`2025-${d}`, `2025-${d.slice(0, 3)}03`, { person_id: "P-FREQ" }),
    );
    const b = record(await checkThenIngest(stays, stay("2025-04-01", "2025-04-03", { person_id: "P-FREQ" })));
    expect(b.findings.map((f) => f.rule)).toEqual(["high_frequency"]);
  });

  it("duplicate_billing: duplicate_line, overlapping_stays, outpatient_during_stay", async () => {
    const lines = [line({ item_code: "250101001000000", item_name: "血常规", service_date: "2025-05-02" })];
    const first = settlement({ person_id: "P-DUP", admission_date: "2025-05-02", items: lines });
    const again = settlement({ person_id: "P-DUP", admission_date: "2025-05-03", items: lines });
    expect(record(await checkThenIngest([first], again)).findings.map((f) => f.rule)).toEqual([
      "duplicate_line",
    ]);

    const a = stay("2025-06-01", "2025-06-10", { person_id: "P-OVL" });
    const b = stay("2025-06-05", "2025-06-12", { person_id: "P-OVL", institution_id: "H34150300456" });
    const overlap = record(await checkThenIngest([a], b));
    expect(overlap.decision).toBe("BLOCK");
    expect(overlap.findings.map((f) => f.rule)).toEqual(["overlapping_stays"]);

    const inStay = stay("2025-07-01", "2025-07-10", { person_id: "P-OUT" });
    const visit = settlement({ person_id: "P-OUT", admission_date: "2025-07-05" });
    expect(record(await checkThenIngest([inStay], visit)).findings.map((f) => f.rule)).toEqual([
      "outpatient_during_stay",
    ]);
  });

  it("deceased_activity after a late death record", async () => {
    const before = settlement({ person_id: "P-DEAD", admission_date: "2025-03-01" });
    const lateDeath = death("2025-02-01", { person_id: "P-DEAD", reported_at: "2025-04-01T09:00:00+08:00" });
    const clean = await checked(settlement({ person_id: "P-DEAD", admission_date: "2025-04-05" }));
    expect(clean.decision).toBe("PASS");
    const a = record(
      await checkThenIngest(
        [before, lateDeath],
        settlement({ person_id: "P-DEAD", admission_date: "2025-04-05" }),
      ),
    );
    expect(a.decision).toBe("BLOCK");
    expect(a.findings.map((f) => f.rule)).toEqual(["deceased_activity"]);
    expect(a.state_as_of).toBe(new Date("2025-04-01T09:00:00+08:00").toISOString());
  });

  it("high_out_of_pocket", async () => {
    const big = (date: string, fen: number) =>
      settlement({
        person_id: "P-OOP",
        admission_date: date,
        items: [line({ item_code: "330100001000000", unit_price_fen: fen, service_date: date })],
        fund_paid_fen: 0,
      });
    const a = record(await checkThenIngest([big("2025-02-01", 1_400_000)], big("2025-03-01", 200_000)));
    expect(a.decision).toBe("REMIND");
    expect(a.findings[0]?.evidence).toMatchObject({ cumulative_after_fen: 1_600_000 });
  });

  it("checks the nine rules of the first six detectors through the real ingest path, by registered names", () => {
    // Every registered rule, a later detector's included, is checked against its generated cases in
    // test/unit/check-rules.test.ts; here each named case went through the API and the pipeline.
    const all = new Set(DETECTORS.flatMap((d) => Object.keys(d.rules).map((r) => `${d.id}/${r}`)));
    expect(seen.size).toBe(9);
    for (const rule of seen) expect(all.has(rule), rule).toBe(true);
  });

  it("a clean settlement passes, before and after history; a reversal takes its stay out of the evidence", async () => {
    expect(
      await checkThenIngest([], settlement({ person_id: "P-CLEAN", admission_date: "2025-01-10" })),
    ).toMatchObject({
      decision: "PASS",
      findings: [],
    });
    const again = await checkThenIngest(
      [],
      settlement({ person_id: "P-CLEAN", admission_date: "2025-02-10" }),
    );
    expect(again.decision).toBe("PASS");
    expect(again.state_as_of).not.toBeNull();

    const p = stay("2025-08-01", "2025-08-05", { person_id: "P-REV" });
    const readmit = stay("2025-08-12", "2025-08-14", { person_id: "P-REV" });
    await ingest(p);
    expect((await checked(readmit)).decision).toBe("WARN");
    const r = reversal(p);
    expect(await checkThenIngest([r], readmit)).toMatchObject({ decision: "PASS", findings: [] });
    // A reversed settlement sent again is cancelled, as the stream treats it.
    expect((await checked(p)).decision).toBe("PASS");
  });

  it("answers concurrent checks of different people each from their own evidence", async () => {
    const proposals = [
      stay("2025-03-16", "2025-03-17", { person_id: "P-READ" }),
      settlement({ person_id: "P-CLEAN", admission_date: "2025-03-10" }),
      settlement({ person_id: "P-DEAD", admission_date: "2025-05-01" }),
      settlement({ person_id: "P-NOBODY", admission_date: "2025-05-01" }),
    ];
    const answers = await Promise.all(proposals.map((s) => checked(s)));
    expect(answers.map((a) => a.decision)).toEqual(["WARN", "PASS", "BLOCK", "PASS"]);
    expect(answers[3]?.state_as_of).toBeNull();
  });

  it("answers 400 with the issues of an invalid settlement", async () => {
    const r = await check({ settlement: { ...settlement(), gender: "X", birth_date: "1980-13-01" } });
    expect(r.statusCode).toBe(400);
    const paths = (r.json() as { issues: { path: string }[] }).issues.map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(["settlement.gender", "settlement.birth_date"]));
    expect((await check({ nothing: 1 })).statusCode).toBe(400);
    expect((await check({ settlement: reversal(settlement()) })).json()).toMatchObject({
      issues: [{ path: "settlement.event_type" }],
    });
  });

  it("is audited with the decision", async () => {
    const r = await check({
      settlement: settlement({
        person_id: "P-AUDIT",
        diagnoses: [{ code: "O80.000", name: "单胎顺产", primary: true }],
      }),
    });
    expect(r.statusCode, r.body).toBe(200);
    await app.inject({ method: "GET", url: "/api/v1/me", headers: { authorization: `Bearer ${T.admin}` } });
    const rows = await store.query<{ who: string; filters: string }>(
      "SELECT who, filters FROM audit_log WHERE route = 'POST /api/v1/check' AND filters LIKE '%P-AUDIT%'",
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]?.who).toBe("his-lu-an");
    expect(JSON.parse(rows[0]?.filters as string)).toMatchObject({ decision: "WARN", http_status: 200 });
  });
});

describe("machine roles", () => {
  const call = (token: string, method: "GET" | "POST", url: string, payload?: object) =>
    app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${token}` },
      ...(payload ? { payload } : {}),
    });
  const body = { settlement: settlement({ person_id: "P-ROLE" }) };

  it("a his token checks and cannot read suspects or ingest", async () => {
    expect((await call(T.his, "POST", "/api/v1/check", body)).statusCode).toBe(200);
    for (const url of ["/api/v1/suspects", "/api/v1/aggregates", "/api/v1/meta", "/api/v1/audit"])
      expect((await call(T.his, "GET", url)).statusCode, url).toBe(403);
    expect((await call(T.his, "POST", "/api/v1/ingest/settlements", [])).statusCode).toBe(403);
  });

  it("an ingest token cannot check or read; an investigator cannot ingest", async () => {
    expect((await call(T.ingest, "POST", "/api/v1/check", body)).statusCode).toBe(403);
    expect((await call(T.ingest, "GET", "/api/v1/suspects")).statusCode).toBe(403);
    expect((await call(T.inv, "POST", "/api/v1/ingest/deaths", [])).statusCode).toBe(403);
    expect((await call(T.inv, "POST", "/api/v1/check", body)).statusCode).toBe(200);
  });
});
