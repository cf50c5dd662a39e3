// The LMDB person store on its own: a restart resumes from a commit exactly, a spill makes the store
// unclean until the next commit, deletions and sweeps read what they must and nothing else.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { open as lmdbOpen } from "lmdb";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { DETECTORS, loadCatalogs } from "../../detectors/index.ts";
import type { Settlement } from "../../schemas/index.ts";
import { activate, Engine, type EngineEvent, settlementRecord } from "../../services/engine/engine.ts";
import { PersonState, STATE_FORMAT } from "../../services/engine/person-state.ts";
import { generate } from "../../services/generate/generate.ts";
import { LmdbPersonStore } from "../../services/state/lmdb-person-store.ts";
import { line, settlement } from "../fixtures/events.ts";
import { canonical } from "../fixtures/run.ts";

const detectors = activate(DETECTORS, loadCatalogs());
const clock = () => new Date("2026-01-01T00:00:00Z");
const dirs: string[] = [];
const freshDir = () => {
  const d = mkdtempSync(join(tmpdir(), "fundguard-lmdb-test-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function onDisk(path: string, cacheSize: number, retentionDays?: number) {
  let store: LmdbPersonStore | undefined;
  const engine = new Engine({
    detectors,
    clock,
    retentionDays,
    store: (create) => {
      store = new LmdbPersonStore({ path, cacheSize, create });
      return store;
    },
  });
  return { engine, store: store as unknown as LmdbPersonStore };
}

describe("LMDB person store", () => {
  const events: EngineEvent[] = [];
  beforeAll(async () => {
    await generate({
      settlements: 4_000,
      seed: "lmdb-store",
      schemeRate: 0.2,
      emit: {
        settlement: (l) => void events.push({ kind: "settlement", value: JSON.parse(l) as Settlement }),
        death: (l) => void events.push({ kind: "death", value: JSON.parse(l) }),
        label: () => undefined,
      },
    });
  });

  it("resumes after a commit and a restart as one engine over the whole stream, on a cache far smaller than the persons", async () => {
    const whole = new Engine({ detectors, clock });
    for (const e of events) whole.process(e);
    const expected = canonical([...whole.activeSuspects()]);
    expect(expected.length).toBeGreaterThan(20);
    // The whole state as a compacted changelog holds it rebuilds the same engine.
    const copy = new Engine({ detectors, clock });
    for (const { key, value } of whole.stateEntries())
      copy.restoreEntry(key, JSON.parse(JSON.stringify(value)));
    expect(canonical([...copy.activeSuspects()])).toEqual(expected);
    expect(copy.personCount).toBe(whole.personCount);
    expect(copy.watermark).toBe(whole.watermark);

    const path = freshDir();
    const half = Math.floor(events.length / 2);
    const first = onDisk(path, 8);
    for (const e of events.slice(0, half)) first.engine.process(e);
    first.store.commit({ offset: half, watermark: first.engine.watermark });
    await first.store.close();

    const second = onDisk(path, 8);
    const cp = second.store.checkpoint() as { offset: number; watermark: number };
    expect(cp.offset).toBe(half);
    second.engine.restoreWatermark(cp.watermark);
    expect(second.engine.personCount).toBe(first.engine.personCount);
    for (const e of events.slice(cp.offset)) second.engine.process(e);
    expect(canonical([...second.engine.activeSuspects()])).toEqual(expected);
    expect(second.engine.personCount).toBe(whole.personCount);
    await second.store.close();
  });

  it("is unclean after a spill until the next commit", async () => {
    const path = freshDir();
    const { engine, store } = onDisk(path, 2);
    store.commit({ offset: 0 });
    expect(store.checkpoint()).toEqual({ offset: 0 });
    // More changed persons than the cache holds: they go to disk before any commit.
    for (const e of events.slice(0, 50)) engine.process(e);
    expect(store.checkpoint()).toBeUndefined();
    await store.close();
    const reopened = new LmdbPersonStore({ path, cacheSize: 2, create: (id) => new PersonState(id) });
    expect(reopened.checkpoint()).toBeUndefined();
    reopened.commit({ offset: 50 });
    expect(reopened.checkpoint()).toEqual({ offset: 50 });
    await reopened.close();
  });

  it("empties a store written in another state format when it opens", async () => {
    const path = freshDir();
    const first = onDisk(path, 100);
    for (const e of events.slice(0, 200)) first.engine.process(e);
    first.store.commit({ offset: 200 });
    const persons = first.store.size;
    expect(persons).toBeGreaterThan(0);
    await first.store.close();
    const same = onDisk(path, 100);
    expect([same.store.checkpoint(), same.store.size]).toEqual([{ offset: 200 }, persons]);
    await same.store.close();
    // As a store of an older fundguard would have it.
    const raw = lmdbOpen({ path, maxDbs: 4 });
    raw.openDB({ name: "meta" }).putSync("format", STATE_FORMAT - 1);
    await raw.close();
    const other = onDisk(path, 100);
    expect([other.store.checkpoint(), other.store.size]).toEqual([undefined, 0]);
    await other.store.close();
  });

  it("forgets a deleted person on disk, takes it anew, and sweeps only who may expire", async () => {
    const store = new LmdbPersonStore({
      path: freshDir(),
      cacheSize: 1,
      create: (id) => new PersonState(id),
    });
    const person = (id: string, day: string) => {
      const p = new PersonState(id);
      const s = (events.find((e) => e.kind === "settlement") as { value: Settlement }).value;
      p.apply({
        kind: "s",
        id: `${id}-s`,
        value: { ...settlementRecord(s, Date.parse(day), {}), id: `${id}-s`, settledAt: day },
      });
      return p;
    };
    store.add(person("old", "2025-01-01T00:00:00Z"));
    store.add(person("new", "2025-06-01T00:00:00Z"));
    store.add(person("gone", "2025-01-02T00:00:00Z"));
    store.commit({ offset: 3 });
    expect(store.size).toBe(3);
    store.delete("gone");
    expect(store.get("gone")).toBeUndefined();
    expect([...store.expiring(Date.parse("2025-03-01T00:00:00Z"))].map((p) => p.personId)).toEqual(["old"]);
    store.commit({ offset: 4 });
    expect(store.get("gone")).toBeUndefined();
    expect(store.size).toBe(2);
    store.add(person("gone", "2025-07-01T00:00:00Z"));
    store.commit({ offset: 5 });
    expect(store.get("gone")?.settlements.map((s) => s.settledAt)).toEqual(["2025-07-01T00:00:00Z"]);
    expect([...store.values()].map((p) => p.personId).sort()).toEqual(["gone", "new", "old"]);
    await store.close();
  });

  it("keys by a hash the ids LMDB cannot key (over its key size, with a NUL), and finds, restores and sweeps them", async () => {
    // Valid input: the schemas bound ids only by the string limit (64 KiB).
    const ids = ["参".repeat(1_000), "P\u0000Q", "\u0001#P", "P2"];
    const twice = ids.flatMap((id, i) =>
      ["a", "b"].map((n) => ({
        kind: "settlement" as const,
        value: settlement({
          settlement_id: `S${i}${n}`,
          person_id: id,
          items: [line({ item_code: "001101000010000", service_date: "2025-03-01" })],
        }),
      })),
    );
    const later: EngineEvent = {
      kind: "settlement",
      value: settlement({ settlement_id: "LATER", person_id: "P9", admission_date: "2025-09-01" }),
    };
    const heap = new Engine({ detectors, clock, retentionDays: 30 });
    for (const e of twice) heap.process(e);
    expect(new Set([...heap.activeSuspects()].map((s) => s.person_id))).toEqual(new Set(ids));
    const expected = canonical([...heap.activeSuspects()]);

    const path = freshDir();
    const make = () => onDisk(path, 1, 30);
    const first = make();
    for (const e of twice) first.engine.process(e);
    first.store.commit({ offset: twice.length, watermark: first.engine.watermark });
    expect(canonical([...first.engine.activeSuspects()])).toEqual(expected);
    await first.store.close();

    const second = make();
    second.engine.restoreWatermark((second.store.checkpoint() as { watermark: number }).watermark);
    expect([...second.store.values()].map((p) => p.personId).sort()).toEqual([...ids].sort());
    expect(canonical([...second.engine.activeSuspects()])).toEqual(expected);
    // Past the retention: the sweep reads them from the expiry index and lets them go.
    second.engine.process(later);
    second.store.commit({ offset: twice.length + 1, watermark: second.engine.watermark });
    expect([...second.store.values()].map((p) => p.personId)).toEqual(["P9"]);
    await second.store.close();
  });

  it("writes a person swept and seen again before the next commit without its old entries", async () => {
    const path = freshDir();
    const make = () => onDisk(path, 100, 30);
    const at = (person_id: string, settlement_id: string, day: string) => ({
      kind: "settlement" as const,
      value: settlement({
        person_id,
        settlement_id,
        admission_date: day,
        settled_at: `${day}T10:00:00+08:00`,
      }),
    });
    const first = make();
    first.engine.process(at("P", "OLD", "2025-01-01"));
    first.store.commit({ watermark: first.engine.watermark });
    // Past the retention: the sweep takes P off, then P comes back, all before the next commit.
    first.engine.process(at("Q", "Q1", "2025-03-01"));
    expect(first.store.get("P")).toBeUndefined();
    first.engine.process(at("P", "NEW", "2025-03-02"));
    first.store.commit({ watermark: first.engine.watermark });
    await first.store.close();
    const second = make();
    expect(second.store.get("P")?.settlements.map((s) => s.id)).toEqual(["NEW"]);
    expect(second.store.size).toBe(2);
    await second.store.close();
  });
});
