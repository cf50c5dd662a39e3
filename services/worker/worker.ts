// `fundguard worker`: a consumer-group member running the engine on its partitions.
// Per flush: suspect changes (with the settlement archive) are written to ClickHouse, or to
// suspects.v1 for `fundguard sink`; dead letters and the state changelog go to Kafka (acks=all,
// idempotent producer); only then are the input offsets committed. Replays after a crash
// re-derive the same findings under the same ids and higher versions: exactly-once results.
// An unavailable store, registry or broker is waited out (backoff, still in the group, fetching
// stopped) and the flush or message that hit it is retried as it was, so nothing is lost or doubled.
import { CompressionTypes, type Message, type ProducerRecord } from "kafkajs";
import type { Limits } from "../../schemas/index.ts";
import { applyConfigRecord } from "../dynamic-config/apply.ts";
import { type ConfigFollower, configTopicFor, followConfigTopic } from "../dynamic-config/topic.ts";
import type { EngineEvent } from "../engine/engine.ts";
import { Health } from "../health.ts";
import { produceRequests, sendRequest } from "../kafka/client.ts";
import { DEFAULT_TIMING } from "../kafka/connection.ts";
import { deadLetterBatchBytes, deadLetterMessage } from "../kafka/deadletter.ts";
import { endOffsets, isCaughtUp, type Offsets } from "../kafka/progress.ts";
import { AvroSerde, encodeSuspectChange, type InputKind, type SuspectChange } from "../kafka/serde.ts";
import {
  CHANGELOG_MAX_MESSAGE_BYTES,
  changelogConfig,
  checkCoPartitioned,
  inputTopicConfigs,
  maxMessageBytes,
  type Topics,
} from "../kafka/topics.ts";
import { type FetchedBatch, type KafkaTransport, type TP, tpKey } from "../kafka/transport.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { activateSetup } from "../pipeline/lane-core.ts";
import type { BatchResult, DetectorSetup } from "../pipeline/lane-protocol.ts";
import { type Lane, laneCount, leastLoaded, openLanes } from "../pipeline/lanes.ts";
import { repairsAfter, writtenAfter, writtenToTopic } from "../pipeline/repair.ts";
import { VersionClock } from "../pipeline/version-clock.ts";
import { awaitTicking, DEFAULT_BACKOFF } from "../retry.ts";
import { LIVE_RUN, type RawArchiveRecord, type Store } from "../store/index.ts";
import {
  changelogGroup,
  isMarkerKey,
  markerMessage,
  packEntries,
  restoreFromChangelog,
  type StateMarker,
  stateMessages,
} from "./changelog.ts";

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
  output: { kind: "store"; store: Store } | { kind: "topic" };
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

export interface WorkerStats {
  events: number;
  deadLetters: number;
  changes: number;
  restoredPersons: number;
  flushes: number;
  /** Detector config records applied (a changed effective config). */
  configChanges: number;
}

