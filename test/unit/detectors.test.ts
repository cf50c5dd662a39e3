import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { addDays } from "../../detectors/dates.ts";
import { DETECTORS, loadCatalogs } from "../../detectors/index.ts";
import type { SettlementRecord } from "../../detectors/sdk.ts";
import { activate, Engine } from "../../services/engine/engine.ts";
import { death, line, reversal, settlement, stay } from "../fixtures/events.ts";
import { testPersonStore } from "../fixtures/person-store.ts";
import { asEvent, keys, rules, run } from "../fixtures/run.ts";

/**
 * An engine restored from the changelog entries another wrote for `events`, each first passed to
 * `rewrite` (to stand for state written by an older version).
 */
function restoredFrom(events: Parameters<typeof asEvent>[0][], rewrite: (value: unknown) => void): Engine {
  const a = new Engine({
    store: testPersonStore(),
    detectors: activate(DETECTORS, loadCatalogs()),
    changelog: true,
  });
  for (const e of events) a.process(asEvent(e));
  const b = new Engine({ store: testPersonStore(), detectors: activate(DETECTORS, loadCatalogs()) });
  for (const { key, value } of a.takeDirty()) {
    rewrite(value);
    b.restoreEntry(key, JSON.parse(JSON.stringify(value)));
  }
  return b;
}

const drug = (item_code: string, service_date: string) =>
  line({ item_code, item_name: "儿童药", category: "DRUG", service_date });
const PEDIATRIC = "ZA06CAE0020010101748"; // 儿童咳颗粒, empty age_limit → 18
const PEG_12 = "XA06ADF336P0010123"; // 复方聚乙二醇(3350)电解质散, age_limit 12

describe("pediatric_drug", () => {
  it("fires from the 18th birthday on, not the day before", () => {
    const before = settlement({ birth_date: "2007-03-01", items: [drug(PEDIATRIC, "2025-02-28")] });
    const on = settlement({ birth_date: "2007-03-01", items: [drug(PEDIATRIC, "2025-03-01")] });
    expect(rules(run([before, on]), "pediatric_drug")).toEqual([
      `pediatric_drug/pediatric_drug:${on.settlement_id}`,
    ]);
  });

  it("uses the catalog's own age limit when it has one", () => {
    const eleven = settlement({ birth_date: "2013-05-10", items: [drug(PEG_12, "2025-05-09")] });
    const twelve = settlement({ birth_date: "2013-05-10", items: [drug(PEG_12, "2025-05-10")] });
    const [s] = run([eleven, twelve]).filter((x) => x.detector === "pediatric_drug");
    expect(s?.settlement_ids).toEqual([twelve.settlement_id]);
    expect(s?.evidence).toMatchObject({
      lines: [{ age_at_service: 12, age_limit: 12, generic_name: expect.any(String) }],
    });
  });

  it("takes age on each line's service date, and a 29 February birthday turns over on 1 March", () => {
    const s = settlement({
      birth_date: "2008-02-29",
      items: [drug(PEDIATRIC, "2026-02-28"), { ...drug(PEDIATRIC, "2026-03-01"), line_no: 2 }],
    });
    const [found] = run([s]);
    expect(found?.evidence).toMatchObject({ lines: [{ line_no: 2, age_at_service: 18 }] });
    expect(found?.evidence.lines).toHaveLength(1);
  });

  it("ignores non-drug lines and honours a configured default age", () => {
    const s = settlement({
      birth_date: "2010-01-01",
      items: [{ ...drug(PEDIATRIC, "2025-06-01"), category: "SERVICE" }],
    });
    expect(run([s])).toEqual([]);
    const young = settlement({ birth_date: "2010-01-01", items: [drug(PEDIATRIC, "2025-06-01")] });
    expect(run([young])).toEqual([]);
    expect(keys(run([young], { pediatric_drug: { defaultAgeLimit: 14 } }))).toHaveLength(1);
  });

  it("lets the longest matching prefix decide, from a --reference folder", () => {
    const dir = mkdtempSync(join(tmpdir(), "fg-ref-"));
    writeFileSync(
      join(dir, "pediatric-drugs.csv"),
      "code_prefix,generic_name,age_limit,restriction,source\nXA01,broad,6,儿童,test\nXA0123,narrow,,儿童,test\n",
    );
    writeFileSync(join(dir, "sex-restricted-codes.csv"), "code_prefix,kind,allowed_sex,description,source\n");
    const engine = new Engine({
      store: testPersonStore(),
      detectors: activate(DETECTORS, loadCatalogs(dir)),
    });
    const ten = (code: string) => settlement({ birth_date: "2015-01-01", items: [drug(code, "2025-06-01")] });
    const broad = ten("XA0199");
    const narrow = ten("XA012345");
    const found = [asEvent(broad), asEvent(narrow)].flatMap((e) => engine.process(e));
    expect(found.map((c) => c.suspect.settlement_ids[0])).toEqual([broad.settlement_id]);
  });
});

