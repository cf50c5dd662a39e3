// `fundguard start` / `npm start`: the embedded all-in-one mode. No Kafka, no ClickHouse server:
// a sample stream (or the given files) runs through the engine over an in-process log into
// chdb under FUNDGUARD_DATA_DIR, and the investigator UI is served on PORT. Then a live generated
// trickle keeps flowing through the same log (live.ts), and /ingest writes to it too.
import { chmodSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Limits } from "../../schemas/limits.ts";
import type { SuspectFeed } from "../api/stream.ts";
import { limitsOf, loadEnv } from "../config/env.ts";
import { ensurePrivateDir } from "../config/private-fs.ts";
import { DEFAULTS, generate } from "../generate/generate.ts";
import { type BadLine, mergedEvents } from "../ingest/ndjson-source.ts";
import { createLogger } from "../log.ts";
import type { LocalState } from "../pipeline/lane-protocol.ts";
import { laneCount } from "../pipeline/lanes.ts";
import { chdbConfig, openStore, type Store } from "../store/index.ts";
import { LiveTrickle, liveOrigin } from "./live.ts";
import { EMBEDDED_PARTITIONS, EmbeddedPipeline } from "./pipeline.ts";
import { restoreFromArchive } from "./restore.ts";
import { serveEmbedded } from "./serve.ts";

/** The engines' LMDB stores, one per partition, under FUNDGUARD_DATA_DIR next to chdb's files. */
export const ENGINE_STATE_DIR = "engine-state";

export interface StartOptions {
  settlements?: string;
  deaths?: string;
  /** Settlements of the generated sample when no files are given and the store is empty. */
  sample: number;
  reference?: string;
  limits?: Limits;
  /** Settlements per second of the live trickle that follows the sample (the CLI's default is 20); 0 or absent: none. */
  liveRate?: number;
}

/** The embedded pipeline with start's detectors and catalogs; archive fallbacks are said. */
export function startPipeline(
  store: Store,
  o: {
    reference?: string | undefined;
    lanes?: number;
    state?: LocalState;
    retentionDays?: number;
    latenessDays?: number;
  },
  say: (s: string) => void,
  onStored?: () => void,
): EmbeddedPipeline {
  return new EmbeddedPipeline(
    store,
    { reference: o.reference },
    {
      lanes: o.lanes ?? 0,
      retentionDays: o.retentionDays,
      latenessDays: o.latenessDays,
      ...(o.state ? { state: o.state } : {}),
      onArchiveFallback: (f) =>
        say(
          `warning: ClickHouse refused the archive's lines as data, written as JS rows instead: ${f.message}`,
        ),
      ...(onStored ? { onStored } : {}),
    },
  );
}

async function hasSuspects(store: Store): Promise<boolean> {
  const [row] = await store.query<{ n: string }>("SELECT toString(count()) AS n FROM suspects");
  return Number(row?.n ?? 0) > 0;
}

/**
 * The engines carry on from what the store holds (a restart, the next month's file): its archive
 * within retention is replayed into them first. Then the files (or, into an empty store, a fresh
 * sample) go through `pipeline` into the store; returns what was ingested, or undefined when no
 * files were given and the store already has suspects.
 */
export async function ingest(
  store: Store,
  o: StartOptions,
  dataDir: string,
  say: (s: string) => void,
  pipeline = startPipeline(store, o, say),
) {
  const t0 = performance.now();
  const resumedFrom = await pipeline.resumedFrom();
  // A margin for rows archived just before the commit's time: replaying one twice changes nothing.
  const since = resumedFrom === undefined ? undefined : resumedFrom - 1_000;
  const restored = await restoreFromArchive(store, pipeline, since);
  await pipeline.commit(true);
  const took = `${((performance.now() - t0) / 1000).toFixed(1)} s`;
  if (resumedFrom !== undefined)
    say(
      `engine state resumed from its local stores, ${restored.toLocaleString("en-US")} events archived since their last commit replayed in ${took}`,
    );
  else if (restored > 0)
    say(`engine state rebuilt from ${restored.toLocaleString("en-US")} archived events in ${took}`);
  let files = o.settlements ? { settlements: o.settlements, deaths: o.deaths } : undefined;
  if (!files) {
    if (await hasSuspects(store)) return undefined;
    const dir = join(dataDir, "sample");
    say(`generating a sample stream of ${o.sample.toLocaleString("en-US")} settlements in ${dir}`);
    const g = await generate({ outDir: dir, settlements: o.sample, seed: 1 });
    for (const f of Object.values(g.files)) chmodSync(f, 0o600);
    files = { settlements: g.files.settlements, deaths: g.files.deaths };
  }
  let bad = 0;
  const onBad = (b: BadLine) => {
    bad++;
    say(`${b.file}:${b.line}: skipped: ${b.reason}`);
  };
  for await (const { event, text } of mergedEvents(files.settlements, files.deaths, onBad, o.limits)) {
    pipeline.publish(event, text);
  }
  const t1 = performance.now();
  await pipeline.drain();
  await pipeline.commit(true);
  const seconds = (performance.now() - t1) / 1000;
  say(
    `ingested ${pipeline.stats.events.toLocaleString("en-US")} events (${bad} bad lines) in ${seconds.toFixed(1)} s: ${pipeline.stats.changes.toLocaleString("en-US")} suspect changes`,
  );
  return pipeline.stats;
}

export async function startCommand(o: StartOptions): Promise<void> {
  const env = loadEnv();
  const log = createLogger("start", env.LOG_LEVEL);
  const say = (s: string) => process.stderr.write(`fundguard: ${s}\n`);
  const dataDir = resolve(env.FUNDGUARD_DATA_DIR);
  ensurePrivateDir(dataDir);
  const store = await openStore(chdbConfig(dataDir));
  const limits = limitsOf(env);
  let feed: SuspectFeed | undefined;
  // /stream hears of each stored round at once, instead of at its next poll.
  const lanes = laneCount(env.FUNDGUARD_LANES, EMBEDDED_PARTITIONS);
  const state: LocalState = {
    dir: join(dataDir, ENGINE_STATE_DIR),
    cachePersons: Math.max(1, Math.floor(env.FUNDGUARD_STATE_CACHE_PERSONS / EMBEDDED_PARTITIONS)),
  };
  const pipeline = startPipeline(
    store,
    {
      ...o,
      lanes,
      state,
      retentionDays: env.FUNDGUARD_RETENTION_DAYS,
      latenessDays: env.FUNDGUARD_LATENESS_DAYS,
    },
    say,
    () => feed?.kick(),
  );
  await ingest(store, { ...o, limits }, dataDir, say, pipeline);
  const { app, url, token } = await serveEmbedded({
    store,
    log,
    env,
    pipeline,
    onFeed: (f) => {
      feed = f;
    },
  });
  say(`investigator UI: ${url}`);
  say(`admin token (valid until the next start): ${token}`);
  const rate = o.liveRate ?? 0;
  let live: LiveTrickle | undefined;
  if (rate > 0) {
    const origin = await liveOrigin(store, DEFAULTS.start);
    live = new LiveTrickle(pipeline, {
      rate,
      origin,
      limits,
      ...(o.reference ? { reference: o.reference } : {}),
      onError: (err) => log.error({ err }, "live trickle"),
    });
    live.start();
    say(`live trickle: ${rate} settlements/s, event time from ${origin.day} (--live-rate 0 stops it)`);
  }
  await new Promise<void>((done) => {
    for (const sig of ["SIGTERM", "SIGINT"] as const) process.once(sig, () => done());
  });
  await live?.stop();
  await app.close();
  await pipeline.close();
  await store.close();
}
