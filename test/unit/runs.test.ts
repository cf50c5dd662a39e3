// Runs without Kafka or ClickHouse: detector choice, checkpoints (commit, torn tails, compaction,
// lock), and a session interrupted at every checkpoint resuming to the uninterrupted result.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { appendFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DETECTORS } from "../../detectors/index.ts";
import type { Suspect } from "../../schemas/index.ts";
import type { Change, EngineEvent } from "../../services/engine/engine.ts";
import { createLogger } from "../../services/log.ts";
import { activateSetup } from "../../services/pipeline/lane-core.ts";
import { Checkpoint } from "../../services/runs/checkpoint.ts";
import { RateLimiter, RunSession } from "../../services/runs/session.ts";
import { checkRunName, chooseDetectors, runConfigHash } from "../../services/runs/spec.ts";
import type { Store } from "../../services/store/index.ts";
import { settlement, stay } from "../fixtures/events.ts";
import { asEvent } from "../fixtures/run.ts";

const dir = (label: string) => mkdtempSync(join(tmpdir(), `fg-unit-${label}-`));
const log = createLogger("test", "silent");

describe("run spec", () => {
  it("validates run names and keeps 'live' for the stream", () => {
    expect(checkRunName("q3-2025.readmission_5d")).toBe("q3-2025.readmission_5d");
    expect(() => checkRunName("live")).toThrow(/stream workers/);
    expect(() => checkRunName("a b")).toThrow(/not valid/);
    expect(() => checkRunName("-x")).toThrow(/not valid/);
  });

  it("chooses detectors with versions and validated configs", () => {
    const all = chooseDetectors(undefined);
    expect(all.map((d) => d.id)).toEqual(DETECTORS.map((d) => d.id));
    const two = chooseDetectors("frequent_admission@1.0.0, duplicate_billing", {
      frequent_admission: { readmissionMaxDays: 5 },
    });
    expect(two.map((d) => [d.id, d.version])).toEqual([
      ["frequent_admission", "1.0.0"],
      ["duplicate_billing", "1.0.0"],
    ]);
    expect(two[0]?.config).toEqual({
      readmissionMaxDays: 5,
      highFrequencyStays: 4,
      highFrequencyWindowDays: 180,
    });
    expect(two[0]?.config_hash).not.toBe(all.find((d) => d.id === "frequent_admission")?.config_hash);
    expect(() => chooseDetectors("frequent_admission@9.9.9")).toThrow(
      /version 1\.0\.0 in this build, not 9\.9\.9/,
    );
    expect(() => chooseDetectors("nope")).toThrow(/unknown detector "nope"; known: pediatric_drug/);
    expect(() => chooseDetectors("duplicate_billing", { frequent_admission: {} })).toThrow(
      /not among the run's detectors/,
    );
    expect(() => chooseDetectors(undefined, { frequent_admission: { readmissionMaxDays: -1 } })).toThrow(
      /readmissionMaxDays/,
    );
    expect(() => chooseDetectors(undefined, { frequent_admission: { readmisionMaxDays: 5 } })).toThrow(
      /Unrecognized key/,
    );
  });

  it("hashes the run's configuration independently of key order", () => {
    const a = chooseDetectors("frequent_admission", {
      frequent_admission: { readmissionMaxDays: 5, highFrequencyStays: 4 },
    });
    const b = chooseDetectors("frequent_admission", {
      frequent_admission: { highFrequencyStays: 4, readmissionMaxDays: 5 },
    });
    expect(runConfigHash(a)).toBe(runConfigHash(b));
    expect(runConfigHash(a)).toMatch(/^[0-9a-f]{12}$/);
    expect(runConfigHash(a)).not.toBe(runConfigHash(chooseDetectors("frequent_admission")));
  });
});

