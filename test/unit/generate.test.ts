import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { beforeAll, describe, expect, it } from "vitest";
import {
  type DeathRecord,
  deathRecordValidator,
  type Settlement,
  settlementValidator,
} from "../../schemas/index.ts";
import { ageOn, birthdayAt, dateOf, parseDay } from "../../services/generate/calendar.ts";
import { type GenerateSummary, generate } from "../../services/generate/generate.ts";
import { AliasTable, Rng } from "../../services/generate/prng.ts";
import { ALL_RULES } from "../fixtures/run.ts";

const tmp = () => mkdtempSync(join(tmpdir(), "fundguard-generate-"));
const readLines = (file: string) => {
  const raw = file.endsWith(".gz")
    ? gunzipSync(readFileSync(file)).toString("utf8")
    : readFileSync(file, "utf8");
  return raw.split("\n").filter((l) => l.length > 0);
};
const DAY = 86_400_000;

describe("generator building blocks", () => {
  it("the PRNG is deterministic per seed and differs between seeds", () => {
    const draw = (seed: number | string) => {
      const r = new Rng(seed);
      return Array.from({ length: 8 }, () => r.next());
    };
    expect(draw(7)).toEqual(draw(7));
    expect(draw("7")).toEqual(draw(7));
    expect(draw(7)).not.toEqual(draw(8));
    const r = new Rng(1);
    for (let i = 0; i < 1000; i++) {
      const x = r.float();
      expect(x >= 0 && x < 1).toBe(true);
      const k = r.int(3, 5);
      expect(k >= 3 && k <= 5).toBe(true);
    }
  });

  it("the alias table follows its weights", () => {
    const table = new AliasTable([1, 0, 3]);
    const r = new Rng(3);
    const counts = new Map<number, number>();
    for (let i = 0; i < 40_000; i++) {
      const k = table.draw(r);
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    expect(counts.get(1)).toBeUndefined();
    const ratio = (counts.get(2) ?? 0) / (counts.get(0) ?? 1);
    expect(ratio).toBeGreaterThan(2.7);
    expect(ratio).toBeLessThan(3.3);
  });

  it("computes ages in completed years, a 29 February birthday turning over on 1 March", () => {
    const b = parseDay("2008-02-29");
    expect(ageOn(b, parseDay("2026-02-28"))).toBe(17);
    expect(ageOn(b, parseDay("2026-03-01"))).toBe(18);
    expect(ageOn(b, parseDay("2028-02-29"))).toBe(20);
    expect(dateOf(birthdayAt(b, 18))).toBe("2026-03-01");
    expect(dateOf(birthdayAt(parseDay("2013-05-10"), 12))).toBe("2025-05-10");
    expect(ageOn(parseDay("2013-05-10"), parseDay("2025-05-09"))).toBe(11);
  });
});

describe("generate", () => {
  let dir: string;
  let summary: GenerateSummary;
  let settlements: Settlement[];
  let lines: string[];
  let deaths: DeathRecord[];
  let labels: { detector: string; rule: string; settlement_id: string; related: string[] }[];

  beforeAll(async () => {
    dir = tmp();
    summary = await generate({ outDir: dir, settlements: 30_000, seed: 5, schemeRate: 0.05 });
    lines = readLines(summary.files.settlements);
    settlements = lines.map((l) => JSON.parse(l));
    deaths = readLines(summary.files.deaths).map((l) => JSON.parse(l));
    labels = readLines(summary.files.labels).map((l) => JSON.parse(l));
  }, 120_000);

  it("writes about the requested number of settlement events", () => {
    expect(lines.length).toBe(summary.events);
    expect(Math.abs(lines.length - 30_000)).toBeLessThan(30);
    expect(summary.deathRecords).toBe(deaths.length);
    expect(summary.labels).toBe(labels.length);
  });

  it("is deterministic for a seed, and a different seed gives a different stream", async () => {
    const again = await generate({ outDir: tmp(), settlements: 30_000, seed: 5, schemeRate: 0.05 });
    for (const f of ["settlements", "deaths", "labels"] as const) {
      expect(readFileSync(again.files[f]).equals(readFileSync(summary.files[f]))).toBe(true);
    }
    const other = await generate({ outDir: tmp(), settlements: 2_000, seed: 6, schemeRate: 0.05 });
    const mine = await generate({ outDir: tmp(), settlements: 2_000, seed: 5, schemeRate: 0.05 });
    expect(readFileSync(other.files.settlements).equals(readFileSync(mine.files.settlements))).toBe(false);
  }, 120_000);

  it("every line satisfies the contract schemas", () => {
    for (const [i, s] of settlements.entries()) {
      const r = settlementValidator.safeParse(s);
      if (!r.success) throw new Error(`line ${i + 1}: ${JSON.stringify(r.error.issues)}`);
    }
    for (const d of deaths) expect(deathRecordValidator.safeParse(d).success).toBe(true);
  });

  it("keeps amounts, ids, dates and times consistent", () => {
    // Collect problems and assert once: per-line expect() calls would be slow on this many lines.
    const problems: string[] = [];
    const check = (ok: boolean, what: string, s: Settlement) => {
      if (!ok && problems.length < 20) problems.push(`${s.settlement_id}: ${what}`);
    };
    const ids = new Set<string>();
    const byId = new Map<string, Settlement>();
    const perVisit = new Map<string, number>();
    for (const s of settlements)
      if (s.event_type === "SETTLE") perVisit.set(s.visit_id, (perVisit.get(s.visit_id) ?? 0) + 1);
    for (const s of settlements) {
      check(!ids.has(s.settlement_id), "duplicate settlement_id", s);
      ids.add(s.settlement_id);
      byId.set(s.settlement_id, s);
      check(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$/.test(s.settled_at), "settled_at not CST", s);
      check(/^[HP]\d{11}$/.test(s.institution_id), "institution_id", s);
      check(/^\d{6}$/.test(s.region_code), "region_code", s);
      if (s.event_type === "REVERSAL") continue;
      check(s.items.length > 0, "no items", s);
      let total = 0;
      for (const [k, l] of s.items.entries()) {
        check(l.line_no === k + 1, "line_no", s);
        check(Number.isInteger(l.unit_price_fen) && l.unit_price_fen > 0, "unit price", s);
        check(
          l.amount_fen === Math.round(l.quantity * l.unit_price_fen),
          "amount = quantity x unit price",
          s,
        );
        total += l.amount_fen;
      }
      check(s.total_fen === total, "total_fen = sum of line amounts", s);
      check(s.fund_paid_fen >= 0 && s.fund_paid_fen < s.total_fen, "0 <= fund_paid < total", s);
      check(s.settled_at.slice(0, 10) >= s.discharge_date, "settled before discharge", s);
      if (s.visit_type === "INPATIENT") {
        check(s.discharge_reason !== null, "stay without discharge_reason", s);
        for (const l of s.items) {
          check(
            l.service_date >= s.admission_date && l.service_date <= s.discharge_date,
            "line outside the stay",
            s,
          );
        }
        // Settled on the discharge day (a death may be settled a few days later, a resubmission later still).
        if (s.discharge_reason !== "DEATH" && perVisit.get(s.visit_id) === 1) {
          check(s.settled_at.slice(0, 10) === s.discharge_date, "stay not settled on the discharge day", s);
        }
      } else {
        check(s.discharge_reason === null, "discharge_reason outside INPATIENT", s);
        check(s.discharge_date === s.admission_date, "discharge_date outside INPATIENT", s);
      }
    }
    // Reversals name a settlement of the same person, institution and visit, and come after it.
    for (const r of settlements.filter((s) => s.event_type === "REVERSAL")) {
      const o = byId.get(r.original_settlement_id as string);
      if (!o) {
        check(false, "reversal of an unknown settlement", r);
        continue;
      }
      check(
        r.person_id === o.person_id &&
          r.institution_id === o.institution_id &&
          r.visit_id === o.visit_id &&
          r.admission_date === o.admission_date &&
          r.visit_type === o.visit_type,
        "reversal fields differ from the original",
        r,
      );
      check(r.items.length === 0, "reversal with items", r);
      check(Date.parse(r.settled_at) > Date.parse(o.settled_at), "reversal before its original in time", r);
    }
    for (const l of labels) {
      if (byId.get(l.settlement_id)?.event_type !== "SETTLE")
        problems.push(`label on unknown settlement ${l.settlement_id}`);
    }
    expect(problems).toEqual([]);
  });

  it("looks like a real stream: people, visits, reversals, resubmissions, late lines, deaths", () => {
    const settles = settlements.filter((s) => s.event_type === "SETTLE");
    const count = (f: (s: Settlement) => boolean) => settles.filter(f).length;
    for (const t of ["OUTPATIENT", "PHARMACY", "INPATIENT"])
      expect(count((s) => s.visit_type === t)).toBeGreaterThan(0);
    expect(count((s) => s.visit_type === "INPATIENT") / settles.length).toBeGreaterThan(0.02);
    for (const g of ["M", "F"]) expect(count((s) => s.gender === g)).toBeGreaterThan(1000);
    for (const t of ["EMPLOYEE", "RESIDENT"])
      expect(count((s) => s.insurance_type === t)).toBeGreaterThan(1000);
    const age = (s: Settlement) => Number(s.admission_date.slice(0, 4)) - Number(s.birth_date.slice(0, 4));
    expect(count((s) => age(s) < 14)).toBeGreaterThan(100);
    expect(count((s) => age(s) > 70)).toBeGreaterThan(100);
    expect(count((s) => s.institution_id.startsWith("P"))).toBe(count((s) => s.visit_type === "PHARMACY"));
    expect(count((s) => s.institution_name.endsWith("医院"))).toBeGreaterThan(100);
    expect(count((s) => s.discharge_reason === "DEATH")).toBeGreaterThan(0);
    expect(count((s) => s.discharge_reason === "TRANSFER")).toBeGreaterThan(0);
    expect(count((s) => s.diagnoses.some((d) => /^[A-Z]\d{2}\.[0-9x]{3}$/.test(d.code)))).toBe(
      settles.length,
    );
    expect(count((s) => s.items.some((l) => l.quantity % 1 !== 0))).toBeGreaterThan(0);

    // Identical resubmissions of reversed settlements.
    const reversed = new Set(
      settlements.filter((s) => s.event_type === "REVERSAL").map((s) => s.original_settlement_id),
    );
    const byVisit = new Map<string, Settlement[]>();
    for (const s of settles) byVisit.set(s.visit_id, [...(byVisit.get(s.visit_id) ?? []), s]);
    const resubmitted = [...byVisit.values()].filter(
      (v) =>
        v.length === 2 &&
        v.some((x) => reversed.has(x.settlement_id)) &&
        JSON.stringify({ ...v[0], settlement_id: "", settled_at: "" }) ===
          JSON.stringify({ ...v[1], settlement_id: "", settled_at: "" }),
    );
    expect(resubmitted.length).toBeGreaterThan(10);

    // Lines written out of settled_at order, and reversals ahead of their settlement.
    let late = 0;
    let maxSeen = 0;
    const position = new Map(settlements.map((s, i) => [s.settlement_id, i]));
    for (const s of settlements) {
      const t = Date.parse(s.settled_at);
      if (t < maxSeen - DAY / 2) late++;
      maxSeen = Math.max(maxSeen, t);
    }
    expect(late).toBeGreaterThan(50);
    const early = settlements.filter(
      (r) =>
        r.event_type === "REVERSAL" &&
        (position.get(r.settlement_id) ?? 0) < (position.get(r.original_settlement_id as string) ?? 0),
    );
    expect(early.length).toBeGreaterThan(0);

    // Death records come 2 to 8 weeks after the death.
    expect(deaths.length).toBeGreaterThan(5);
    for (const d of deaths) {
      const weeks = (Date.parse(d.reported_at) - Date.parse(`${d.death_date}T00:00:00+08:00`)) / (7 * DAY);
      expect(weeks).toBeGreaterThanOrEqual(2);
      expect(weeks).toBeLessThanOrEqual(8 + 1 / 7);
    }
    expect(deaths.map((d) => d.reported_at)).toEqual(deaths.map((d) => d.reported_at).sort());
  });

  it("keeps the event-time span inside the 400-day retention", () => {
    const times = [
      ...settlements.map((s) => Date.parse(s.settled_at)),
      ...deaths.map((d) => Date.parse(d.reported_at)),
    ];
    const span = (Math.max(...times) - Math.min(...times)) / DAY;
    expect(span).toBeLessThan(400);
    expect(summary.spanDays).toBeCloseTo(span, 5);
  });

  it("injects every kind of scheme", () => {
    const rules = new Set(labels.map((l) => `${l.detector}/${l.rule}`));
    expect([...rules].sort()).toEqual(ALL_RULES);
    expect(summary.retractedSchemes).toBeGreaterThan(0);
    expect(summary.resubmittedSchemes).toBeGreaterThan(0);
  });

  it("writes gzip files that read back to the same stream", async () => {
    const gz = await generate({ outDir: tmp(), settlements: 3_000, seed: 9, gzip: true });
    const plain = await generate({ outDir: tmp(), settlements: 3_000, seed: 9 });
    expect(gz.files.settlements.endsWith("settlements.ndjson.gz")).toBe(true);
    for (const f of ["settlements", "deaths", "labels"] as const) {
      expect(readLines(gz.files[f])).toEqual(readLines(plain.files[f]));
    }
    expect(readLines(gz.files.settlements).length).toBe(gz.events);
  }, 60_000);

  it("hands the same lines to an emitter instead of files", async () => {
    const got = { settlement: [] as string[], death: [] as string[], label: [] as string[] };
    const emitted = await generate({
      settlements: 3_000,
      seed: 9,
      emit: {
        settlement: (l) => got.settlement.push(l),
        death: (l) => got.death.push(l),
        label: (l) => got.label.push(l),
      },
    });
    const plain = await generate({ outDir: tmp(), settlements: 3_000, seed: 9 });
    expect(got.settlement).toEqual(readLines(plain.files.settlements));
    expect(got.death).toEqual(readLines(plain.files.deaths));
    expect(got.label).toEqual(readLines(plain.files.labels));
    expect(emitted.events).toBe(plain.events);
  }, 60_000);

  it("continues an earlier stream with ids it never used (idsAfter), the same stream otherwise", async () => {
    const collect = async (o: Parameters<typeof generate>[0]) => {
      const got = { settlement: [] as string[], death: [] as string[] };
      const summary = await generate({
        ...o,
        emit: { settlement: (l) => got.settlement.push(l), death: (l) => got.death.push(l), label: () => {} },
      });
      return { summary, settlements: got.settlement.map((l) => JSON.parse(l) as Settlement) };
    };
    const first = await collect({ settlements: 3_000, seed: 9 });
    expect(first.summary.ids.persons).toBe(first.summary.persons);
    const next = await collect({
      settlements: 3_000,
      seed: 9,
      start: "2026-01-01",
      idsAfter: first.summary.ids,
    });
    const number = (id: string) => Number(id.slice(-9));
    const persons = (x: typeof first) => new Set(x.settlements.map((s) => s.person_id));
    const seen = persons(first);
    expect([...persons(next)].filter((p) => seen.has(p))).toEqual([]);
    expect(Math.min(...[...persons(next)].map((p) => Number(p.slice(1))))).toBeGreaterThan(
      first.summary.ids.persons,
    );
    expect(Math.min(...next.settlements.map((s) => number(s.settlement_id)))).toBe(
      first.summary.ids.settlements + 1,
    );
    expect(next.summary.ids.settlements).toBe(first.summary.ids.settlements + next.settlements.length);
    // Reversals still name their own person's settlements.
    const byId = new Map(next.settlements.map((s) => [s.settlement_id, s]));
    const reversals = next.settlements.filter((s) => s.event_type === "REVERSAL");
    expect(reversals.length).toBeGreaterThan(0);
    for (const r of reversals) {
      const original = byId.get(r.original_settlement_id as string);
      if (original) expect(original.person_id).toBe(r.person_id);
    }
    // Apart from the ids, the same options give the same stream.
    const plain = await collect({ settlements: 3_000, seed: 9, start: "2026-01-01" });
    const strip = (s: Settlement) => ({
      ...s,
      settlement_id: "",
      original_settlement_id: null,
      person_id: "",
      visit_id: "",
    });
    expect(next.settlements.map(strip)).toEqual(plain.settlements.map(strip));
    await expect(
      generate({ outDir: tmp(), idsAfter: { persons: -1, settlements: 0, visits: 0 } }),
    ).rejects.toThrow(/idsAfter\.persons/);
  }, 60_000);

  it("rejects options outside the retention or the contract", async () => {
    await expect(generate({})).rejects.toThrow(/outDir/);
    await expect(generate({ outDir: tmp(), days: 400 })).rejects.toThrow(/days/);
    await expect(generate({ outDir: tmp(), settlements: 0 })).rejects.toThrow(/settlements/);
    await expect(generate({ outDir: tmp(), start: "2025-02-30" })).rejects.toThrow(/date/);
    await expect(generate({ outDir: tmp(), schemeRate: 2 })).rejects.toThrow(/scheme rate/);
  });
});

describe("generate memory", () => {
  it("streams 200k settlements within a 96 MB heap (memory does not grow with the stream)", () => {
    const dir = tmp();
    const script = `
      const { generate } = await import(${JSON.stringify(new URL("../../services/generate/generate.ts", import.meta.url).href)});
      let peak = 0;
      const s = await generate({ outDir: ${JSON.stringify(dir)}, settlements: 200000, seed: 3,
        onProgress: () => { peak = Math.max(peak, process.memoryUsage().heapUsed); } });
      console.log(JSON.stringify({ events: s.events, bytes: s.bytes, peak }));`;
    const r = spawnSync(
      process.execPath,
      ["--max-old-space-size=96", "--import", "tsx", "--input-type=module", "-e", script],
      {
        cwd: new URL("../..", import.meta.url).pathname,
        encoding: "utf8",
        timeout: 120_000,
      },
    );
    expect(r.stderr).not.toMatch(/heap out of memory/);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout.trim().split("\n").at(-1) as string);
    expect(out.events).toBeGreaterThan(199_000);
    // The files are several times larger than the heap the run was allowed.
    expect(out.bytes).toBeGreaterThan(3 * 96 * 1024 * 1024);
    expect(out.peak).toBeLessThan(140 * 1024 * 1024);
  }, 150_000);
});
