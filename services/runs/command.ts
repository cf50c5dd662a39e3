import { limitsOf, loadEnv } from "../config/env.ts";
import { readConfigFile } from "../dynamic-config/validate.ts";
import { Health } from "../health.ts";
import { kafkaConnection } from "../kafka/connection.ts";
import { topicNames } from "../kafka/topics.ts";
import { openTransport } from "../kafka/transport.ts";
import { createLogger, type Logger } from "../log.ts";
import { activateSetup } from "../pipeline/lane-core.ts";
import type { DetectorSetup } from "../pipeline/lane-protocol.ts";
import { laneCount } from "../pipeline/lanes.ts";
import { backoffUpTo } from "../retry.ts";
import { openStore, type Store } from "../store/index.ts";
import { Checkpoint, checkpointDir, type LoadedCheckpoint } from "./checkpoint.ts";
import {
  checkUnchanged,
  type FileIdentity,
  type FilePosition,
  fileSource,
  identities,
  runFiles,
} from "./files.ts";
import { eventsProgressBar } from "./progress.ts";
import { RunSession } from "./session.ts";
import { type ChosenDetector, checkRunName, chooseDetectors, configsOf, runConfigHash } from "./spec.ts";
import {
  getRun,
  type RunRecord,
  type RunSource,
  type RunSourceTopics,
  type RunStatus,
  writeRun,
} from "./table.ts";
import { runTopics, type TopicPosition, topicSource } from "./topics.ts";

export interface RunCommandOptions {
  run: string;
  detectors?: string;
  config?: string;
  rate?: number;
  settlements?: string;
  deaths?: string;
  from?: string;
  to?: string;
  resume?: boolean;
  reference?: string;
  /** Seconds between checkpoints. */
  checkpointInterval?: number;
}

/** Written once per run into its checkpoint: everything needed to resume it. */
interface RunMeta {
  name: string;
  source: RunSource;
  detectors: ChosenDetector[];
  config_hash: string;
  retention_days: number;
  /** Absent in runs started before it was recorded: they resume with the default. */
  lateness_days?: number;
  reference: string | null;
  started_at: string;
  files: FileIdentity[];
}

export interface RunOutcome {
  status: RunStatus;
  record: RunRecord;
  repaired: number;
}

function sourceArgs(o: RunCommandOptions): "files" | "topics" | "none" {
  const files = o.settlements !== undefined || o.deaths !== undefined;
  const range = o.from !== undefined || o.to !== undefined;
  if (files && range)
    throw new Error("give either --settlements/--deaths (files) or --from/--to (topics), not both");
  if (files) {
    if (!o.settlements) throw new Error("a run over files needs --settlements (and optionally --deaths)");
    return "files";
  }
  if (range) {
    if (!o.from || !o.to) throw new Error("a run over the topics needs both --from and --to");
    return "topics";
  }
  return "none";
}

/** The partitions of a topic run's range, each an engine of the run. */
const topicPartitions = (s: RunSourceTopics): number =>
  new Set(Object.keys(s.start).map((k) => k.slice(k.lastIndexOf(":") + 1))).size;

async function kafkaFor(log: Logger) {
  const env = loadEnv();
  if (!env.KAFKA_BROKERS || !env.SCHEMA_REGISTRY_URL) {
    throw new Error("a run over the topics needs KAFKA_BROKERS and SCHEMA_REGISTRY_URL");
  }
  const { brokers, clientId } = kafkaConnection(env, "run");
  return {
    transport: await openTransport(env.FUNDGUARD_KAFKA_CLIENT, { brokers, clientId, log }),
    topics: topicNames(env.FUNDGUARD_TOPIC_PREFIX),
    registryUrl: env.SCHEMA_REGISTRY_URL,
  };
}

/** Aborts on SIGINT/SIGTERM so the run checkpoints and stops; a second signal exits at once. */
function interruptSignal(log: Logger): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  const handler = (sig: NodeJS.Signals) => {
    if (ac.signal.aborted) process.exit(130);
    log.warn({ signal: sig }, "interrupted: writing a checkpoint (signal again to exit at once)");
    ac.abort();
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return {
    signal: ac.signal,
    dispose() {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
    },
  };
}