describe("gender_mismatch", () => {
  it("flags a female-only diagnosis on a man and a male-only one on a woman, primary or not", () => {
    const man = settlement({
      gender: "M",
      diagnoses: [{ code: "O80.000", name: "单胎顺产", primary: false }],
    });
    const woman = settlement({
      gender: "F",
      diagnoses: [{ code: "N40.x00", name: "前列腺增生", primary: true }],
    });
    const fine = settlement({
      gender: "M",
      diagnoses: [{ code: "N40.x00", name: "前列腺增生", primary: true }],
    });
    const found = run([man, woman, fine]);
    expect(rules(found, "gender_mismatch")).toEqual(
      [man, woman].map((s) => `gender_mismatch/gender_mismatch:${s.settlement_id}`).sort(),
    );
    expect(found.find((s) => s.settlement_ids[0] === man.settlement_id)?.evidence).toMatchObject({
      gender: "M",
      offending: [{ kind: "DIAGNOSIS", code: "O80.000", allowed_sex: "F" }],
    });
  });

  it("flags sex-restricted items by code prefix, one suspect per settlement", () => {
    const s = settlement({
      gender: "F",
      items: [
        line({ item_code: "002101030280000", item_name: "阴茎海绵体造影" }),
        line({ line_no: 2, item_code: "XG04BET001A0010999", item_name: "他达拉非片", category: "DRUG" }),
      ],
    });
    const found = run([s]);
    expect(found).toHaveLength(1);
    expect(found[0]?.evidence.offending).toHaveLength(2);
  });
});

describe("frequent_admission", () => {
  const P = "H34150200123";
  it("readmission: 15 days after discharge fires, 16 does not", () => {
    const first = stay("2025-01-01", "2025-01-10");
    const day15 = stay("2025-01-25", "2025-01-30");
    expect(rules(run([first, day15]), "frequent_admission")).toEqual([
      `frequent_admission/readmission:${day15.settlement_id}>${first.settlement_id}`,
    ]);
    const day16 = stay("2025-01-26", "2025-01-30");
    expect(rules(run([first, day16]), "frequent_admission")).toEqual([]);
  });

  it("readmission: only at the same institution, against the latest earlier discharge", () => {
    const a = stay("2025-01-01", "2025-01-05");
    const b = stay("2025-01-06", "2025-01-20");
    const elsewhere = stay("2025-01-21", "2025-01-25", { institution_id: "H34150200999" });
    const c = stay("2025-02-01", "2025-02-03", { institution_id: P });
    const found = rules(run([c, elsewhere, b, a]), "frequent_admission").filter((k) =>
      k.includes("/readmission:"),
    );
    expect(found).toEqual(
      [
        `frequent_admission/readmission:${b.settlement_id}>${a.settlement_id}`,
        `frequent_admission/readmission:${c.settlement_id}>${b.settlement_id}`,
      ].sort(),
    );
  });

  it("high_frequency: a fourth stay on day 179 fires, on day 180 it does not", () => {
    const far = (adm: string) => stay(adm, adm, { institution_id: `H${adm.replaceAll("-", "")}000` });
    const base = [far("2025-01-01"), far("2025-03-01"), far("2025-05-01")];
    const day179 = far("2025-06-29");
    const day180 = far("2025-06-30");
    expect(rules(run([...base, day179]), "frequent_admission")).toEqual([
      `frequent_admission/high_frequency:${day179.settlement_id}>${base.map((s) => s.settlement_id).join(">")}`,
    ]);
    expect(rules(run([...base, day180]), "frequent_admission")).toEqual([]);
  });
});

