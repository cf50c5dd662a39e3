// `fundguard worker`: a consumer-group member running the engine on its partitions (task.ts).
// Per flush: suspect changes (with the settlement archive) are written to ClickHouse, or to
// suspects.v1 for `fundguard sink`; dead letters and the state changelog go to Kafka (acks=all,
// idempotent producer); only then are the input offsets committed. Replays after a crash
// re-derive the same findings under the same ids and higher versions: exactly-once results.
// An unavailable store, registry or broker is waited out (backoff, still in the group, fetching
// stopped) and the flush or message that hit it is retried as it was, so nothing is lost or doubled.
import { join } from "node:path";
import type { Limits } from "../../schemas/index.ts";
import { followDetectorConfig } from "../dynamic-config/apply.ts";
import { type ConfigFollower, configTopicFor } from "../dynamic-config/topic.ts";
import { Health } from "../health.ts";
import { DEFAULT_TIMING } from "../kafka/connection.ts";
import { endOffsets, isCaughtUp, type Offsets } from "../kafka/progress.ts";
import { AvroSerde } from "../kafka/serde.ts";
import type { Topics } from "../kafka/topics.ts";
import type { KafkaTransport } from "../kafka/transport.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { activateSetup } from "../pipeline/lane-core.ts";
import type { DetectorSetup } from "../pipeline/lane-protocol.ts";
import { laneCount } from "../pipeline/lanes.ts";
import { DEFAULT_BACKOFF } from "../retry.ts";
import { lockStateDir } from "../state/dir-lock.ts";
import type { TaskOutput } from "./flush.ts";
import { emptyWorkerStats, type WorkerStats, WorkerTask } from "./task.ts";
import { prepareTopics } from "./topics.ts";

export type { WorkerStats };

export interface WorkerOptions {
  /** What the worker consumes, restores and sends (state, dead letters, suspects for the sink) through. */
  transport: KafkaTransport;
  registryUrl: string;
  /** The contract's input limits (default: schemas/limits.ts's). */
  limits?: Limits;
  topics: Topics;
  group: string;
  /** The registry's detectors with this catalog folder (configs from the config topic, if followed). */
  detectors: DetectorSetup;
  retentionDays: number;
  latenessDays?: number | undefined;
  /**
   * Engine state on local disk (FUNDGUARD_STATE_DIR), `cachePersons` of it live in memory in all
   * (divided among the input partitions); default: the heap. One worker process per directory.
   */
  state?: { dir: string; cachePersons: number };
  /**
   * Worker threads running the engines (FUNDGUARD_LANES; default: one per core but one, at most one
   * per partition); 0 runs them on the main thread.
   */
  lanes?: number;
  log: Logger;
  /** Exit once the group has committed up to the end offsets seen at start. */
  untilCaughtUp?: boolean;
  /** How often state and offsets are committed (Kafka Streams' commit.interval.ms). */
  commitIntervalMs?: number;
  sessionTimeoutMs?: number;
  /** Partitions of input topics this worker creates when they are missing (none: they must exist). */
  createPartitions?: number;
  /**
   * The dynamic detector configuration topic to follow (default: detector-config.v1 with the
   * topics' prefix); false runs on `detectors` as given.
   */
  configTopic?: string | false;
  /**
   * Where suspect changes go: ClickHouse directly (the store, which also archives the input
   * events), or the suspects topic for a separate sink — for several workers sharing an
   * embedded chdb, which only one process can open.
   */
  output: TaskOutput;
  signal?: AbortSignal;
  onStats?: (s: WorkerStats) => void;
  metrics?: Metrics;
  /** What this worker waits out, with which backoff (default: the default backoff, reported to `metrics`). */
  health?: Health;
  /** How long a schema id unknown to the registry is waited for (SchemaCacheOptions.unknownWaitMs). */
  schemaWaitMs?: number;
}

/**
 * Retries kafkajs makes within one send before it gives up and the flush's own backoff takes
 * over, so a broker outage shows as degraded instead of a send that never returns.
 */
