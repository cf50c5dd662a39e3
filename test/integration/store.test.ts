// The ClickHouse store on embedded chdb in a temp directory: migrations, versioned suspect
// writes with retraction, archive de-duplication, and a byte-exact round trip of the engine's
// findings. chdb binds one data directory per process, so this file uses a single directory
// (tests separate their data by run_id or person_id) and reopens it where a test needs to.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Settlement, Suspect } from "../../schemas/index.ts";
import type { Change } from "../../services/engine/engine.ts";
import {
  chdbConfig,
  eventVersion,
  loadMigrations,
  openStore,
  type Store,
  StoreLockedError,
} from "../../services/store/index.ts";
import { death, line, reversal, settlement, stay } from "../fixtures/events.ts";
import { asEvent, newEngine } from "../fixtures/run.ts";

const dir = mkdtempSync(join(tmpdir(), "fundguard-store-"));
const config = chdbConfig(join(dir, "data"));
let store: Store;

beforeAll(async () => {
  store = await openStore(config);
});

afterAll(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function exported(runId: string): Promise<Suspect[]> {
  const out: Suspect[] = [];
  for await (const s of store.exportSuspects({ runId })) out.push(s);
  return out;
}

function suspect(overrides: Partial<Suspect> = {}): Suspect {
  return {
    suspect_id: "0123456789abcdef0123456789abcdef",
    detector: "frequent_admission",
    rule: "readmission",
    severity: "WARN",
    person_id: "P1",
    settlement_ids: ["S2", "S1"],
    institution_id: "H34150200123",
    region_code: "341502",
    amount_at_risk_fen: 123456,
    event_time: "2025-03-20T10:00:00+08:00",
    detected_at: "2026-01-01T00:00:00.000Z",
    detector_version: "1.0.0",
    evidence: { previous_settlement_id: "S1", gap_days: 3, codes: ["A", "B"], nested: { z: 1, a: 2 } },
    ...overrides,
  };
}

const at = (v: number) => () => v;

describe("migrations", () => {
  it("are applied once and are idempotent across reopen", async () => {
    const versions = loadMigrations().map((m) => m.version);
    expect(store.migrations.applied).toEqual(versions);
    await store.close();
    store = await openStore(config);
    expect(store.migrations.applied).toEqual([]);
    expect(store.migrations.current).toBe(versions.at(-1));
    const rows = await store.query<{ n: string | number }>(
      "SELECT count() AS n FROM schema_migrations FINAL WHERE version = {v:UInt32}",
      { v: 1 },
    );
    expect(Number(rows[0]?.n)).toBe(1);
    const tables = await store.query<{ name: string }>(
      "SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name",
    );
    expect(tables.map((t) => t.name)).toEqual(
      expect.arrayContaining([
        "audit_log",
        "case_events",
        "deaths",
        "schema_migrations",
        "settlements",
        "suspects",
      ]),
    );
  });
});

describe("suspects", () => {
  it("upsert, retract, re-upsert: the highest version decides", async () => {
    const run = "lifecycle";
    const s = suspect();
    await store.writeChanges([{ op: "upsert", suspect: s }], { runId: run, versionOf: at(10) });
    expect(await exported(run)).toEqual([s]);

    await store.writeChanges([{ op: "retract", suspect: s }], { runId: run, versionOf: at(20) });
    expect(await exported(run)).toEqual([]);
    const retracted = await store.getSuspect(s.suspect_id, { runId: run });
    expect(retracted?.status).toBe("retracted");
    expect(retracted?.version).toBe(20n);

    const refined = suspect({ amount_at_risk_fen: 999, evidence: { refined: true } });
    await store.writeChanges([{ op: "upsert", suspect: refined }], { runId: run, versionOf: at(30) });
    expect(await exported(run)).toEqual([refined]);

    // A late re-delivery of an older version changes nothing.
    await store.writeChanges([{ op: "retract", suspect: s }], { runId: run, versionOf: at(20) });
    await store.writeChanges([{ op: "upsert", suspect: s }], { runId: run, versionOf: at(10) });
    expect(await exported(run)).toEqual([refined]);
  });

  it("keeps the later change of one batch (index within the event)", async () => {
    const run = "one-batch";
    const s = suspect();
    const changes: Change[] = [
      { op: "upsert", suspect: s },
      { op: "retract", suspect: s },
    ];
    await store.writeChanges(changes, { runId: run, versionOf: (_c, i) => eventVersion(7, i) });
    expect(await exported(run)).toEqual([]);
    expect((await store.getSuspect(s.suspect_id, { runId: run }))?.version).toBe(eventVersion(7, 1));
  });

  it("duplicate writes of the same version leave one row", async () => {
    const run = "dupes";
    const a = suspect({ suspect_id: "a".repeat(32) });
    const b = suspect({ suspect_id: "b".repeat(32), region_code: "341503" });
    for (let i = 0; i < 3; i++) {
      await store.writeChanges(
        [
          { op: "upsert", suspect: a },
          { op: "upsert", suspect: b },
        ],
        { runId: run, versionOf: (_c, idx) => eventVersion(42, idx) },
      );
    }
    expect((await exported(run)).map((s) => s.suspect_id)).toEqual([a.suspect_id, b.suspect_id]);
    const final = await store.query<{ n: string | number }>(
      "SELECT count() AS n FROM suspects FINAL WHERE run_id = {run:String}",
      { run },
    );
    expect(Number(final[0]?.n)).toBe(2);
    await store.client.command({ query: "OPTIMIZE TABLE suspects FINAL" });
    const physical = await store.query<{ n: string | number }>(
      "SELECT count() AS n FROM suspects WHERE run_id = {run:String}",
      { run },
    );
    expect(Number(physical[0]?.n)).toBe(2);
  });

  it("runs are separate and the run id is a bound parameter", async () => {
    const s = suspect({ suspect_id: "c".repeat(32) });
    await store.writeChanges([{ op: "upsert", suspect: s }], { runId: "run-x", versionOf: at(1) });
    expect(await exported("run-x")).toEqual([s]);
    expect(await exported("run-y")).toEqual([]);
    expect(await exported("run-x' OR 1=1 --")).toEqual([]);
  });

  it("accepts versions past 2^53 as bigint", async () => {
    const run = "big-versions";
    const s = suspect();
    const high = eventVersion(2n ** 40n, 3);
    expect(high > BigInt(Number.MAX_SAFE_INTEGER)).toBe(true);
    await store.writeChanges([{ op: "retract", suspect: s }], { runId: run, versionOf: () => high });
    await store.writeChanges([{ op: "upsert", suspect: s }], { runId: run, versionOf: () => high - 1n });
    expect(await exported(run)).toEqual([]);
    expect((await store.getSuspect(s.suspect_id, { runId: run }))?.version).toBe(high);
    expect(() => eventVersion(0, 2 ** 20)).toThrow(RangeError);
    await expect(
      store.writeChanges([{ op: "upsert", suspect: s }], { runId: run, versionOf: () => 2 ** 60 }),
    ).rejects.toThrow(RangeError);
  });

  it("keeps event_time and detected_at byte-identical, whatever their ISO spelling", async () => {
    const run = "times";
    const spellings = [
      "2025-03-01T02:00:00Z",
      "2025-03-01T10:00:00+0800",
      "2025-03-01T10:00:00.123456+08:00",
      "2025-03-01T10:00+08:00",
      "2024-12-31T23:59:59.9-05:00",
    ];
    const list = spellings.map((t, i) =>
      suspect({
        suspect_id: `${i}`.repeat(32),
        event_time: t,
        detected_at: spellings[(i + 1) % 5] as string,
      }),
    );
    await store.writeChanges(
      list.map((s) => ({ op: "upsert", suspect: s })),
      { runId: run, versionOf: at(1) },
    );
    const back = await exported(run);
    expect(back.map((s) => JSON.stringify(s)).sort()).toEqual(list.map((s) => JSON.stringify(s)).sort());
    // The DateTime64 column holds the same instant, in China Standard Time.
    const rows = await store.query<{ iso: string; ms: string | number }>(
      "SELECT event_time_iso AS iso, toUnixTimestamp64Milli(event_time) AS ms FROM suspects FINAL WHERE run_id = {run:String}",
      { run },
    );
    for (const r of rows) expect(Number(r.ms)).toBe(Date.parse(r.iso));
  });

  it("stores any text in ids and evidence (newlines, semicolons, quotes) exactly", async () => {
    const run = "odd-text";
    const evidence = {
      a: "x; DROP TABLE suspects; --",
      b: "line1\nline2;\nSELECT 1;",
      c: "'; \"\\ 中文 \u0000 \u2028",
      n: [1.5, -0, 1e21, null, true],
    };
    const s = suspect({ settlement_ids: ["a;b", "c\nd", "{x:String}"], person_id: "P'1", evidence });
    await store.writeChanges([{ op: "upsert", suspect: s }], { runId: run, versionOf: at(1) });
    const [back] = await exported(run);
    expect(JSON.stringify(back)).toBe(JSON.stringify(s));
  });

  it("round-trips the engine's findings byte for byte, retractions applied", async () => {
    const run = "engine";
    const p1 = [
      stay("2025-01-01", "2025-01-10", { settlement_id: "E1", person_id: "EP1" }),
      stay("2025-01-15", "2025-01-20", { settlement_id: "E2", person_id: "EP1" }),
      stay("2025-01-25", "2025-01-30", { settlement_id: "E3", person_id: "EP1" }),
    ];
    const male = settlement({
      settlement_id: "E4",
      person_id: "EP2",
      diagnoses: [{ code: "O80.000", name: "单胎顺产", primary: false }],
      settled_at: "2025-03-01T02:00:00.5Z",
    });
    const afterDeath = settlement({ settlement_id: "E5", person_id: "EP3", admission_date: "2025-04-02" });
    const events = [
      ...p1,
      male,
      afterDeath,
      death("2025-04-01", { person_id: "EP3" }),
      reversal(p1[1] as Settlement),
      settlement({ settlement_id: "E6", person_id: "EP2" }),
    ];
    const engine = newEngine();
    let position = 0;
    let retracts = 0;
    for (const e of events) {
      const changes = engine.process(asEvent(e));
      retracts += changes.filter((c) => c.op === "retract").length;
      const pos = position++;
      await store.writeChanges(changes, { runId: run, versionOf: (_c, i) => eventVersion(pos, i) });
    }
    expect(retracts).toBeGreaterThan(0);
    const expected = [...engine.activeSuspects()];
    expect(expected.length).toBeGreaterThan(2);
    const back = await exported(run);
    const byId = (a: Suspect, b: Suspect) => a.suspect_id.localeCompare(b.suspect_id);
    expect(back.length).toBe(expected.length);
    expect(JSON.stringify([...back].sort(byId))).toBe(JSON.stringify([...expected].sort(byId)));
  });

  it("streams a large export in sorting-key order", async () => {
    const run = "bulk";
    const n = 20_000;
    const changes: Change[] = Array.from({ length: n }, (_, i) => ({
      op: "upsert",
      suspect: suspect({
        suspect_id: i.toString(16).padStart(32, "0"),
        region_code: `34150${i % 3}`,
        settlement_ids: [`S${i}`],
      }),
    }));
    await store.writeChanges(changes, { runId: run, versionOf: (_c, i) => eventVersion(i, 0) });
    let count = 0;
    let last = "";
    for await (const s of store.exportSuspects({ runId: run })) {
      const key = `${s.region_code}/${s.suspect_id}`;
      expect(key > last).toBe(true);
      last = key;
      count++;
    }
    expect(count).toBe(n);
  });
});

describe("settlements and deaths", () => {
  it("archives settlements once per settlement_id and reads the timeline back exactly", async () => {
    const a = settlement({
      settlement_id: "T1",
      person_id: "TP1",
      settled_at: "2025-03-01T10:00:00+08:00",
      items: [
        line({ line_no: 1, quantity: 0.5, unit_price_fen: 333, amount_fen: 167, category: "DRUG" }),
        line({
          line_no: 2,
          item_code: "X",
          quantity: 12,
          unit_price_fen: 2,
          amount_fen: 24,
          service_date: "2025-03-01",
        }),
      ],
      birth_date: "1931-05-06",
    });
    const b = stay("2025-03-05", "2025-03-09", {
      settlement_id: "T2",
      person_id: "TP1",
      discharge_reason: "TRANSFER",
      diagnoses: [
        { code: "I10.x00", name: "高血压", primary: true },
        { code: "E11.900", name: "2型糖尿病", primary: false },
      ],
    });
    const r = reversal(a, { person_id: "TP1" });
    await store.writeSettlements([a, b, r]);
    await store.writeSettlements([b, r]);
    await store.writeSettlements([a]);
    const back = await store.personSettlements("TP1");
    expect(back.map((s) => JSON.stringify(s))).toEqual([a, r, b].map((s) => JSON.stringify(s)));
    expect(await store.personSettlements("nobody")).toEqual([]);
  });

  it("keeps the latest death report per person, whatever the write order", async () => {
    const later = death("2025-04-01", { person_id: "DP1", reported_at: "2025-06-01T09:00:00+08:00" });
    const earlier = death("2025-03-31", {
      person_id: "DP1",
      reported_at: "2025-05-01T09:00:00+08:00",
      source: "HEALTH",
    });
    await store.writeDeaths([later]);
    await store.writeDeaths([earlier]);
    expect(await store.deathOf("DP1")).toEqual(later);
    expect(await store.deathOf("DP2")).toBeNull();
  });

  it("records case events and audit entries", async () => {
    await store.appendCaseEvent({ suspectId: "x", status: "under_review", user: "inv1" });
    await store.appendCaseEvent({
      suspectId: "x",
      status: "confirmed",
      user: "inv1",
      note: "外院核实",
      at: "2026-01-02T10:00:00+08:00",
    });
    await store.appendAudit({
      who: "inv1",
      route: "GET /api/v1/suspects",
      filters: { region: "341502" },
      rows: 3,
    });
    const cases = await store.query<{ status: string; note: string; at: string }>(
      "SELECT status, note, toString(at) AS at FROM case_events WHERE suspect_id = {id:String} ORDER BY at",
      { id: "x" },
    );
    expect(cases.at(0)?.status).toBe("confirmed");
    expect(cases.at(0)?.at).toBe("2026-01-02 02:00:00.000");
    expect(cases.at(1)?.status).toBe("under_review");
    const audit = await store.query<{ filters: string; rows: string | number }>(
      "SELECT filters, rows FROM audit_log WHERE who = {who:String}",
      { who: "inv1" },
    );
    expect(audit.map((a) => [JSON.parse(a.filters), Number(a.rows)])).toEqual([[{ region: "341502" }, 3]]);
  });
});

describe("embedded engine constraints", () => {
  it("has a write on disk when its promise resolves: a process killed right after keeps it", async () => {
    const other = join(dir, "killed");
    const storeIndex = fileURLToPath(new URL("../../services/store/index.ts", import.meta.url));
    const writer = join(dir, "writer.mts");
    const reader = join(dir, "reader.mts");
    const s = suspect({ suspect_id: "d".repeat(32) });
    writeFileSync(
      writer,
      `import { chdbConfig, openStore } from ${JSON.stringify(storeIndex)};
const store = await openStore(chdbConfig(${JSON.stringify(other)}));
await store.writeChanges([{ op: "upsert", suspect: ${JSON.stringify(s)} }], { versionOf: () => 5 });
process.kill(process.pid, "SIGKILL");
`,
    );
    writeFileSync(
      reader,
      `import { chdbConfig, openStore } from ${JSON.stringify(storeIndex)};
const store = await openStore(chdbConfig(${JSON.stringify(other)}));
for await (const s of store.exportSuspects()) console.log(JSON.stringify(s));
await store.close();
`,
    );
    const run = promisify(execFile);
    const cwd = fileURLToPath(new URL("../..", import.meta.url));
    await expect(run(process.execPath, ["--import", "tsx", writer], { cwd })).rejects.toMatchObject({
      signal: "SIGKILL",
    });
    const { stdout } = await run(process.execPath, ["--import", "tsx", reader], { cwd });
    expect(stdout.trim()).toBe(JSON.stringify(s));
  });

  it("refuses a second process on the same data directory with a clear error", async () => {
    const script = join(dir, "second.mts");
    const storeIndex = fileURLToPath(new URL("../../services/store/index.ts", import.meta.url));
    writeFileSync(
      script,
      `import { chdbConfig, openStore } from ${JSON.stringify(storeIndex)};
try {
  const s = await openStore(chdbConfig(${JSON.stringify(config.dataDir)}));
  await s.close();
  console.log("OPENED");
} catch (e) {
  console.log(e.name + ": " + e.message);
}
`,
    );
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", script], {
      cwd: fileURLToPath(new URL("../..", import.meta.url)),
    });
    expect(stdout).toContain(StoreLockedError.name);
    expect(stdout).toContain(config.dataDir);
    expect(stdout).toContain(`process ${process.pid}`);
    expect(stdout).toContain("CLICKHOUSE_URL");
  });
});