describe("duplicate_billing", () => {
  const dupLine = (settled: string) =>
    settlement({
      settled_at: settled,
      items: [
        line({
          item_code: "250101001000000",
          item_name: "血常规",
          service_date: "2025-03-01",
          quantity: 1,
          unit_price_fen: 1500,
        }),
      ],
    });

  it("duplicate_line: every copy but the first by settled_at is a suspect", () => {
    const first = dupLine("2025-03-01T09:00:00+08:00");
    const second = dupLine("2025-03-02T09:00:00+08:00");
    const third = dupLine("2025-03-03T09:00:00+08:00");
    expect(rules(run([third, second, first]), "duplicate_billing")).toEqual(
      [second, third]
        .map((s) => `duplicate_billing/duplicate_line:${s.settlement_id}>${first.settlement_id}`)
        .sort(),
    );
  });

  it("duplicate_line: a different quantity, another institution or the same settlement are not duplicates", () => {
    const a = dupLine("2025-03-01T09:00:00+08:00");
    const qty = { ...dupLine("2025-03-02T09:00:00+08:00") };
    qty.items = [{ ...(qty.items[0] as (typeof qty.items)[0]), quantity: 2, amount_fen: 3000 }];
    const other = { ...dupLine("2025-03-02T10:00:00+08:00"), institution_id: "H34150200999" };
    const twice = settlement({ items: [line({ line_no: 1 }), line({ line_no: 2 })] });
    expect(rules(run([a, qty, other, { ...twice, person_id: "P2" }]), "duplicate_billing")).toEqual([]);
  });

  it("duplicate_line: a copy among lines of other days is found; state kept without date ranges still matches", () => {
    const line2 = (service_date: string, line_no: number) =>
      line({
        line_no,
        item_code: "250101001000000",
        item_name: "血常规",
        service_date,
        unit_price_fen: 1500,
      });
    const stayLines = stay("2025-02-25", "2025-03-05", {
      items: [line2("2025-02-25", 1), line2("2025-03-01", 2), line2("2025-03-05", 3)],
    });
    const copy = dupLine("2025-03-06T09:00:00+08:00");
    // The copy is an outpatient visit inside the stay, so it is also that.
    expect(rules(run([copy, stayLines]), "duplicate_billing")).toEqual([
      `duplicate_billing/duplicate_line:${copy.settlement_id}>${stayLines.settlement_id}`,
      `duplicate_billing/outpatient_during_stay:${copy.settlement_id}>${stayLines.settlement_id}`,
    ]);
    // A worker restoring state written before the date ranges were kept.
    const b = restoredFrom([stayLines], (value) => {
      const facts = (value as { facts?: { duplicate_billing?: Record<string, unknown> } } | null)?.facts;
      if (facts?.duplicate_billing) {
        delete facts.duplicate_billing.first;
        delete facts.duplicate_billing.last;
      }
    });
    const found = b.process(asEvent(copy)).map((c) => `${c.op}:${c.suspect.rule}`);
    expect(found).toContain("upsert:duplicate_line");
  });

  it("duplicate_line: state kept with the item names inside its lines gives the same evidence", () => {
    const first = dupLine("2025-03-01T09:00:00+08:00");
    const second = dupLine("2025-03-02T09:00:00+08:00");
    const evidence = (e: Engine) =>
      e.process(asEvent(second)).find((c) => c.suspect.rule === "duplicate_line")?.suspect.evidence;
    const fresh = new Engine({ store: testPersonStore(), detectors: activate(DETECTORS, loadCatalogs()) });
    fresh.process(asEvent(first));
    const expected = evidence(fresh);
    expect(JSON.stringify(expected)).toContain("血常规");

    let rewritten = 0;
    const b = restoredFrom([first], (value) => {
      const facts = (value as { facts?: { duplicate_billing?: { lines: string; names?: string[] } } } | null)
        ?.facts;
      const dup = facts?.duplicate_billing;
      if (dup?.names) {
        const names = dup.names;
        dup.lines = JSON.stringify((JSON.parse(dup.lines) as unknown[][]).map((l, i) => [...l, names[i]]));
        delete dup.names;
        rewritten++;
      }
    });
    expect(rewritten).toBe(1);
    expect(evidence(b)).toEqual(expected);
  });

  it("overlapping_stays: the later stay is the suspect; a TRANSFER out and admission elsewhere the same day is not", () => {
    const a = stay("2025-04-01", "2025-04-10");
    const b = stay("2025-04-05", "2025-04-12", { institution_id: "H34150200999" });
    expect(rules(run([b, a]), "duplicate_billing")).toEqual([
      `duplicate_billing/overlapping_stays:${b.settlement_id}>${a.settlement_id}`,
    ]);
    const out = stay("2025-05-01", "2025-05-10", { discharge_reason: "TRANSFER" });
    const into = stay("2025-05-10", "2025-05-20", { institution_id: "H34150200999" });
    expect(rules(run([into, out]), "duplicate_billing")).toEqual([]);
  });

  it("outpatient_during_stay: the admission day is fine, the day after is not", () => {
    const s = stay("2025-06-01", "2025-06-10");
    const onAdmission = settlement({ admission_date: "2025-06-01", institution_id: "C1" });
    const dayAfter = settlement({
      admission_date: "2025-06-02",
      visit_type: "PHARMACY",
      institution_id: "D1",
    });
    const onDischarge = settlement({ admission_date: "2025-06-10", institution_id: "C1" });
    expect(rules(run([onAdmission, dayAfter, onDischarge, s]), "duplicate_billing")).toEqual([
      `duplicate_billing/outpatient_during_stay:${dayAfter.settlement_id}>${s.settlement_id}`,
    ]);
  });
});