describe("checkpoint", () => {
  const stats = { settlements: 1, reversals: 0, deaths: 0, duplicates: 0, tooLate: 0 };
  const record = (position: unknown) => ({
    position,
    events: 1,
    badEvents: 0,
    stats: { "0": stats },
    maxVersion: 7,
    at: "",
  });

  it("resumes the state as of the last commit, dropping an unfinished tail", async () => {
    const d = dir("ckpt");
    const c = await Checkpoint.create(d, "r", { hello: 1 });
    await c.commit(
      [
        { engine: 0, key: "a", value: { n: 1 } },
        { engine: 1, key: "b", value: [1, 2] },
      ],
      record({ events: 1 }),
    );
    await c.commit(
      [
        { engine: 0, key: "a", value: { n: 2 } },
        { engine: 1, key: "b", value: null },
        { engine: 0, key: "c\u0001x", value: "tab\there" },
      ],
      record({ events: 2 }),
    );
    await c.close();
    // A process killed mid-checkpoint: entries without their commit line, and a torn line.
    await appendFile(join(d, "state.log"), `0\t"a"\t{"n":3}\n0\t"z"\t{"n":`);
    const { checkpoint, loaded } = await Checkpoint.resume<{ hello: number }>(d, "r");
    expect(loaded.meta).toEqual({ hello: 1 });
    expect(loaded.commit?.position).toEqual({ events: 2 });
    expect([...(loaded.states.get(0) ?? [])]).toEqual([
      ["a", { n: 2 }],
      ["c\u0001x", "tab\there"],
    ]);
    expect(loaded.states.get(1)?.size ?? 0).toBe(0);
    // The torn tail was cut off: new commits append to a clean log.
    await checkpoint.commit([{ engine: 0, key: "d", value: 4 }], record({ events: 3 }));
    await checkpoint.close();
    const again = await Checkpoint.resume(d, "r");
    expect([...(again.loaded.states.get(0) ?? [])].map(([k]) => k)).toEqual(["a", "c\u0001x", "d"]);
    expect(again.loaded.commit?.position).toEqual({ events: 3 });
    await again.checkpoint.remove();
  });

  it("folds a grown log into its live content", async () => {
    const d = dir("compact");
    const c = await Checkpoint.create(d, "r", {});
    const big = "x".repeat(1 << 20);
    for (let i = 0; i < 140; i++) {
      await c.commit([{ engine: 0, key: `k${i % 3}`, value: { i, big } }], record({ events: i }));
    }
    // 140 MiB appended, 3 keys live: the log was folded at least once and stays small.
    expect(c.logBytes).toBeLessThan(80 << 20);
    await c.close();
    const { checkpoint, loaded } = await Checkpoint.resume(d, "r");
    expect(
      [...(loaded.states.get(0) ?? new Map()).values()].map((v) => (v as { i: number }).i).sort(),
    ).toEqual([137, 138, 139]);
    expect(loaded.commit?.position).toEqual({ events: 139 });
    await checkpoint.remove();
  });

  it("keeps exactly the latest value of every key through deletes, re-adds, compactions and resumes", async () => {
    const d = dir("model");
    let c = await Checkpoint.create(d, "r", {}, { minCompactBytes: 2_000 });
    const model = new Map<string, unknown>();
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    let compactions = 0;
    for (let round = 0; round < 300; round++) {
      const dirty = [];
      for (let i = rand(6); i >= 0; i--) {
        const key = `k${rand(20)}`;
        const value = rand(4) === 0 ? null : { round, i, pad: "字".repeat(rand(50)) };
        dirty.push({ engine: rand(2), key, value });
      }
      // Within one commit the last write of a key wins, as in a changelog.
      for (const e of dirty) {
        if (e.value === null) model.delete(`${e.engine}/${e.key}`);
        else model.set(`${e.engine}/${e.key}`, e.value);
      }
      await c.commit(dirty, record({ events: round }));
      if (round % 50 === 49) {
        compactions += c.compactions;
        await c.close();
        const r = await Checkpoint.resume(d, "r", { minCompactBytes: 2_000 });
        c = r.checkpoint;
        const loaded = new Map<string, unknown>();
        for (const [engine, m] of r.loaded.states) for (const [k, v] of m) loaded.set(`${engine}/${k}`, v);
        expect(new Map([...loaded].sort())).toEqual(new Map([...model].sort()));
        expect(r.loaded.commit?.position).toEqual({ events: round });
      }
    }
    expect(compactions).toBeGreaterThan(3);
    await c.remove();
  });

  it("refuses a run held by a live process and takes over from a dead one", async () => {
    const d = dir("lock");
    const c = await Checkpoint.create(d, "r", {});
    await c.close();
    writeFileSync(join(d, "lock"), String(process.ppid));
    await expect(Checkpoint.resume(d, "r")).rejects.toThrow(`being executed by process ${process.ppid}`);
    writeFileSync(join(d, "lock"), "999999999");
    const { checkpoint } = await Checkpoint.resume(d, "r");
    expect(readFileSync(join(d, "lock"), "utf8")).toBe(String(process.pid));
    await checkpoint.close();
  });
});

/** Enough of a Store for a session: suspect rows in memory, ReplacingMergeTree semantics. */
class MemoryStore {
  readonly rows: { change: Change; version: number }[] = [];
  async writeChanges(
    changes: readonly Change[],
    o: { versionOf: (c: Change, i: number) => bigint | number },
  ) {
    changes.forEach((change, i) => {
      this.rows.push({ change, version: Number(o.versionOf(change, i)) });
    });
    return changes.length;
  }
  async query<T>(): Promise<T[]> {
    return [{ v: String(Math.max(0, ...this.rows.map((r) => r.version))) }] as T[];
  }
  /** The repair query: current rows of suspects touched after version `after`. */
  async *stream<T>(_sql: string, params: { after: string }): AsyncIterable<T> {
    const touched = new Set(
      this.rows.filter((r) => r.version > Number(params.after)).map((r) => r.change.suspect.suspect_id),
    );
    for (const id of touched) {
      const { change } = this.current().get(id) as { change: Change };
      const s = change.suspect;
      yield {
        ...s,
        amount_at_risk_fen: String(s.amount_at_risk_fen),
        event_time_iso: s.event_time,
        detected_at_iso: s.detected_at,
        evidence: JSON.stringify(s.evidence),
        status: change.op === "upsert" ? "active" : "retracted",
      } as T;
    }
  }
  current(): Map<string, { change: Change; version: number }> {
    const m = new Map<string, { change: Change; version: number }>();
    for (const r of this.rows) {
      const prev = m.get(r.change.suspect.suspect_id);
      if (!prev || r.version >= prev.version) m.set(r.change.suspect.suspect_id, r);
    }
    return m;
  }
  /** Active suspects with their config hashes, canonical for comparison. */
  active(): string[] {
    return [...this.current().values()]
      .filter((r) => r.change.op === "upsert")
      .map((r) => {
        const { detected_at: _d, ...rest } = r.change.suspect as Suspect;
        return JSON.stringify({ ...rest, config_hash: r.change.configHash });
      })
      .sort();
  }
}

