// One engine holding a generated population's history, its persons in the heap or in the LMDB
// store behind a bounded cache, in a fresh process (run.ts gives the LMDB one a 1 GiB heap).
//   node --expose-gc --import tsx test/bench/state.ts heap|lmdb SETTLEMENTS DEATHS CACHE_PERSONS
// Prints throughput, heap per retained settlement, peak RSS, the store's size on disk, and the
// time to restore the partition after a restart: from the local store (reopen at its checkpoint)
// and from its changelog alone (every state entry, JSON as the changelog holds them, into a fresh engine).
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getHeapStatistics } from "node:v8";
import { DETECTORS, loadCatalogs } from "../../detectors/index.ts";
import { activate, Engine, type EngineEvent } from "../../services/engine/engine.ts";
import { readLineBatches } from "../../services/ingest/lines.ts";
import { LmdbPersonStore } from "../../services/state/lmdb-person-store.ts";

const [mode, settlements, deaths, cache] = process.argv.slice(2) as [string, string, string, string];
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --expose-gc");
const detectors = activate(DETECTORS, loadCatalogs());
const dir = mkdtempSync(join(tmpdir(), "fundguard-bench-state-"));
/** A worker's commit interval, in events: each commit writes what the cache holds changed. */
const COMMIT_EVERY = 50_000;

const open = (path: string) => {
  let store: LmdbPersonStore | undefined;
  const engine = new Engine({
    detectors,
    changelog: true,
    store:
      mode === "lmdb"
        ? (create) => {
            store = new LmdbPersonStore({ path, cacheSize: Number(cache), create });
            return store;
          }
        : undefined,
  });
  return { engine, store };
};

gc();
const baseHeap = process.memoryUsage().heapUsed;
const { engine, store } = open(join(dir, "store"));
// What a worker sends to its changelog at each commit leaves the process: here it is dropped.
const drain = () => void engine.takeDirty();
const t0 = performance.now();
let events = 0;
for (const [file, kind] of [
  [settlements, "settlement"],
  [deaths, "death"],
] as const) {
  for await (const batch of readLineBatches(file)) {
    for (const line of batch.lines) {
      if (typeof line !== "string" || line.length === 0) continue;
      engine.process({ kind, value: JSON.parse(line) } as EngineEvent);
      if (++events % COMMIT_EVERY === 0) {
        drain();
        store?.commit({ events, watermark: engine.watermark });
      }
    }
  }
}
drain();
store?.commit({ events, watermark: engine.watermark });
const seconds = (performance.now() - t0) / 1000;
const retained = engine.stats.settlements - engine.stats.reversals;
const persons = engine.personCount;
// Peak RSS while holding the history (LMDB's pages mapped from its file count in it, as the OS may reclaim them).
const maxRssBytes = process.resourceUsage().maxRSS * 1024;
/** RSS now, split into the process's own memory and pages mapped from files (LMDB's among them). */
const status = readFileSync("/proc/self/status", "utf8");
const kb = (field: string) =>
  Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0) * 1024;
const rss = { anonBytes: kb("RssAnon"), fileBytes: kb("RssFile") };
gc();
const heapBytes = process.memoryUsage().heapUsed - baseHeap;
const diskBytes = mode === "lmdb" ? Number(execFileSync("du", ["-sb", dir]).toString().split("\t")[0]) : 0;

// The partition's compacted changelog, every entry's latest value as JSON, in a file: a worker
// restoring it holds no copy of it either.
const changelogFile = join(dir, "changelog.ndjson");
const out = createWriteStream(changelogFile);
let entries = 0;
for (const { key, value } of engine.stateEntries()) {
  if (!out.write(`${JSON.stringify([key, value])}\n`)) await once(out, "drain");
  entries++;
}
await new Promise((resolve) => out.end(resolve));

let fromStoreMs: number | undefined;
if (store) {
  await store.close();
  const t = performance.now();
  const again = open(join(dir, "store"));
  const cp = again.store?.checkpoint() as { watermark: number };
  again.engine.restoreWatermark(cp.watermark);
  fromStoreMs = performance.now() - t;
  if (again.engine.personCount !== persons) throw new Error("the reopened store lost persons");
  await again.store?.close();
}
const t1 = performance.now();
const restored = open(join(dir, "restored"));
for await (const batch of readLineBatches(changelogFile)) {
  for (const line of batch.lines) {
    if (typeof line !== "string" || line.length === 0) continue;
    const [key, value] = JSON.parse(line) as [string, unknown];
    restored.engine.restoreEntry(key, value);
  }
}
restored.store?.commit({ events, watermark: restored.engine.watermark });
const fromChangelogMs = performance.now() - t1;
if (restored.engine.personCount !== persons) throw new Error("the changelog restore lost persons");
await restored.store?.close();
rmSync(dir, { recursive: true, force: true });

process.stdout.write(
  `${JSON.stringify({
    mode,
    cachePersons: mode === "lmdb" ? Number(cache) : undefined,
    events,
    seconds,
    eventsPerSecond: events / seconds,
    persons,
    retainedSettlements: retained,
    heapBytesPerRetainedSettlement: Math.round(heapBytes / retained),
    maxRssBytes,
    rss,
    heapLimitBytes: getHeapStatistics().heap_size_limit,
    diskBytes: diskBytes || undefined,
    diskBytesPerRetainedSettlement: diskBytes ? Math.round(diskBytes / retained) : undefined,
    restore: { fromStoreMs, fromChangelogMs, changelogEntries: entries },
  })}\n`,
);