describe("deceased_activity", () => {
  it("a stay ending in death on the death date and settled later is legitimate", () => {
    const s = stay("2025-07-01", "2025-07-09", {
      discharge_reason: "DEATH",
      settled_at: "2025-07-20T10:00:00+08:00",
    });
    expect(run([s, death("2025-07-09")])).toEqual([]);
  });

  it("flags services after death whether the death record comes before or after", () => {
    const s = settlement({ admission_date: "2025-08-02" });
    const d = death("2025-08-01", { reported_at: "2025-09-15T09:00:00+08:00" });
    for (const order of [
      [s, d],
      [d, s],
    ]) {
      const found = run(order);
      expect(rules(found, "deceased_activity")).toEqual([
        `deceased_activity/deceased_activity:${s.settlement_id}`,
      ]);
      expect(found[0]?.evidence).toMatchObject({ death_date: "2025-08-01", death_source: "CIVIL_AFFAIRS" });
    }
  });

  it("a later death record replaces an earlier one, whatever the arrival order", () => {
    const s = settlement({ admission_date: "2025-08-02" });
    const wrong = death("2025-08-01", { reported_at: "2025-09-01T09:00:00+08:00" });
    const corrected = death("2025-09-01", { reported_at: "2025-09-20T09:00:00+08:00" });
    expect(run([s, wrong, corrected])).toEqual([]);
    expect(run([s, corrected, wrong])).toEqual([]);
  });

  it("a line served after death counts even when admission was before", () => {
    const s = settlement({ admission_date: "2025-08-01", items: [line({ service_date: "2025-08-03" })] });
    expect(keys(run([s, death("2025-08-01")]))).toHaveLength(1);
  });
});