/** A small stream with readmissions, duplicates, late arrivals and reversals. */
function stream(): EngineEvent[] {
  const events = [];
  for (let p = 0; p < 30; p++) {
    const person_id = `P${p}`;
    const a = stay("2025-01-02", "2025-01-06", { person_id, settlement_id: `${person_id}-1` });
    const b = stay("2025-01-10", "2025-01-14", { person_id, settlement_id: `${person_id}-2` });
    const c = stay("2025-01-16", "2025-01-20", { person_id, settlement_id: `${person_id}-3` });
    const o = settlement({ person_id, admission_date: "2025-01-12", settlement_id: `${person_id}-4` });
    events.push(a, c, o, b); // b arrives late
    if (p % 4 === 0) {
      events.push(
        settlement({
          ...b,
          settlement_id: `${person_id}-R`,
          event_type: "REVERSAL",
          original_settlement_id: b.settlement_id,
          settled_at: "2025-01-25T10:00:00+08:00",
          items: [],
        }),
      );
    }
  }
  return events.map(asEvent);
}

describe("run session", () => {
  const setup = { configs: { frequent_admission: { readmissionMaxDays: 5 } } };
  const sessions: RunSession[] = [];
  afterAll(() => Promise.all(sessions.map((s) => s.close())));
  const take = (s: RunSession, e: EngineEvent) => s.event(0, e);

  async function session(store: MemoryStore, checkpoint: Checkpoint) {
    const s = new RunSession({
      name: "r",
      store: store as unknown as Store,
      detectors: activateSetup(setup),
      setup,
      retentionDays: 400,
      checkpoint,
      checkpointIntervalMs: 3_600_000,
      log,
    });
    sessions.push(s);
    return s;
  }

  it("an interruption after any event resumes to the uninterrupted result", async () => {
    const events = stream();
    const whole = new MemoryStore();
    const c0 = await Checkpoint.create(dir("whole"), "r", {});
    const s0 = await session(whole, c0);
    for (const e of events) take(s0, e);
    await s0.checkpoint({ events: events.length });
    await c0.remove();
    const expected = whole.active();
    expect(expected.length).toBeGreaterThan(30);
    expect(expected.every((s) => s.includes('"config_hash":"'))).toBe(true);

    let repaired = 0;
    // 4 and 21: just after a stay whose reversal comes next (persons 0 and 4).
    for (const stopAt of [1, 4, 17, 21, 40, 77, events.length - 1]) {
      // A source that replays in another order after a restart (like two topics' interleaving):
      // the store can only be right if rows written after the last commit are repaired.
      for (const reorder of [false, true]) {
        const store = new MemoryStore();
        const d = dir("resume");
        const c1 = await Checkpoint.create(d, "r", {});
        const first = await session(store, c1);
        for (let i = 0; i < stopAt; i++) {
          take(first, events[i] as EngineEvent);
          if (i % 10 === 9) await first.checkpoint({ events: i + 1 });
        }
        // Killed after writing suspects but before its next commit.
        await (first as unknown as { flushChanges(): Promise<void> }).flushChanges();
        await c1.close();
        const { checkpoint, loaded } = await Checkpoint.resume(d, "r");
        const second = await session(store, checkpoint);
        repaired += await second.restore(loaded);
        const from = (loaded.commit?.position as { events: number } | undefined)?.events ?? 0;
        expect(second.events).toBe(from);
        const rest = events.slice(from);
        for (const e of reorder ? rest.reverse() : rest) take(second, e);
        await second.checkpoint({ events: events.length });
        expect(store.active(), `stopped at ${stopAt}, reordered ${reorder}`).toEqual(expected);
        await checkpoint.remove();
      }
    }
    expect(repaired).toBeGreaterThan(0);
  });

  it("limits the event rate", async () => {
    const limiter = new RateLimiter(1000);
    const t0 = performance.now();
    for (let i = 0; i < 300; i++) {
      const wait = limiter.delay();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
    expect(new RateLimiter(undefined).delay()).toBe(0);
  });
});
