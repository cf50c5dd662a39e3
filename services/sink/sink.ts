// `fundguard sink`: Kafka → ClickHouse, as a ClickHouse Kafka sink connector does. It archives the
// input topics and applies suspect changes; inserts are idempotent (ReplacingMergeTree by id and
// version), and offsets are committed only after the insert returns. An unavailable store,
// registry or broker is waited out inside the batch (backoff, heartbeats), then the batch goes on.

import type { Limits } from "../../schemas/index.ts";
import type { EngineEvent } from "../engine/engine.ts";
import { Health } from "../health.ts";
import { DEFAULT_TIMING } from "../kafka/connection.ts";
import { endOffsets, isCaughtUp } from "../kafka/progress.ts";
import {
  AvroSerde,
  decodeSuspectChange,
  RegistryUnavailableError,
  type SuspectChange,
} from "../kafka/serde.ts";
import type { Topics } from "../kafka/topics.ts";
import type { FetchedBatch, KafkaTransport } from "../kafka/transport.ts";
import type { Logger } from "../log.ts";
import { DEFAULT_BACKOFF, tickingWait } from "../retry.ts";
import type { ArchiveRecord, Store } from "../store/index.ts";

export interface SinkOptions {
  /** What the sink consumes through (FUNDGUARD_KAFKA_CLIENT). */
  transport: KafkaTransport;
  sessionTimeoutMs?: number;
  registryUrl: string;
  /** The workers' input limits, so the archive keeps exactly what they accepted. */
  limits?: Limits;
  topics: Topics;
  store: Store;
  group: string;
  runId?: string;
  log: Logger;
  untilCaughtUp?: boolean;
  signal?: AbortSignal;
  /** What this sink waits out, with which backoff (default: the default backoff, logged). */
  health?: Health;
  /** How long a schema id unknown to the registry is waited for (SchemaCacheOptions.unknownWaitMs). */
  schemaWaitMs?: number;
}

export interface SinkStats {
  settlements: number;
  deaths: number;
  changes: number;
  skipped: number;
}

export async function runSink(o: SinkOptions): Promise<SinkStats> {
  const log = o.log.child({ component: "sink", group: o.group });
  const serde = new AvroSerde(o.registryUrl, o.topics, { unknownWaitMs: o.schemaWaitMs, limits: o.limits });
  const health = o.health ?? new Health({ log, policy: DEFAULT_BACKOFF });
  const topics = [o.topics.settlements, o.topics.deaths, o.topics.suspects];
  const admin = o.transport.admin();
  const targets = o.untilCaughtUp ? await endOffsets(admin, topics) : undefined;
  const consumer = o.transport.groupConsumer({
    group: o.group,
    topics,
    sessionTimeoutMs: o.sessionTimeoutMs ?? DEFAULT_TIMING.sessionTimeoutMs,
    maxBytesPerPartition: 8 << 20,
  });
  const stats: SinkStats = { settlements: 0, deaths: 0, changes: 0, skipped: 0 };

  const onBatch = async (batch: FetchedBatch, heartbeat: () => Promise<void>) => {
    if (batch.records.length === 0) return;
    // Waits stay in the group; a stop ends them and leaves the batch uncommitted, to be redone.
    const patiently = { wait: tickingWait(heartbeat), signal: o.signal };
    if (batch.topic === o.topics.suspects) {
      const changes: SuspectChange[] = batch.records.map(decodeSuspectChange);
      await health.retry(
        "store",
        () =>
          o.store.writeChanges(changes, { runId: o.runId, versionOf: (c) => (c as SuspectChange).version }),
        patiently,
      );
      stats.changes += changes.length;
    } else {
      const kind = batch.topic === o.topics.settlements ? "settlement" : "death";
      const valid: ArchiveRecord[] = [];
      for (const m of batch.records) {
        const d = await health.retry("registry", () => serde.decode(kind, m.value), {
          ...patiently,
          retryable: (e) => e instanceof RegistryUnavailableError,
        });
        // Invalid input is the worker's to dead-letter; the archive keeps only contract events,
        // from their exact Kafka values.
        if (d.ok) valid.push({ event: { kind, value: d.value } as EngineEvent, raw: m.value as Buffer });
        else stats.skipped++;
      }
      const fallbacks = await health.retry(
        "store",
        () => o.store.archive(valid, "AvroConfluent", { registryUrl: o.registryUrl }),
        patiently,
      );
      for (const f of fallbacks) {
        log.warn(
          { table: f.table, clickhouse: f.message },
          "ClickHouse refused the archive's Avro bytes as data: this batch was archived through JS rows",
        );
      }
      if (kind === "settlement") stats.settlements += valid.length;
      else stats.deaths += valid.length;
    }
    const offset = batch.lastOffset + 1n;
    await health.retry(
      "broker",
      () => consumer.commit([{ topic: batch.topic, partition: batch.partition, offset }]),
      patiently,
    );
    await heartbeat();
  };

  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    finish = resolve;
    if (o.signal?.aborted) resolve();
    o.signal?.addEventListener("abort", () => resolve(), { once: true });
  });
  const poll = targets
    ? setInterval(() => {
        isCaughtUp(admin, o.group, targets)
          .then((yes) => yes && finish())
          .catch((e) => log.warn({ err: e }, "progress check failed"));
      }, 250)
    : undefined;
  let failure: Error | undefined;
  await consumer.run({
    onAssign: async () => undefined,
    onBatch,
    onError: (e) => {
      failure = e;
      log.error({ err: e }, "consumer failed: stopping; a restart resumes from the last commit");
      finish();
    },
  });
  try {
    await done;
  } finally {
    if (poll) clearInterval(poll);
    await consumer.close();
    await admin.close();
  }
  if (failure) throw failure;
  log.info(stats, "sink stopped");
  return stats;
}
