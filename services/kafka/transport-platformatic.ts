// The transport on @platformatic/kafka 1.x (2.x needs Node ≥ 22.22): static membership, KIP-447
// transactions available, manual fetches. Its default partitioner is not Java's: the compatibility one is.
import {
  Admin,
  type Broker,
  type ClusterMetadata,
  type CommitOptionsPartition,
  ConfigResourceTypes,
  type Connection,
  Consumer,
  compatibilityPartitioner,
  heartbeatV4,
  kGetConnection,
  Producer,
} from "@platformatic/kafka";
import { consumerTiming, DEFAULT_TIMING } from "./connection.ts";
import { keyPartition } from "./partition.ts";
import {
  assignmentDiff,
  type Compression,
  type FetchedBatch,
  type FetchedRecord,
  type GroupConsumer,
  type GroupHandlers,
  type GroupOptions,
  type KafkaTransport,
  type RangeRead,
  rangePlan,
  type TP,
  type TransportAdmin,
  type TransportConnection,
  type TransportProducer,
  tpKey,
} from "./transport.ts";

function headersOf(pairs: [Buffer | null, Buffer | null][]): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [k, v] of pairs) if (k && v) out[k.toString()] = v;
  return out;
}

/** Record-batch attribute bit of transaction markers, which carry no records for the reader. */
const IS_CONTROL = 1 << 5;

const toBuffer = (v: Buffer | string | null) => (v === null || Buffer.isBuffer(v) ? v : Buffer.from(v));

function base(conn: TransportConnection) {
  return { clientId: conn.clientId, bootstrapBrokers: conn.brokers, retryDelay: 200 };
}