const SEND_RETRIES = 5;

export async function runWorker(o: WorkerOptions): Promise<WorkerStats> {
  const log = o.log.child({ component: "worker", group: o.group });
  const admin = o.transport.admin();
  const { partitions, deadLetterBytes, resumeWithinMs } = await prepareTopics(admin, {
    ...o,
    suspectsToTopic: o.output.kind === "topic",
  });
  const serde = new AvroSerde(o.registryUrl, o.topics, { unknownWaitMs: o.schemaWaitMs, limits: o.limits });
  await serde.register();
  const health = o.health ?? new Health({ log, policy: DEFAULT_BACKOFF, metrics: o.metrics });
  const inputs = [o.topics.settlements, o.topics.deaths];
  const targets: Offsets | undefined = o.untilCaughtUp ? await endOffsets(admin, inputs) : undefined;
  const producer = o.transport.producer({ retries: SEND_RETRIES });
  const consumer = o.transport.groupConsumer({
    group: o.group,
    topics: inputs,
    // A crashed worker's partitions move after this long; frequent heartbeats keep a live one.
    sessionTimeoutMs: o.sessionTimeoutMs ?? DEFAULT_TIMING.sessionTimeoutMs,
    maxBytesPerPartition: 4 << 20,
  });

  /** This process's copy of the detectors: config changes are checked and logged here, then sent to the lanes. */
  const detectors = activateSetup(o.detectors);
  let task: WorkerTask | undefined;
  const stats = emptyWorkerStats();
  // Dynamic detector config (a GlobalKTable of detector-config.v1): the whole topic is applied
  // before the first event, then changes are applied between batches as they arrive.
  let configFollower: ConfigFollower | undefined;
  const configTopic = o.configTopic === undefined ? configTopicFor(o.topics) : o.configTopic;
  if (configTopic) {
    configFollower = await followDetectorConfig(o.transport, configTopic, detectors, {
      log,
      onApplied: (r) => {
        stats.configChanges++;
        task?.config(r);
      },
      serially: (apply) => (task ? task.locked(apply) : apply()),
    });
  }
  const unlock = o.state ? lockStateDir(o.state.dir) : () => undefined;
  const t = new WorkerTask({
    ...o,
    admin,
    producer,
    consumer,
    changelogTopic: o.topics.changelog(o.group),
    partitions,
    serde,
    health,
    log,
    active: detectors,
    reference: o.detectors.reference,
    // Lanes start from the effective configs; changes from now on reach them as messages.
    lanes: laneCount(o.lanes, partitions),
    state: o.state && {
      dir: join(o.state.dir, o.group),
      cachePersons: Math.max(1, Math.ceil(o.state.cachePersons / partitions)),
    },
    deadLetterBytes,
    stats,
    resumeWithinMs,
    commitIntervalMs: o.commitIntervalMs ?? 1_000,
  });
  task = t;
  // A stop requested while starting up (restoring, loading config) is honoured once started.
  if (o.signal?.aborted) t.finish();
  o.signal?.addEventListener("abort", () => t.finish(), { once: true });

  t.watch(targets && (() => isCaughtUp(admin, o.group, targets)));

  let assigned: Parameters<typeof consumer.pause>[0] = [];
  await consumer.run({
    onAssign: async (a) => {
      assigned = a.all;
      t.assign(a.all);
    },
    onBatch: (batch, heartbeat) => t.batch(batch, heartbeat),
    onError: (e) => t.fail(e, "consumer"),
  });
  try {
    await t.done;
  } finally {
    try {
      // Stop fetching, let the batch under way finish, write and commit what it produced: kafkajs
      // can commit offsets only while the consumer runs, so pause rather than stop first.
      consumer.pause(assigned);
      await configFollower?.stop();
      if (!t.failure) await t.drain();
    } finally {
      await consumer.close();
      await producer.close();
      await admin.close();
      await t.close();
      unlock();
    }
  }
  if (t.failure) throw t.failure;
  log.info(t.stats, "worker stopped");
  return t.stats;
}