/** Checks that what the command line asks for is what the checkpoint runs. */
function checkSameRun(o: RunCommandOptions, meta: RunMeta): void {
  const kind = sourceArgs(o);
  const differs = (what: string) => {
    throw new Error(
      `--resume: ${what} differs from the run's checkpoint; resume with no source options, or drop the run`,
    );
  };
  if (kind === "files") {
    const s = fileSource(o.settlements as string, o.deaths);
    if (
      meta.source.kind !== "files" ||
      s.settlements !== meta.source.settlements ||
      s.deaths !== meta.source.deaths
    )
      differs("the source");
  }
  if (kind === "topics") {
    if (
      meta.source.kind !== "topics" ||
      Date.parse(o.from as string) !== Date.parse(meta.source.from) ||
      Date.parse(o.to as string) !== Date.parse(meta.source.to)
    )
      differs("the time range");
  }
  if (o.detectors !== undefined || o.config !== undefined) {
    const chosen = chooseDetectors(o.detectors, o.config ? readConfigFile(o.config) : {});
    if (runConfigHash(chosen) !== meta.config_hash) differs("the detectors or their config");
  }
}

export async function executeRun(o: RunCommandOptions, opts: { store?: Store } = {}): Promise<RunOutcome> {
  const env = loadEnv();
  const log = createLogger("run", env.LOG_LEVEL).child({ run: o.run });
  const name = checkRunName(o.run);
  const kind = sourceArgs(o);
  if (!o.resume && kind === "none") {
    throw new Error("give the run's source: --settlements FILE [--deaths FILE], or --from ISO --to ISO");
  }
  if (o.rate !== undefined && !(o.rate > 0)) {
    throw new Error("--rate must be a positive number of events per second");
  }
  if (o.checkpointInterval !== undefined && !(o.checkpointInterval > 0)) {
    throw new Error("--checkpoint-interval must be a positive number of seconds");
  }
  const dir = checkpointDir(env.FUNDGUARD_DATA_DIR, name);
  const store = opts.store ?? (await openStore());
  const interrupt = interruptSignal(log);
  let checkpoint: Checkpoint | undefined;
  let record: RunRecord | undefined;
  let session: RunSession | undefined;
  try {
    const existing = await getRun(store, name);
    let meta: RunMeta;
    let loaded: LoadedCheckpoint<RunMeta> | undefined;
    if (o.resume) {
      if (existing?.status === "done") throw new Error(`run ${name} is already done; nothing to resume`);
      const r = await Checkpoint.resume<RunMeta>(dir, name);
      checkpoint = r.checkpoint;
      loaded = r.loaded;
      meta = loaded.meta;
      checkSameRun(o, meta);
      if (meta.source.kind === "files") checkUnchanged(meta.files);
    } else {
      if (existing) {
        const hint =
          Checkpoint.exists(dir) && existing.status !== "done" ? "continue it with --resume, or " : "";
        throw new Error(
          `run ${name} already exists (${existing.status}); ${hint}drop it first: fundguard runs drop ${name}`,
        );
      }
      const [leftover] = await store.query<{ n: string | number }>(
        "SELECT count() AS n FROM suspects WHERE run_id = {run:String}",
        { run: name },
      );
      if (Number(leftover?.n ?? 0) > 0) {
        throw new Error(
          `suspects with run_id ${name} exist without a run row; drop them first: fundguard runs drop ${name}`,
        );
      }
      const detectors = chooseDetectors(o.detectors, o.config ? readConfigFile(o.config) : {});
      const source =
        kind === "files"
          ? fileSource(o.settlements as string, o.deaths)
          : await (async () => {
              const k = await kafkaFor(log);
              return topicSource(k.transport, k.topics, o.from as string, o.to as string);
            })();
      meta = {
        name,
        source,
        detectors,
        config_hash: runConfigHash(detectors),
        retention_days: env.FUNDGUARD_RETENTION_DAYS,
        lateness_days: env.FUNDGUARD_LATENESS_DAYS,
        reference: o.reference ?? env.FUNDGUARD_REFERENCE_DIR ?? null,
        started_at: new Date().toISOString(),
        files: source.kind === "files" ? identities(source) : [],
      };
      checkpoint = await Checkpoint.create(dir, name, meta);
    }

    const setup: DetectorSetup = {
      ids: meta.detectors.map((d) => d.id),
      reference: meta.reference ?? undefined,
      configs: configsOf(meta.detectors),
    };
    const active = activateSetup(setup);
    const k = meta.source.kind === "topics" ? await kafkaFor(log) : undefined;
    record = {
      name,
      source: meta.source,
      detectors: meta.detectors,
      config_hash: meta.config_hash,
      status: "running",
      started_at: meta.started_at,
      finished_at: null,
      events: 0,
      bad_events: 0,
      suspects: 0,
      suspects_by_detector: {},
      error: "",
    };
    const rec = record;
    const running: RunSession = new RunSession({
      name,
      store,
      detectors: active,
      setup,
      // A file run decodes on this thread (its merge needs each event's time): a lane thread would
      // only take the engine, at the cost of a copy of every event (measured slower), so it is inline.
      lanes:
        meta.source.kind === "files"
          ? (env.FUNDGUARD_LANES ?? 0)
          : laneCount(env.FUNDGUARD_LANES, topicPartitions(meta.source)),
      limits: limitsOf(env),
      ...(k
        ? {
            avro: {
              registryUrl: k.registryUrl,
              topics: {
                settlements: k.topics.settlements,
                deaths: k.topics.deaths,
                suspects: k.topics.suspects,
              },
              schemaWaitMs: env.FUNDGUARD_SCHEMA_WAIT_MS,
              backoff: backoffUpTo(env.FUNDGUARD_BACKOFF_MAX_MS),
            },
            outages: new Health({ log, policy: backoffUpTo(env.FUNDGUARD_BACKOFF_MAX_MS) }),
          }
        : {}),
      retentionDays: meta.retention_days,
      latenessDays: meta.lateness_days,
      checkpoint,
      checkpointIntervalMs: (o.checkpointInterval ?? 10) * 1000,
      log,
      onCheckpoint: async () => {
        rec.events = running.events;
        rec.bad_events = running.badEvents;
        await writeRun(store, rec);
      },
    });
    session = running;
    let repaired = 0;
    if (loaded) {
      repaired = await session.restore(loaded);
      log.info(
        {
          events: session.events,
          repaired,
          entries: [...loaded.states.values()].reduce((n, m) => n + m.size, 0),
        },
        "resumed from checkpoint",
      );
    }
    await writeRun(store, { ...rec, events: session.events, bad_events: session.badEvents });

    const progress = eventsProgressBar(`run ${name}`);
    const t0 = performance.now();
    const eventsBefore = session.events;
    let status: "done" | "interrupted";
    try {
      if (meta.source.kind === "files") {
        status = await runFiles(session, meta.source, {
          from: loaded?.commit?.position as FilePosition | undefined,
          signal: interrupt.signal,
          rate: o.rate,
          progress,
          onBad: (b) => process.stderr.write(`${b.file}:${b.line}: skipped: ${b.reason}\n`),
          limits: limitsOf(env),
        });
      } else {
        status = await runTopics(session, meta.source, {
          transport: (k as NonNullable<typeof k>).transport,
          from: loaded?.commit?.position as TopicPosition | undefined,
          signal: interrupt.signal,
          rate: o.rate,
          progress,
        });
      }
    } finally {
      progress.stop();
    }
    const counts = await session.suspectCounts();
    Object.assign(rec, {
      status,
      events: session.events,
      bad_events: session.badEvents,
      suspects: counts.total,
      suspects_by_detector: counts.byDetector,
      finished_at: status === "done" ? new Date().toISOString() : null,
    });
    await writeRun(store, rec);
    if (status === "done") await checkpoint.remove();
    else await checkpoint.close();
    checkpoint = undefined;
    const s = (performance.now() - t0) / 1000;
    const rate = Math.round((session.events - eventsBefore) / Math.max(s, 1e-9));
    process.stderr.write(
      status === "done"
        ? `run ${name}: done, ${rec.events} events (${rec.bad_events} bad), ${rec.suspects} suspects in ${s.toFixed(1)} s (${rate} events/s)\n`
        : `run ${name}: interrupted after ${rec.events} events; continue with: fundguard replay --run ${name} --resume\n`,
    );
    return { status, record: rec, repaired };
  } catch (e) {
    if (record && checkpoint) {
      record.status = "failed";
      record.error = (e as Error).message;
      await writeRun(store, record).catch(() => undefined);
    }
    throw e;
  } finally {
    interrupt.dispose();
    await session?.close();
    await checkpoint?.close();
    if (!opts.store) await store.close();
  }
}

export async function runCommand(o: RunCommandOptions): Promise<void> {
  const { status } = await executeRun(o);
  if (status === "interrupted") process.exitCode = 130;
}