function admin(conn: TransportConnection): TransportAdmin {
  const a = new Admin(base(conn));
  const partitions = async (topic: string) => {
    if (!(await a.listTopics()).includes(topic)) return 0;
    const meta = await a.metadata({ topics: [topic], forceUpdate: true });
    return meta.topics.get(topic)?.partitionsCount ?? 0;
  };
  /** Every partition's offset for a ListOffsets timestamp (-1: the end). */
  const listOffsets = async (topic: string, timestamp: bigint) => {
    const n = await partitions(topic);
    const [t] = await a.listOffsets({
      topics: [
        { name: topic, partitions: Array.from({ length: n }, (_, i) => ({ partitionIndex: i, timestamp })) },
      ],
    });
    return new Map((t?.partitions ?? []).map((p) => [p.partitionIndex, p.offset]));
  };
  return {
    listTopics: () => a.listTopics(),
    async createTopics(specs) {
      const existing = new Set(await a.listTopics());
      const missing = specs.filter((x) => !existing.has(x.topic));
      for (const s of missing) {
        try {
          await a.createTopics({
            topics: [s.topic],
            partitions: s.partitions,
            configs: Object.entries(s.configs ?? {}).map(([name, value]) => ({ name, value })),
          });
        } catch (e) {
          // Another process (a worker of the same group starting too) created it meanwhile.
          if (!(await a.listTopics()).includes(s.topic)) throw e;
        }
      }
      // As kafkajs's waitForLeaders: every partition has a leader before the first send.
      for (let tries = 0; missing.length > 0; tries++) {
        const meta = await a.metadata({ topics: missing.map((x) => x.topic), forceUpdate: true });
        const led = missing.every((x) => {
          const t = meta.topics.get(x.topic);
          return t?.partitionsCount === x.partitions && t.partitions.every((p) => p.leader >= 0);
        });
        if (led) break;
        if (tries === 50)
          throw new Error(`no leaders for ${missing.map((x) => x.topic).join(", ")} after 5 s`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    partitions,
    async topicConfig(topic, name) {
      const [d] = await a.describeConfigs({
        resources: [
          { resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configurationKeys: [name] },
        ],
      });
      return d?.configs.find((c) => c.name === name)?.value ?? undefined;
    },
    endOffsets: (topic) => listOffsets(topic, -1n),
    async offsetsAt(topic, timestampMs) {
      const [at, ends] = await Promise.all([
        listOffsets(topic, BigInt(timestampMs)),
        listOffsets(topic, -1n),
      ]);
      // The broker answers -1 for a partition with no record at or after the time: that is its end.
      for (const [p, o] of at) if (o < 0n) at.set(p, ends.get(p) ?? 0n);
      return at;
    },
    async committed(group, topic) {
      const [g] = await a.listConsumerGroupOffsets({ groups: [group] });
      const out = new Map<number, bigint>();
      for (const t of g?.topics ?? []) {
        if (t.name !== topic) continue;
        for (const p of t.partitions)
          if (p.committedOffset >= 0n) out.set(p.partitionIndex, p.committedOffset);
      }
      return out;
    },
    deleteGroup: (group) => a.deleteGroups({ groups: [group] }),
    close: () => a.close(),
  };
}

function producer(conn: TransportConnection, retries?: number): TransportProducer {
  const p = new Producer({
    ...base(conn),
    idempotent: true,
    acks: -1,
    partitioner: compatibilityPartitioner,
    retries: retries ?? true,
  });
  const counts = new Map<string, number>();
  /** The compatibility partitioner's choice, made here so each record's partition (and count) is known. */
  const partitionOf = async (topic: string, key: Buffer) => {
    let n = counts.get(topic);
    if (n === undefined) {
      n = (await p.metadata({ topics: [topic] })).topics.get(topic)?.partitionsCount ?? 0;
      if (n === 0) throw new Error(`${topic}: no such topic`);
      counts.set(topic, n);
    }
    return keyPartition(key, n);
  };
  return {
    async send(records, o) {
      const messages = [];
      const sizes = new Map<string, number>();
      for (const r of records) {
        const key = toBuffer(r.key);
        const partition = r.partition ?? (key ? await partitionOf(r.topic, key) : undefined);
        if (partition === undefined) throw new Error(`${r.topic}: a record without a key needs a partition`);
        messages.push({
          topic: r.topic,
          partition,
          key: key ?? undefined,
          value: toBuffer(r.value) ?? undefined,
          // Without serialisers the client writes header keys and values as given: bytes.
          headers: r.headers
            ? new Map(Object.entries(r.headers).map(([k, v]) => [Buffer.from(k), Buffer.from(v)]))
            : undefined,
        });
        const k = tpKey(r.topic, partition);
        sizes.set(k, (sizes.get(k) ?? 0) + 1);
      }
      const compression: Compression = o?.compression ?? "none";
      const result = await p.send({ messages, compression });
      const last = new Map<string, bigint>();
      for (const w of result.offsets ?? []) {
        const k = tpKey(w.topic, w.partition);
        last.set(k, w.offset + BigInt(sizes.get(k) ?? 1) - 1n);
      }
      return last;
    },
    close: () => p.close(),
  };
}

interface Want {
  topic: string;
  partition: number;
  offset: bigint;
}

/**
 * One fetch per leader for the wanted partitions: each partition's records from its offset on, control
 * batches skipped, and where the next fetch starts. No message objects: the batches as decoded.
 */
async function fetchOnce(
  consumer: Consumer,
  wants: Want[],
  maxBytesPerPartition: number,
  timestamps = false,
): Promise<{ batches: FetchedBatch[]; next: Map<string, bigint> }> {
  const meta = await consumer.metadata({ topics: [...new Set(wants.map((w) => w.topic))] });
  const byLeader = new Map<number, Map<string, Want[]>>();
  const names = new Map<string, string>();
  for (const w of wants) {
    const topic = meta.topics.get(w.topic);
    if (!topic) throw new Error(`${w.topic}: no such topic`);
    names.set(topic.id, w.topic);
    const leader = topic.partitions[w.partition]?.leader ?? -1;
    let topics = byLeader.get(leader);
    if (!topics) {
      topics = new Map();
      byLeader.set(leader, topics);
    }
    topics.set(topic.id, [...(topics.get(topic.id) ?? []), w]);
  }
  const from = new Map(wants.map((w) => [tpKey(w.topic, w.partition), w.offset]));
  const responses = await Promise.all(
    [...byLeader].map(([node, topics]) =>
      consumer.fetch({
        node,
        maxWaitTime: DEFAULT_TIMING.fetchWaitMs,
        minBytes: 1,
        maxBytes: Math.max(maxBytesPerPartition * 4, 10 << 20),
        topics: [...topics].map(([topicId, ws]) => ({
          topicId,
          partitions: ws.map((w) => ({
            partition: w.partition,
            fetchOffset: w.offset,
            partitionMaxBytes: maxBytesPerPartition,
            currentLeaderEpoch: -1,
            lastFetchedEpoch: -1,
          })),
        })),
      }),
    ),
  );
  const batches: FetchedBatch[] = [];
  const next = new Map<string, bigint>();
  for (const response of responses) {
    for (const t of response.responses) {
      const topic = names.get(t.topicId) as string;
      for (const part of t.partitions) {
        const k = tpKey(topic, part.partitionIndex);
        const start = from.get(k) ?? 0n;
        const records = [];
        let after = start;
        for (const batch of part.records ?? []) {
          after = batch.firstOffset + BigInt(batch.lastOffsetDelta) + 1n;
          if (batch.attributes & IS_CONTROL) continue;
          for (const r of batch.records) {
            const offset = batch.firstOffset + BigInt(r.offsetDelta);
            if (offset < start) continue;
            const record: FetchedRecord =
              r.headers.length === 0
                ? { offset, key: r.key, value: r.value }
                : { offset, key: r.key, value: r.value, headers: headersOf(r.headers) };
            if (timestamps) record.timestampMs = Number(batch.firstTimestamp + r.timestampDelta);
            records.push(record);
          }
        }
        next.set(k, after);
        const last = records[records.length - 1];
        if (last)
          batches.push({
            topic,
            partition: part.partitionIndex,
            records,
            lastOffset: last.offset,
            highWatermark: part.highWatermark,
          });
      }
    }
  }
  return { batches, next };
}

/** Where newly assigned partitions start: the group's commit, else the earliest offset. */
async function startOffsets(a: Admin, group: string, tps: TP[]): Promise<Map<string, bigint>> {
  const out = new Map<string, bigint>();
  const topics = [...new Set(tps.map((t) => t.topic))];
  const [g] = await a.listConsumerGroupOffsets({ groups: [group] });
  for (const t of g?.topics ?? [])
    for (const p of t.partitions)
      if (p.committedOffset >= 0n) out.set(tpKey(t.name, p.partitionIndex), p.committedOffset);
  const missing = tps.filter((t) => !out.has(tpKey(t.topic, t.partition)));
  if (missing.length > 0) {
    const listed = await a.listOffsets({
      topics: topics.map((name) => ({
        name,
        partitions: missing
          .filter((m) => m.topic === name)
          .map((m) => ({ partitionIndex: m.partition, timestamp: -2n })),
      })),
    });
    for (const t of listed) for (const p of t.partitions) out.set(tpKey(t.name, p.partitionIndex), p.offset);
  }
  return out;
}

/**
 * Group membership from the client (join, sync, background heartbeats, static membership) and a
 * fetch loop of our own over the assignment: its MessagesStream builds an object, a bound commit and
 * diagnostics per message, which cost twice kafkajs's CPU per record in the bench.
 */
function groupConsumer(conn: TransportConnection, o: GroupOptions): GroupConsumer {
  const consumer = new Consumer({
    ...base(conn),
    groupId: o.group,
    sessionTimeout: o.sessionTimeoutMs,
    heartbeatInterval: consumerTiming(o.sessionTimeoutMs).heartbeatMs,
    ...(o.instanceId ? { groupInstanceId: o.instanceId } : {}),
    autocommit: false,
    maxWaitTime: DEFAULT_TIMING.fetchWaitMs,
    maxBytesPerPartition: o.maxBytesPerPartition,
  });
  const a = new Admin(base(conn));
  let assigned: TP[] = [];
  let generation = -1;
  /** Bumped by every join: a fetch or batch begun before it belongs to the old assignment. */
  let epoch = 0;
  /** Joins are handed to onAssign in order, as they happen; fetches wait for the last one. */
  let assigning: Promise<void> = Promise.resolve();
  const next = new Map<string, bigint>();
  const paused = new Set<string>();
  let running = false;
  let loop: Promise<void> = Promise.resolve();
  let wake: (() => void) | undefined;
  const idle = () =>
    new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, DEFAULT_TIMING.fetchWaitMs);
    });

  const heartbeat = async () => {
    if (
      !running ||
      !consumer.isActive() ||
      consumer.generationId !== generation ||
      consumer.memberId === null
    )
      throw new Error(`${o.group}: this member's generation is over`);
    const meta: ClusterMetadata = await consumer.metadata({ topics: o.topics });
    const broker = meta.brokers.get(consumer.coordinatorId ?? -1) as Broker | undefined;
    if (!broker) throw new Error(`${o.group}: no group coordinator known`);
    const connection = await new Promise<Connection>((resolve, reject) =>
      consumer[kGetConnection](broker, (e, c) => (e ? reject(e) : resolve(c as Connection))),
    );
    // A real Heartbeat request: the broker answers ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID or REBALANCE_IN_PROGRESS.
    await heartbeatV4.api.async(connection, o.group, generation, consumer.memberId, consumer.groupInstanceId);
  };
  // The client heartbeats in the background, so a batch handler waiting out an outage keeps the
  // membership without ticking; a rebalance meanwhile reaches onAssign, not the handler.
  const keepAlive = () => Promise.resolve();

  const onJoin = (h: GroupHandlers, gen: number, all: TP[]) => {
    epoch++;
    assigning = assigning.then(async () => {
      const diff = assignmentDiff(assigned, all);
      assigned = all;
      generation = gen;
      for (const t of diff.revoked) next.delete(tpKey(t.topic, t.partition));
      if (diff.added.length > 0)
        for (const [k, v] of await startOffsets(a, o.group, diff.added)) next.set(k, v);
      await h.onAssign(diff);
    });
    assigning.catch((e) => {
      if (running) h.onError(e as Error);
    });
    wake?.();
  };

  const fetchLoop = async (h: GroupHandlers) => {
    while (running) {
      const seen = epoch;
      await assigning;
      if (seen !== epoch) continue;
      const wants = assigned
        .map((t) => ({ ...t, offset: next.get(tpKey(t.topic, t.partition)) as bigint }))
        .filter((w) => w.offset !== undefined && !paused.has(tpKey(w.topic, w.partition)));
      if (wants.length === 0) {
        await idle();
        continue;
      }
      const fetched = await fetchOnce(consumer, wants, o.maxBytesPerPartition);
      // A rebalance during the fetch: its records may belong to another member now; fetch again after it.
      if (seen !== epoch || !running) continue;
      for (const b of fetched.batches) {
        const k = tpKey(b.topic, b.partition);
        if (seen !== epoch || !running) break;
        if (paused.has(k)) continue;
        const from = next.get(k);
        await h.onBatch(b, keepAlive);
        // Unless a join meanwhile moved it (revoked, or restarted from the group's commit).
        if (next.get(k) === from) next.set(k, fetched.next.get(k) as bigint);
      }
      // Partitions the fetch found nothing new on (control batches only) move on too.
      if (seen === epoch)
        for (const [k, v] of fetched.next) if (!paused.has(k) && v > (next.get(k) ?? v)) next.set(k, v);
    }
  };

  return {
    async run(h) {
      running = true;
      consumer.on("consumer:group:join", (payload) =>
        onJoin(
          h,
          payload.generationId ?? consumer.generationId,
          (payload.assignments ?? []).flatMap((x) =>
            x.partitions.map((partition) => ({ topic: x.topic, partition })),
          ),
        ),
      );
      for (const t of o.topics) consumer.topics.track(t);
      await consumer.joinGroup({});
      loop = fetchLoop(h).catch((e) => {
        if (running) h.onError(e as Error);
      });
    },
    async commit(offsets) {
      const list: CommitOptionsPartition[] = offsets.map((x) => ({ ...x, leaderEpoch: -1 }));
      await consumer.commit({ offsets: list });
    },
    heartbeat,
    pause(tps) {
      for (const t of tps) paused.add(tpKey(t.topic, t.partition));
    },
    resume(tps) {
      for (const t of tps) paused.delete(tpKey(t.topic, t.partition));
      wake?.();
    },
    async close() {
      running = false;
      wake?.();
      await loop;
      await consumer.close();
      await a.close();
    },
  };
}