describe("reversals", () => {
  const copy = (id: string, settled: string) =>
    settlement({
      settlement_id: id,
      settled_at: settled,
      items: [line({ service_date: "2025-03-01", unit_price_fen: 777 })],
    });

  it("a reversal retracts the finding, and an identical resubmission is found again under its new id", () => {
    const first = copy("A", "2025-03-01T09:00:00+08:00");
    const dup = copy("B", "2025-03-02T09:00:00+08:00");
    const resubmitted = copy("C", "2025-03-04T09:00:00+08:00");
    const events = [first, dup, reversal(dup), resubmitted];
    expect(rules(run(events), "duplicate_billing")).toEqual(["duplicate_billing/duplicate_line:C>A"]);
  });

  it("reversing the first copy clears the duplicate; a reversal arriving first cancels on arrival", () => {
    const first = copy("A", "2025-03-01T09:00:00+08:00");
    const dup = copy("B", "2025-03-02T09:00:00+08:00");
    expect(run([first, dup, reversal(first)])).toEqual([]);
    expect(run([reversal(first), dup, first])).toEqual([]);
  });

  it("emits a retraction change for the withdrawn finding", () => {
    const engine = new Engine({ store: testPersonStore(), detectors: activate(DETECTORS, loadCatalogs()) });
    const first = copy("A", "2025-03-01T09:00:00+08:00");
    const dup = copy("B", "2025-03-02T09:00:00+08:00");
    engine.process(asEvent(first));
    const [found] = engine.process(asEvent(dup));
    const changes = engine.process(asEvent(reversal(dup)));
    expect(changes).toEqual([{ op: "retract", suspect: found?.suspect, configHash: found?.configHash }]);
    expect(engine.process(asEvent(reversal(dup)))).toEqual([]);
    expect(engine.stats.duplicates).toBe(1);
  });
});

describe("high_out_of_pocket", () => {
  const spend = (day: string, oopYuan: number) =>
    settlement({
      admission_date: day,
      items: [line({ service_date: day, unit_price_fen: oopYuan * 200 })],
      total_fen: oopYuan * 200,
      fund_paid_fen: oopYuan * 100,
    });

  it("fires once per threshold, on the settlement that reaches it, per calendar year", () => {
    const a = spend("2025-02-01", 10_000);
    const b = spend("2025-03-01", 5_000); // reaches 15,000 exactly
    const c = spend("2025-04-01", 20_000); // reaches 30,000
    const nextYear = spend("2026-01-05", 14_000);
    const found = run([c, nextYear, b, a]).filter((s) => s.detector === "high_out_of_pocket");
    expect(found.map((s) => s.settlement_ids[0]).sort()).toEqual([b.settlement_id, c.settlement_id].sort());
    expect(found.find((s) => s.settlement_ids[0] === c.settlement_id)?.evidence).toMatchObject({
      thresholds_reached_fen: [3_000_000],
      cumulative_after_fen: 3_500_000,
    });
  });
});

