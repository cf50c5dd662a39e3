// The transport on @platformatic/kafka 1.x (2.x needs Node ≥ 22.22): static membership, KIP-447
// transactions available, manual fetches. Its default partitioner is not Java's: the compatibility one is.
import {
  Admin,
  type Broker,
  type ClusterMetadata,
  type CommitOptionsPartition,
  type Connection,
  Consumer,
  compatibilityPartitioner,
  type GroupAssignment,
  heartbeatV4,
  kGetConnection,
  type Message,
  type MessagesStream,
  Producer,
} from "@platformatic/kafka";
import { FETCH_WAIT_MS } from "./client.ts";
import {
  assignmentDiff,
  type Compression,
  type FetchedBatch,
  type GroupConsumer,
  type GroupHandlers,
  type GroupOptions,
  heartbeatMs,
  type KafkaTransport,
  type RangeRead,
  type TP,
  type TransportAdmin,
  type TransportConnection,
  type TransportProducer,
  tpKey,
} from "./transport.ts";

/** Record-batch attribute bit of transaction markers, which carry no records for the reader. */
const IS_CONTROL = 1 << 5;
/** Records held for paused partitions before the whole fetch loop is paused too. */
const HOLD_LIMIT = 4096;

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
  return {
    listTopics: () => a.listTopics(),
    async createTopics(specs) {
      const existing = new Set(await a.listTopics());
      for (const s of specs.filter((x) => !existing.has(x.topic))) {
        await a.createTopics({
          topics: [s.topic],
          partitions: s.partitions,
          configs: Object.entries(s.configs ?? {}).map(([name, value]) => ({ name, value })),
        });
      }
    },
    partitions,
    async endOffsets(topic) {
      const n = await partitions(topic);
      const [t] = await a.listOffsets({
        topics: [
          {
            name: topic,
            partitions: Array.from({ length: n }, (_, i) => ({ partitionIndex: i, timestamp: -1n })),
          },
        ],
      });
      return new Map((t?.partitions ?? []).map((p) => [p.partitionIndex, p.offset]));
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
    return compatibilityPartitioner({ topic, key }, key) % n;
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

function groupConsumer(conn: TransportConnection, o: GroupOptions): GroupConsumer {
  const consumer = new Consumer({
    ...base(conn),
    groupId: o.group,
    sessionTimeout: o.sessionTimeoutMs,
    heartbeatInterval: heartbeatMs(o.sessionTimeoutMs),
    ...(o.instanceId ? { groupInstanceId: o.instanceId } : {}),
    autocommit: false,
    maxWaitTime: FETCH_WAIT_MS,
    maxBytesPerPartition: o.maxBytesPerPartition,
    maxBytes: Math.max(o.maxBytesPerPartition * 4, 10 << 20),
  });
  let stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;
  let assigned: TP[] = [];
  let generation = -1;
  let assigning: Promise<void> = Promise.resolve();
  const held = new Map<string, Message<Buffer, Buffer, Buffer, Buffer>[]>();
  const paused = new Set<string>();
  let draining = false;
  let handlers: GroupHandlers | undefined;
  let heldCount = 0;

  const flat = (a: GroupAssignment[] | null | undefined) =>
    (a ?? []).flatMap((x) => x.partitions.map((partition) => ({ topic: x.topic, partition })));

  const heartbeat = async () => {
    if (!consumer.isActive() || consumer.generationId !== generation || consumer.memberId === null)
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

  /** Delivers what the last fetches brought, one partition's batch at a time, the fetch loop paused meanwhile. */
  const drain = async () => {
    if (draining || !stream || !handlers) return;
    draining = true;
    stream.pause();
    try {
      await assigning;
      const owned = new Set(assigned.map((t) => tpKey(t.topic, t.partition)));
      for (const [k, messages] of held) {
        if (!owned.has(k)) {
          heldCount -= messages.length;
          held.delete(k);
          continue;
        }
        if (paused.has(k) || messages.length === 0) continue;
        held.delete(k);
        heldCount -= messages.length;
        const first = messages[0] as Message<Buffer, Buffer, Buffer, Buffer>;
        const records = messages.map((m) => ({
          offset: m.offset,
          key: m.key ?? null,
          value: m.value ?? null,
        }));
        await handlers.onBatch(
          {
            topic: first.topic,
            partition: first.partition,
            records,
            lastOffset: records[records.length - 1]?.offset ?? first.offset,
          },
          heartbeat,
        );
      }
    } catch (e) {
      handlers.onError(e as Error);
      return;
    } finally {
      draining = false;
    }
    if (heldCount < HOLD_LIMIT) stream.resume();
    if ([...held.keys()].some((k) => !paused.has(k))) setImmediate(drain);
  };

  return {
    async run(h) {
      handlers = h;
      consumer.on("consumer:group:join", (payload) => {
        generation = payload.generationId ?? consumer.generationId;
        const all = flat(payload.assignments);
        const diff = assignmentDiff(assigned, all);
        assigned = all;
        assigning = assigning.then(() => h.onAssign(diff));
      });
      stream = await consumer.consume({
        topics: o.topics,
        mode: "committed",
        fallbackMode: "earliest",
        autocommit: false,
        maxBytesPerPartition: o.maxBytesPerPartition,
        highWaterMark: HOLD_LIMIT,
      });
      stream.on("error", (e) => h.onError(e));
      stream.on("data", (m: Message<Buffer, Buffer, Buffer, Buffer>) => {
        const k = tpKey(m.topic, m.partition);
        let messages = held.get(k);
        if (!messages) {
          messages = [];
          held.set(k, messages);
        }
        messages.push(m);
        // A fetch's records arrive synchronously: deliver them together once it is done.
        if (++heldCount === 1) setImmediate(drain);
      });
    },
    async commit(offsets) {
      const leaderEpoch = -1;
      const list: CommitOptionsPartition[] = offsets.map((x) => ({ ...x, leaderEpoch }));
      await consumer.commit({ offsets: list });
    },
    heartbeat,
    pause(tps) {
      for (const t of tps) paused.add(tpKey(t.topic, t.partition));
    },
    resume(tps) {
      for (const t of tps) paused.delete(tpKey(t.topic, t.partition));
      setImmediate(drain);
    },
    async close() {
      await stream?.close();
      await consumer.close();
    },
  };
}

/** Fetches straight from the partitions' leaders: no group, no offsets stored. */
async function* readRange(conn: TransportConnection, o: RangeRead): AsyncIterable<FetchedBatch> {
  const a = admin(conn);
  const ends = await a.endOffsets(o.topic).finally(() => a.close());
  const next = new Map<number, bigint>();
  const stop = new Map<number, bigint>();
  for (const [p, r] of o.ranges) {
    const end = ends.get(p) ?? 0n;
    const to = r.to === "end" || r.to > end ? end : r.to;
    if (r.from < to) {
      next.set(p, r.from);
      stop.set(p, to);
    }
  }
  if (next.size === 0) return;
  const consumer = new Consumer({ ...base(conn), groupId: "fundguard-range-unused", autocommit: false });
  try {
    while (next.size > 0) {
      const meta = await consumer.metadata({ topics: [o.topic] });
      const topic = meta.topics.get(o.topic);
      if (!topic) throw new Error(`${o.topic}: no such topic`);
      const byLeader = new Map<number, number[]>();
      for (const p of next.keys()) {
        const leader = topic.partitions[p]?.leader ?? -1;
        byLeader.set(leader, [...(byLeader.get(leader) ?? []), p]);
      }
      for (const [node, partitions] of byLeader) {
        const response = await consumer.fetch({
          node,
          maxWaitTime: FETCH_WAIT_MS,
          minBytes: 1,
          maxBytes: 64 << 20,
          topics: [
            {
              topicId: topic.id,
              partitions: partitions.map((partition) => ({
                partition,
                fetchOffset: next.get(partition) as bigint,
                partitionMaxBytes: 16 << 20,
                currentLeaderEpoch: -1,
                lastFetchedEpoch: -1,
              })),
            },
          ],
        });
        for (const t of response.responses) {
          for (const part of t.partitions) {
            const p = part.partitionIndex;
            const from = next.get(p);
            const to = stop.get(p);
            if (from === undefined || to === undefined) continue;
            const records = [];
            let after = from;
            for (const batch of part.records ?? []) {
              after = batch.firstOffset + BigInt(batch.lastOffsetDelta) + 1n;
              if (batch.attributes & IS_CONTROL) continue;
              for (const r of batch.records) {
                const offset = batch.firstOffset + BigInt(r.offsetDelta);
                if (offset >= from && offset < to) records.push({ offset, key: r.key, value: r.value });
              }
            }
            if (after >= to) next.delete(p);
            else next.set(p, after);
            const last = records[records.length - 1];
            if (last)
              yield {
                topic: o.topic,
                partition: p,
                records,
                lastOffset: last.offset,
                highWatermark: part.highWatermark,
              };
          }
        }
      }
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