/** Fetches straight from the partitions' leaders: no group, no offsets stored. */
async function* readRange(conn: TransportConnection, o: RangeRead): AsyncIterable<FetchedBatch> {
  const a = admin(conn);
  const ends = await a.endOffsets(o.topic).finally(() => a.close());
  const { follow } = o;
  // `next`: where each partition's next fetch starts; `stop`: those short of their `to`.
  const { from: next, pending: stop, reached } = rangePlan(o, ends);
  const consumer = new Consumer({ ...base(conn), groupId: "fundguard-range-unused", autocommit: false });
  try {
    while (next.size > 0 && !follow?.signal.aborted) {
      const wants = [...next].map(([partition, offset]) => ({ topic: o.topic, partition, offset }));
      // 1 MiB a partition: a larger first batch still comes whole (KIP-74), and big responses decode slower.
      const fetched = await fetchOnce(consumer, wants, 1 << 20, true);
      if (follow?.signal.aborted) return;
      for (const b of fetched.batches) {
        const to = stop.get(b.partition);
        const records = follow || to === undefined ? b.records : b.records.filter((r) => r.offset < to);
        const last = records[records.length - 1];
        if (last) yield { ...b, records, lastOffset: last.offset };
      }
      for (const [k, after] of fetched.next) {
        const p = Number(k.slice(k.lastIndexOf(":") + 1));
        const to = stop.get(p);
        if (to !== undefined && after >= to) stop.delete(p);
        if (!follow && to !== undefined && after >= to) next.delete(p);
        else next.set(p, after);
      }
      reached();
    }
  } finally {
    await consumer.close();
  }
}

export function platformaticTransport(conn: TransportConnection): KafkaTransport {
  return {
    name: "platformatic",
    admin: () => admin(conn),
    producer: (o) => producer(conn, o?.retries),
    groupConsumer: (o) => groupConsumer(conn, o),
    readRange: (o) => readRange(conn, o),
  };
}