describe("engine", () => {
  it("ignores a re-delivered settlement and counts too-late events", () => {
    const engine = new Engine({
      store: testPersonStore(),
      detectors: activate(DETECTORS, loadCatalogs()),
      retentionDays: 30,
    });
    const s = settlement({ settled_at: "2025-06-01T10:00:00+08:00" });
    engine.process(asEvent(s));
    engine.process(asEvent(s));
    engine.process(asEvent(settlement({ settled_at: "2025-01-01T10:00:00+08:00" })));
    expect(engine.stats).toMatchObject({ settlements: 2, duplicates: 1, tooLate: 1 });
  });

  it("restores a person from a snapshot and carries on as if never stopped", () => {
    const first = stay("2025-01-01", "2025-01-10");
    const second = stay("2025-01-20", "2025-01-22");
    const a = new Engine({
      store: testPersonStore(),
      detectors: activate(DETECTORS, loadCatalogs()),
      changelog: true,
    });
    a.process(asEvent(first));
    const entries = a.takeDirty();
    const b = new Engine({ store: testPersonStore(), detectors: activate(DETECTORS, loadCatalogs()) });
    for (const { key, value } of entries) b.restoreEntry(key, JSON.parse(JSON.stringify(value)));
    const changes = b.process(asEvent(second));
    expect(changes.map((c) => `${c.op}:${c.suspect.rule}`)).toEqual(["upsert:readmission"]);
  });

  it("writes a settlement's findings to the changelog only when they change, not at each re-evaluation", () => {
    const engine = new Engine({
      store: testPersonStore(),
      detectors: activate(DETECTORS, loadCatalogs()),
      changelog: true,
    });
    const copy = (settlement_id: string, hour: number) =>
      settlement({ settlement_id, settled_at: `2025-03-01T${hour}:00:00+08:00` });
    engine.process(asEvent(copy("A", 10)));
    engine.process(asEvent(copy("B", 11)));
    const findingsOf = () =>
      engine
        .takeDirty()
        .map((e) => e.key.split("\u0001"))
        .filter(([, kind]) => kind === "f")
        .map(([, , id]) => id);
    expect(findingsOf()).toEqual(["B"]);
    // A third copy re-judges B (it shares B's line), whose finding is as it was: only C's is written.
    const changes = engine.process(asEvent(copy("C", 12)));
    expect(changes.map((c) => `${c.op}:${c.suspect.settlement_ids[0]}`)).toEqual(["upsert:C"]);
    expect(findingsOf()).toEqual(["C"]);
  });

  it("restores from the changelog persons and settlements whose ids hold the key's separator or its escape", () => {
    const ids = ["A\u0001s\u0001B", "\u0002\u0003", "C\u0002\u0001", "plain"];
    const events = ids.flatMap((person_id, i) => [
      settlement({ person_id, settlement_id: `${person_id}\u0001${i}a` }),
      settlement({ person_id, settlement_id: `${person_id}\u0002${i}b` }),
      reversal(settlement({ person_id, settlement_id: `${person_id}\u0001${i}c` })),
    ]);
    const whole = run(events);
    expect(new Set(whole.map((s) => s.person_id))).toEqual(new Set(ids));
    const b = restoredFrom(events, () => undefined);
    expect(b.personCount).toBe(ids.length);
    expect(keys([...b.activeSuspects()]).sort()).toEqual(keys(whole).sort());
    // Carrying on after the restore: the settlements it holds are recognised by id.
    for (const e of events) b.process(asEvent(e));
    expect(b.stats.duplicates).toBe(events.length);
  });

  it("evicts what falls behind the retention: persons seen long ago leave, recent evidence stays", () => {
    const engine = new Engine({
      store: testPersonStore(),
      detectors: activate(DETECTORS, loadCatalogs()),
      retentionDays: 30,
    });
    const at = (day: number) => `${addDays("2025-01-01", day)}T10:00:00+08:00`;
    for (let i = 0; i < 20; i++) {
      engine.process(
        asEvent(settlement({ person_id: `OLD${i}`, settlement_id: `O${i}`, settled_at: at(0) })),
      );
    }
    // A reversal whose original never arrives is state too, and leaves with the rest.
    engine.process(asEvent(reversal(settlement({ person_id: "R", settlement_id: "X", settled_at: at(1) }))));
    expect(engine.personCount).toBe(21);
    for (let day = 0; day <= 100; day += 10) {
      const s = stay(addDays("2025-01-01", day), addDays("2025-01-01", day + 2), {
        person_id: "LIVE",
        settlement_id: `L${day}`,
        settled_at: at(day + 2),
      });
      engine.process(asEvent(s));
    }
    expect(engine.personCount).toBe(1);
    // Stays 8 days apart are readmissions while both are retained: the last ones still are.
    const found = keys([...engine.activeSuspects()]);
    expect(found).toContain("frequent_admission/readmission:L100>L90");
  });

  describe("detector horizons (reachDays plus the lateness)", () => {
    const STATIN = "XC10AAA023A001010100932";
    const at = (day: number) => addDays("2025-01-01", day);
    const visit = (id: string, day: number, quantity: number) =>
      settlement({
        person_id: "H",
        settlement_id: id,
        visit_type: "PHARMACY",
        admission_date: at(day),
        settled_at: `${at(day)}T10:00:00+08:00`,
        items: [
          line({
            item_code: STATIN,
            item_name: "阿托伐他汀钙片",
            category: "DRUG",
            quantity,
            service_date: at(day),
          }),
        ],
      });
    // A, then B 5 days later: 100 units in 30 days make B excessive. Then time moves on 95 days, and A is reversed.
    function afterReversal(latenessDays: number) {
      const engine = new Engine({
        store: testPersonStore(),
        detectors: activate(DETECTORS, loadCatalogs()),
        changelog: true,
        latenessDays,
      });
      const a = visit("A", 0, 60);
      engine.process(asEvent(a));
      engine.process(asEvent(visit("B", 5, 40)));
      expect(rules([...engine.activeSuspects()], "excessive_dispensing")).toEqual([
        "excessive_dispensing/excessive_dispensing:B>A",
      ]);
      engine.takeDirty();
      engine.process(asEvent(settlement({ person_id: "OTHER", settled_at: `${at(100)}T10:00:00+08:00` })));
      engine.process(asEvent({ ...reversal(a), settled_at: `${at(100)}T11:00:00+08:00` }));
      // The records written since B was found (A's last entry: its removal).
      const records = new Map(
        engine
          .takeDirty()
          .filter(({ key }) => key.startsWith("H\u0001s\u0001"))
          .map(({ key, value }) => [key.slice(4), value as SettlementRecord | null]),
      );
      return { records, found: rules([...engine.activeSuspects()], "excessive_dispensing") };
    }

    it("within a detector's horizon a change re-evaluates its settlements", () => {
      const { records, found } = afterReversal(400);
      expect([...records]).toEqual([["A", null]]);
      expect(found).toEqual([]);
    });

    it("past it, the detector's facts leave the records (others' stay) and its findings there are final", () => {
      // Horizon 30 + 10 days: at day 100 both visits are past it.
      const { records, found } = afterReversal(10);
      expect(records.get("A")).toBeNull();
      expect(records.get("B")?.facts.excessive_dispensing).toBeUndefined();
      expect(records.get("B")?.facts.duplicate_billing).toBeDefined();
      expect(found).toEqual(["excessive_dispensing/excessive_dispensing:B>A"]);
    });

    it("an event arriving past every horizon is still judged on arrival", () => {
      const engine = new Engine({
        store: testPersonStore(),
        detectors: activate(DETECTORS, loadCatalogs()),
        latenessDays: 10,
      });
      engine.process(asEvent(settlement({ person_id: "OTHER", settled_at: `${at(200)}T10:00:00+08:00` })));
      const late = settlement({
        birth_date: "1990-01-01",
        settled_at: `${at(0)}T10:00:00+08:00`,
        items: [drug(PEDIATRIC, at(0))],
      });
      expect(engine.process(asEvent(late)).map((c) => `${c.op}:${c.suspect.rule}`)).toEqual([
        "upsert:pediatric_drug",
      ]);
    });
  });

  it("records changelog entries only when asked to, so an undrained engine does not grow with every event", () => {
    const plain = new Engine({ store: testPersonStore(), detectors: activate(DETECTORS, loadCatalogs()) });
    plain.process(asEvent(stay("2025-01-01", "2025-01-10")));
    expect(() => plain.takeDirty()).toThrow(/changelog: true/);
    const logged = new Engine({
      store: testPersonStore(),
      detectors: activate(DETECTORS, loadCatalogs()),
      changelog: true,
    });
    logged.process(asEvent(stay("2025-01-01", "2025-01-10")));
    expect(logged.takeDirty().length).toBeGreaterThan(0);
    expect(logged.takeDirty()).toEqual([]);
  });
});