export async function runWorker(o: WorkerOptions): Promise<WorkerStats> {
  const log = o.log.child({ component: "worker", group: o.group });
  const admin = o.transport.admin();
  // A worker may start before anything was produced: create missing topics, then insist on co-partitioning.
  if (o.createPartitions) await admin.createTopics(inputTopicConfigs(o.topics, o.createPartitions));
  const partitions = await checkCoPartitioned((topic) => admin.partitions(topic), o.topics);
  const changelogTopic = o.topics.changelog(o.group);
  const toTopic = o.output.kind === "topic";
  // Suspects go to the partition of their person's input partition, so a restore reads only its own.
  if (toTopic && (await admin.partitions(o.topics.suspects)) !== partitions) {
    throw new Error(`${o.topics.suspects} must have ${partitions} partitions, as the input topics`);
  }
  await admin.createTopics([changelogConfig(o.topics, o.group, partitions)]);
  // Dead letters are cut to what their topic accepts: one the broker refused would fail every flush.
  const deadLetterBytes = await maxMessageBytes(admin, o.topics.deadletter);
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

  const stats: WorkerStats = {
    events: 0,
    deadLetters: 0,
    changes: 0,
    restoredPersons: 0,
    flushes: 0,
    configChanges: 0,
  };
  /** This process's copy of the detectors: config changes are checked and logged here, then sent to the lanes. */
  const detectors = activateSetup(o.detectors);
  let lanes: Lane[] = [];
  /** The lane holding each restored partition's engine. */
  const laneOf = new Map<number, Lane>();
  /** Bumped when a partition's engine is replaced: a batch result of an older engine is stale. */
  const generation = new Map<number, number>();
  /** Batches sent to lanes whose results are not accounted yet. */
  const unaccounted = new Set<Promise<void>>();
  const personsOf = new Map<Lane, number>();
  let assigned = new Set<number>();
  const clock = new VersionClock();
  /** Changes with the input partition of their person: a lost partition's are its new owner's to write. */
  let changes: (SuspectChange & { partition: number })[] = [];
  /** Per partition, the suspects-topic offset after what this process knows it wrote there. */
  const suspectsEnd = new Map<number, string>();
  let archive: RawArchiveRecord[] = [];
  let deadbox: Message[] = [];
  const pendingOffsets = new Map<string, TP & { offset: bigint }>();
  let lastFlush = Date.now();
  const commitEvery = o.commitIntervalMs ?? 1_000;

  // Batches, restores and timed flushes must not interleave: both touch the outbox and the pending offsets.
  let lock: Promise<unknown> = Promise.resolve();
  const locked = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = lock.then(fn);
    lock = run.catch(() => undefined);
    return run;
  };

  // Dynamic detector config (a GlobalKTable of detector-config.v1): the whole topic is applied
  // before the first event, then changes are applied between batches as they arrive.
  let configFollower: ConfigFollower | undefined;
  const configTopic = o.configTopic === undefined ? configTopicFor(o.topics) : o.configTopic;
  if (configTopic) {
    configFollower = await followConfigTopic(
      o.transport,
      configTopic,
      (r) =>
        locked(async () => {
          if (applyConfigRecord(detectors, r, log) !== "applied") return;
          stats.configChanges++;
          // After the batches already sent: every lane switches between the same batches of a partition.
          for (const lane of lanes) lane.config(r);
        }),
      { log },
    );
    await configFollower.caughtUp;
    log.info(
      {
        topic: configTopic,
        config_hashes: Object.fromEntries(detectors.map((a) => [a.detector.id, a.configHash])),
      },
      "detector config loaded",
    );
  }
  // Lanes start from the effective configs; changes from now on reach them as messages.
  lanes = openLanes(
    laneCount(o.lanes, partitions),
    {
      registryUrl: o.registryUrl,
      topics: { settlements: o.topics.settlements, deaths: o.topics.deaths, suspects: o.topics.suspects },
      limits: o.limits,
      schemaWaitMs: o.schemaWaitMs,
      detectors: {
        reference: o.detectors.reference,
        configs: Object.fromEntries(detectors.map((a) => [a.detector.id, a.ctx.config])),
      },
      retentionDays: o.retentionDays,
      backoff: DEFAULT_BACKOFF,
    },
    health,
  );
  log.info({ lanes: lanes.length, threads: (o.lanes ?? 1) > 0 }, "lanes started");

  let assignedTps: TP[] = [];
  const onAssign = async (all: TP[]) => {
    assignedTps = all;
    const next = new Set(all.map((t) => t.partition));
    // Partitions kept across a rebalance were not consumed by anyone else meanwhile; the rest must be restored.
    // For a lost partition, unflushed state and offsets are dropped together: its new owner resumes from
    // the last flush, where state and offsets agree, and re-derives the same findings.
    for (const [p, lane] of laneOf) {
      if (next.has(p)) continue;
      laneOf.delete(p);
      lane.drop([p]);
    }
    for (const [k, v] of pendingOffsets) if (!next.has(v.partition)) pendingOffsets.delete(k);
    assigned = next;
    log.info({ partitions: [...next].sort((a, b) => a - b) }, "assigned");
    // Restore now rather than on the first batch, so a partition is ready before its data arrives.
    // Not awaited: a batch under way may hold the lock, and it restores what it needs itself.
    locked(restoreMissing).catch((e) => log.error({ err: e }, "state restore failed"));
  };

  const restoreMissing = async () => {
    const missing = [...assigned].filter((p) => !laneOf.has(p));
    if (missing.length === 0) return;
    // What this process still writes for them must be in the log and the store before both are read.
    await inFlight.catch(() => undefined);
    const fresh = new Map<number, Lane>();
    for (const p of missing) {
      const lane = leastLoaded(lanes);
      fresh.set(p, lane);
      generation.set(p, (generation.get(p) ?? 0) + 1);
    }
    try {
      await Promise.all([...fresh].map(([p, lane]) => lane.open([p])));
      const markers = new Map<number, StateMarker>();
      const logged = new Set<number>();
      const t0 = Date.now();
      /** Restore chunks the lanes have not applied yet: the read waits for them past a few. */
      const applying: Promise<void>[] = [];
      const n = await restoreFromChangelog(o.transport, changelogTopic, missing, async (p, records) => {
        const entries = [];
        for (const r of records) {
          if (isMarkerKey(r.key)) markers.set(p, JSON.parse(String(r.value)) as StateMarker);
          else entries.push(r);
        }
        if (entries.length === 0) return;
        logged.add(p);
        applying.push((fresh.get(p) as Lane).restore(p, packEntries(entries)));
        if (applying.length > 8) await applying.shift();
      });
      await Promise.all(applying);
      for (const m of markers.values()) clock.observe(m.version);
      // A partition new to the group gets its first marker before anything is written for it, so a
      // later restore can tell "everything since the start" from a log older than markers.
      const first = missing.filter((p) => !logged.has(p) && !markers.has(p));
      if (first.length > 0) {
        const ends = toTopic ? await suspectsOffsets() : new Map<number, string>();
        const initial = new Map(first.map((p) => [p, { version: 0, suspects: ends.get(p) }]));
        await health.retry(
          "broker",
          () =>
            sendRequest(producer, {
              topic: changelogTopic,
              messages: [...initial].map(([p, m]) => markerMessage(p, m)),
            }),
          { signal: stopping.signal },
        );
        for (const [p, m] of initial) markers.set(p, m);
      }
      for (const [p, m] of markers) if (m.suspects) suspectsEnd.set(p, m.suspects);
      stats.restoredPersons += n;
      log.info({ partitions: missing, records: n, ms: Date.now() - t0 }, "state restored from changelog");
      await repair(fresh, markers);
    } catch (e) {
      for (const [p, lane] of fresh) lane.drop([p]);
      throw e;
    }
    for (const [p, lane] of fresh) {
      // Revoked while restoring: the new owner restores it.
      if (assigned.has(p)) laneOf.set(p, lane);
      else lane.drop([p]);
    }
  };

  /**
   * Rewrites the suspects of restored partitions written after their last marker (by a process
   * that stopped before its flush was committed) to the restored state, through the outbox.
   */
  const repair = async (fresh: Map<number, Lane>, markers: Map<number, StateMarker>) => {
    // A log written before markers existed says nothing about what was written after it.
    const unmarked = [...fresh.keys()].filter((p) => !markers.has(p));
    if (unmarked.length > 0)
      log.warn({ partitions: unmarked }, "changelog without a marker: store not repaired");
    const ids = [...fresh.keys()].filter((p) => markers.has(p));
    if (ids.length === 0) return;
    const floor = (p: number) => markers.get(p)?.version ?? 0;
    const t0 = Date.now();
    const written = () =>
      o.output.kind === "store"
        ? writtenAfter(o.output.store, {
            runId: LIVE_RUN,
            after: Math.min(...ids.map(floor)),
            partitions: { count: partitions, ids },
          })
        : writtenToTopic(o.transport, {
            topic: o.topics.suspects,
            from: new Map(ids.map((p) => [p, markers.get(p)?.suspects ?? "0"])),
            signal: stopping.signal,
          });
    const repairs = await health.retry(
      o.output.kind === "store" ? "store" : "broker",
      () =>
        repairsAfter(written(), {
          active: async () => {
            const byLane = new Map<Lane, number[]>();
            for (const p of ids) {
              const lane = fresh.get(p) as Lane;
              byLane.set(lane, [...(byLane.get(lane) ?? []), p]);
            }
            return (await Promise.all([...byLane].map(([lane, ps]) => lane.active(ps)))).flat();
          },
          floor,
          detectors,
          observe: (v) => clock.observe(v),
        }),
      { signal: stopping.signal },
    );
    for (const { change, partition } of repairs)
      changes.push({ ...change, version: clock.next(), partition });
    const retracted = repairs.filter((r) => r.change.op === "retract").length;
    log.info(
      { partitions: ids, rewritten: repairs.length - retracted, retracted, ms: Date.now() - t0 },
      "store repaired",
    );
  };

  const suspectsSent = (requests: ProducerRecord[]) =>
    requests.reduce((n, r) => n + (r.topic === o.topics.suspects ? r.messages.length : 0), 0);

  /** The suspects topic's end offsets, by partition. */
  const suspectsOffsets = async () =>
    new Map([...(await admin.endOffsets(o.topics.suspects))].map(([p, end]) => [p, String(end)]));

  // Ends every wait for a dependency: a stop request does not wait out an outage.
  const stopping = new AbortController();
  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    finish = () => {
      stopping.abort(
        new Error("worker stopped while waiting for a dependency; a restart resumes from the last flush"),
      );
      for (const lane of lanes) lane.abort();
      resolve();
    };
    // A stop requested while starting up (restoring, loading config) is honoured once started.
    if (o.signal?.aborted) finish();
    o.signal?.addEventListener("abort", () => finish(), { once: true });
  });

  /**
   * A flush takes what the batches so far produced and writes it in three stages, in the
   * background while the next batches are processed: (1) the store, (2) dead letters, suspects
   * for the topic sink and the changelog state ending with each partition's marker, (3) the
   * input offsets. Stage 1 of the next flush overlaps stages 2 and 3 of this one; each stage runs
   * in flush order, so offsets never overtake their state and state never its rows. What a crash
   * leaves in the store past the last marker is repaired on restore (repairStore), so the
   * overlap reopens nothing. A step that fails is retried with backoff on exactly the data it
   * took (the same rows and versions; sends resume at the first request not acknowledged), and
   * the batch waiting behind it heartbeats, so the worker stays in its group and fetches nothing
   * meanwhile. Only a stop ends the wait: the flush is dropped and a restart resumes from the
   * last one, where changelog and offsets agree.
   */
  let stored: Promise<void> = Promise.resolve();
  let inFlight: Promise<void> = Promise.resolve();
  let queued = 0;
  let failure: unknown;
  const flush = async (heartbeat?: () => Promise<void>) => {
    const tick = <T>(p: Promise<T>) => (heartbeat ? awaitTicking(p, heartbeat) : p);
    // Every batch sent so far accounted, then each lane's state after exactly those batches (the
    // lock keeps new ones from being sent meanwhile).
    await tick(Promise.all(unaccounted));
    const results = await tick(Promise.all(lanes.map((l) => l.state())));
    const state: Message[] = [];
    results.forEach((r, i) => {
      personsOf.set(lanes[i] as Lane, r.persons);
      for (const st of r.states) if (laneOf.has(st.partition)) state.push(...stateMessages(st));
    });
    // After every group (see MARKER_KEY): the versions this flush's state accounts for.
    for (const p of laneOf.keys()) {
      state.push(markerMessage(p, { version: clock.current, suspects: suspectsEnd.get(p) }));
    }
    const flushed = changes;
    const letters = deadbox;
    const toStore = o.output.kind === "store" ? { store: o.output.store, archive } : undefined;
    const offsets = [...pendingOffsets.values()];
    changes = [];
    archive = [];
    deadbox = [];
    pendingOffsets.clear();
    lastFlush = Date.now();
    // A partition lost meanwhile is its new owner's: its changes, state and offsets are dropped
    // when their stage comes (the new owner resumes from the last commit and repairs past it).
    const owned = <T extends { partition?: number }>(xs: T[]) =>
      xs.filter((x) => x.partition === undefined || assigned.has(x.partition));
    const previous = inFlight;
    const signal = stopping.signal;
    queued++;
    const timer = o.metrics?.flushSeconds.startTimer();
    const thisStored = stored.then(async () => {
      if (!toStore) return;
      const t0 = Date.now();
      const mine = owned(flushed);
      await health.retry(
        "store",
        () =>
          writeToStore(toStore.store, mine, toStore.archive, {
            registryUrl: o.registryUrl,
            log,
            metrics: o.metrics,
          }),
        { signal },
      );
      log.debug(
        { changes: mine.length, archived: toStore.archive.length, ms: Date.now() - t0 },
        "flush written",
      );
    });
    stored = thisStored;
    inFlight = Promise.all([previous, thisStored])
      .then(async () => {
        const requests = produceRequests([
          {
            topic: o.topics.suspects,
            messages: toTopic
              ? owned(flushed).map((c) => ({
                  ...encodeSuspectChange(serde.suspectSchemaId, c),
                  partition: c.partition,
                }))
              : [],
          },
          {
            topic: o.topics.deadletter,
            messages: letters,
            maxBatchBytes: deadLetterBatchBytes(deadLetterBytes),
          },
          // State is the bulk of what a worker writes: big batches, compressed with lz4 (the cheapest
          // codec per record in the transport bench, for either client).
          {
            topic: changelogTopic,
            messages: owned(state),
            maxBatchBytes: CHANGELOG_MAX_MESSAGE_BYTES / 2,
            groupOf: changelogGroup,
            compression: CompressionTypes.LZ4,
          },
        ]);
        let sent = 0;
        await health.retry(
          "broker",
          async () => {
            for (; sent < requests.length; sent++) {
              const request = requests[sent] as ProducerRecord;
              const written = await sendRequest(producer, request);
              if (request.topic === o.topics.suspects) {
                for (const [k, last] of written) {
                  suspectsEnd.set(Number(k.slice(k.lastIndexOf(":") + 1)), String(last + 1n));
                }
                if (requests[sent + 1]?.topic !== o.topics.suspects)
                  log.debug({ changes: suspectsSent(requests) }, "flush written");
              }
            }
          },
          { signal },
        );
        await health.retry(
          "broker",
          async () => {
            const mine = owned(offsets);
            if (mine.length > 0) await consumer.commit(mine);
          },
          { signal },
        );
        stats.flushes++;
        timer?.();
        o.onStats?.(stats);
      })
      .finally(() => queued--);
    inFlight.catch((e) => {
      failure ??= e;
      if (e === signal.reason)
        log.warn("stopped while a flush waited; a restart resumes from the last flush");
      else log.error({ err: e }, "flush failed: stopping; a restart resumes from the last flush");
      finish();
    });
    await (heartbeat ? awaitTicking(previous, heartbeat) : previous);
  };

  const kindOf = (topic: string): InputKind => (topic === o.topics.settlements ? "settlement" : "death");

  const hasPending = () =>
    changes.length > 0 || deadbox.length > 0 || pendingOffsets.size > 0 || unaccounted.size > 0;

  const onBatch = (batch: FetchedBatch, heartbeat: () => Promise<void>) =>
    locked(() => processBatch(batch, heartbeat));
  const processBatch = async (batch: FetchedBatch, heartbeat: () => Promise<void>) => {
    if (failure || batch.records.length === 0) return;
    const p = batch.partition;
    if (!laneOf.has(p)) await restoreMissing();
    const lane = laneOf.get(p);
    if (!lane) return; // revoked while restoring: the new owner will consume it
    const kind = kindOf(batch.topic);
    const timer = o.metrics?.batchSeconds.startTimer();
    const at = generation.get(p);
    const accounted = lane
      .batch(
        p,
        kind,
        batch.records.map((m) => m.value),
      )
      .then(
        (r) => {
          timer?.();
          // Revoked (or restored anew) meanwhile: the rest is the next owner's, or redone after a restart.
          if (generation.get(p) === at && laneOf.get(p) === lane) account(batch, kind, r);
          if (o.metrics) o.metrics.statePersons.set(sum(personsOf.set(lane, r.persons).values()));
        },
        (e: unknown) => {
          // A stop ended the lane's registry wait: this batch is redone after a restart.
          if (stopping.signal.aborted) return;
          failure ??= e;
          log.error({ err: e }, "lane failed: stopping; a restart resumes from the last flush");
          finish();
        },
      );
    unaccounted.add(accounted);
    void accounted.finally(() => unaccounted.delete(accounted));
    if (o.metrics && batch.highWatermark !== undefined) {
      const lag = batch.highWatermark - batch.lastOffset - 1n;
      o.metrics.lag.set({ topic: batch.topic, partition: p }, Number(lag > 0n ? lag : 0n));
    }
    if (Date.now() - lastFlush >= commitEvery) await flush(heartbeat);
    // A lane that is behind (or waiting out the registry) holds the fetch here, still in the group.
    await awaitTicking(lane.room(), heartbeat);
    await heartbeat();
  };

  /** A batch's results into the outbox: changes, the valid records' archive, dead letters, offsets. */
  const account = (batch: FetchedBatch, kind: InputKind, r: BatchResult) => {
    const bad = new Map(r.bad.map((b) => [b.index, b.reason]));
    batch.records.forEach((m, i) => {
      const reason = bad.get(i);
      if (reason === undefined) {
        // The archive takes the exact Kafka value, and only of a record that decoded and validated.
        if (!toTopic)
          archive.push({ kind, raw: m.value as Buffer, decode: () => decodeValid(kind, m.value) });
        return;
      }
      deadbox.push(
        deadLetterMessage(
          {
            topic: batch.topic,
            partition: batch.partition,
            offset: String(m.offset),
            key: m.key,
            value: m.value,
            reason,
          },
          { maxBytes: deadLetterBytes },
        ),
      );
      stats.deadLetters++;
      o.metrics?.deadLetters.inc({ topic: batch.topic });
    });
    for (const c of r.changes) {
      changes.push({ ...c, version: clock.next(), partition: batch.partition });
      o.metrics?.suspectChanges.inc({ detector: c.suspect.detector, op: c.op });
    }
    stats.changes += r.changes.length;
    stats.events += batch.records.length;
    const last = batch.records[batch.records.length - 1];
    if (last)
      pendingOffsets.set(tpKey(batch.topic, batch.partition), {
        topic: batch.topic,
        partition: batch.partition,
        offset: last.offset + 1n,
      });
    if (o.metrics) {
      o.metrics.eventsConsumed.inc({ topic: batch.topic }, batch.records.length);
      o.metrics.tooLate.inc(r.tooLate);
    }
  };

  /** A record its lane decoded and validated, decoded again here: only the archive's JS fallback needs it. */
  const decodeValid = async (kind: InputKind, value: Buffer | null): Promise<EngineEvent> => {
    const d = await serde.decode(kind, value);
    if (!d.ok) throw new Error(`a record its lane accepted does not decode here: ${d.reason}`);
    return { kind, value: d.value } as EngineEvent;
  };

  // Flushes an idle worker's tail. It never waits behind another flush: only a batch can heartbeat.
  let polling = false;
  const poll = setInterval(async () => {
    if (polling) return;
    polling = true;
    try {
      await locked(async () => {
        if (queued === 0 && hasPending() && Date.now() - lastFlush >= commitEvery) await flush();
      });
      if (targets && queued === 0 && !hasPending() && (await isCaughtUp(admin, o.group, targets))) finish();
    } catch (e) {
      log.warn({ err: e }, "flush or progress check failed");
    } finally {
      polling = false;
    }
  }, 250);

  await consumer.run({
    onAssign: (a) => onAssign(a.all),
    onBatch,
    onError: (e) => {
      failure ??= e;
      log.error({ err: e }, "consumer failed: stopping; a restart resumes from the last flush");
      finish();
    },
  });
  try {
    await done;
  } finally {
    clearInterval(poll);
    try {
      // Stop fetching, let the batch under way finish, write and commit what it produced: kafkajs
      // can commit offsets only while the consumer runs, so pause rather than stop first.
      consumer.pause(assignedTps);
      await configFollower?.stop();
      if (!failure) {
        await locked(flush);
        await inFlight.catch(() => undefined);
      }
    } finally {
      await consumer.close();
      await producer.close();
      await admin.close();
      await Promise.all(lanes.map((l) => l.close()));
    }
  }
  if (failure) throw failure;
  log.info(stats, "worker stopped");
  return stats;
}

interface ArchiveOptions {
  /** The registry ClickHouse reads writer schemas from unless the store's configuration names one. */
  registryUrl: string;
  log: Logger;
  metrics: Metrics | undefined;
}

/**
 * The store path: the archive first (settlements, then deaths, from the Kafka values as they are),
 * then the suspect changes, each insert durable on return.
 */
const sum = (xs: Iterable<number>) => {
  let n = 0;
  for (const x of xs) n += x;
  return n;
};

async function writeToStore(
  store: Store,
  changes: SuspectChange[],
  archive: RawArchiveRecord[],
  o: ArchiveOptions,
): Promise<void> {
  const fallbacks = await store.archive(archive, "AvroConfluent", { registryUrl: o.registryUrl });
  for (const f of fallbacks) {
    o.log.warn(
      { table: f.table, clickhouse: f.message },
      "ClickHouse refused the archive's Avro bytes as data: this flush was archived through JS rows",
    );
    o.metrics?.archiveFallbacks.inc({ table: f.table });
  }
  if (changes.length > 0)
    await store.writeChanges(changes, { versionOf: (c) => (c as SuspectChange).version });
}
