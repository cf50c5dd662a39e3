// The transport on kafkajs (2.2.4, the last release, 2023-02): no manual assignment, no static
// membership, no KIP-447; lz4 through the codec connection.ts registers.
import { randomUUID } from "node:crypto";
import kafkajs, {
  CompressionTypes,
  type Consumer,
  type Kafka,
  type KafkaMessage,
  type Message,
  Partitioners,
  type PartitionMetadata,
  type Producer,
} from "kafkajs";
import { consumerTiming, createKafka, DEFAULT_TIMING } from "./connection.ts";
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

// kafkajs is CommonJS and Node's ESM loader does not see this one among its named exports.
const { ConfigResourceTypes } = kafkajs;

const CODECS: Record<Compression, CompressionTypes> = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  lz4: CompressionTypes.LZ4,
};

const toBuffer = (v: Buffer | string | null) => (v === null || Buffer.isBuffer(v) ? v : Buffer.from(v));

function admin(kafka: Kafka): TransportAdmin {
  const a = kafka.admin();
  const connected = a.connect();
  const ready = async () => {
    await connected;
    return a;
  };
  return {
    listTopics: async () => (await ready()).listTopics(),
    async createTopics(specs) {
      const c = await ready();
      const existing = new Set(await c.listTopics());
      const missing = specs.filter((s) => !existing.has(s.topic));
      if (missing.length === 0) return;
      // kafkajs leaves a topic another process created meanwhile as it is (no error).
      await c.createTopics({
        waitForLeaders: true,
        topics: missing.map((s) => ({
          topic: s.topic,
          numPartitions: s.partitions,
          configEntries: Object.entries(s.configs ?? {}).map(([name, value]) => ({ name, value })),
        })),
      });
    },
    async partitions(topic) {
      const c = await ready();
      if (!(await c.listTopics()).includes(topic)) return 0;
      const meta = await c.fetchTopicMetadata({ topics: [topic] });
      return meta.topics[0]?.partitions.length ?? 0;
    },
    async topicConfig(topic, name) {
      const { resources } = await (await ready()).describeConfigs({
        includeSynonyms: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: [name] }],
      });
      return resources[0]?.configEntries.find((e) => e.configName === name)?.configValue;
    },
    async endOffsets(topic) {
      const offsets = await (await ready()).fetchTopicOffsets(topic);
      return new Map(offsets.map((p) => [p.partition, BigInt(p.high)]));
    },
    async offsetsAt(topic, timestampMs) {
      // kafkajs answers the high watermark for a partition with no record at or after the time.
      const offsets = await (await ready()).fetchTopicOffsetsByTimestamp(topic, timestampMs);
      return new Map(offsets.map((p) => [p.partition, BigInt(p.offset)]));
    },
    async committed(group, topic) {
      const [t] = await (await ready()).fetchOffsets({ groupId: group, topics: [topic] });
      const out = new Map<number, bigint>();
      for (const p of t?.partitions ?? []) if (p.offset !== "-1") out.set(p.partition, BigInt(p.offset));
      return out;
    },
    deleteGroup: async (group) => (await ready()).deleteGroups([group]).then(() => undefined),
    close: async () => (await ready()).disconnect(),
  };
}

/**
 * An idempotent producer partitioning like Java clients (murmur2 of the key), so topics
 * written here and by other producers stay co-partitioned. By default it retries until
 * delivered, as idempotence requires; a caller that resends what a send gave up on (the worker,
 * which must report the outage meanwhile) may bound the retries of one send.
 */
export function idempotentProducer(kafka: Kafka, retries = Number.MAX_SAFE_INTEGER): Producer {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: { retries, maxRetryTime: 30_000 },
  });
}

function producer(kafka: Kafka, retries?: number): TransportProducer {
  const p = idempotentProducer(kafka, retries);
  const connected = p.connect();
  const partitioner = Partitioners.DefaultPartitioner();
  const meta = admin(kafka);
  const partitionsOf = new Map<string, PartitionMetadata[]>();
  /** kafkajs's own partitioner, asked here so that each record's partition (and count) is known. */
  const partitionOf = async (topic: string, key: Buffer): Promise<number> => {
    let partitionMetadata = partitionsOf.get(topic);
    if (!partitionMetadata) {
      const n = await meta.partitions(topic);
      if (n === 0) throw new Error(`${topic}: no such topic`);
      partitionMetadata = Array.from({ length: n }, (_, i) => ({
        partitionId: i,
        leader: 0,
        partitionErrorCode: 0,
        replicas: [],
        isr: [],
      }));
      partitionsOf.set(topic, partitionMetadata);
    }
    return partitioner({ topic, partitionMetadata, message: { key, value: null } });
  };
  return {
    async send(records, o) {
      await connected;
      const byTopic = new Map<string, Message[]>();
      const sizes = new Map<string, number>();
      for (const r of records) {
        const key = toBuffer(r.key);
        const partition = r.partition ?? (key ? await partitionOf(r.topic, key) : undefined);
        if (partition === undefined) throw new Error(`${r.topic}: a record without a key needs a partition`);
        let messages = byTopic.get(r.topic);
        if (!messages) {
          messages = [];
          byTopic.set(r.topic, messages);
        }
        messages.push({ key, value: toBuffer(r.value), partition, headers: r.headers });
        const k = tpKey(r.topic, partition);
        sizes.set(k, (sizes.get(k) ?? 0) + 1);
      }
      const written = await p.sendBatch({
        acks: -1,
        compression: CODECS[o?.compression ?? "none"],
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      });
      // kafkajs reports each partition's base offset; its records are consecutive from there.
      const last = new Map<string, bigint>();
      for (const m of written) {
        const k = tpKey(m.topicName, m.partition);
        last.set(k, BigInt(m.baseOffset ?? "0") + BigInt(sizes.get(k) ?? 1) - 1n);
      }
      return last;
    },
    close: async () => {
      await connected;
      await Promise.all([p.disconnect(), meta.close()]);
    },
  };
}

function groupConsumer(kafka: Kafka, o: GroupOptions): GroupConsumer {
  const consumer: Consumer = kafka.consumer({
    groupId: o.group,
    sessionTimeout: o.sessionTimeoutMs,
    heartbeatInterval: consumerTiming(o.sessionTimeoutMs).heartbeatMs,
    maxWaitTimeInMs: DEFAULT_TIMING.fetchWaitMs,
    maxBytesPerPartition: o.maxBytesPerPartition,
    maxBytes: Math.max(o.maxBytesPerPartition * 4, 10 << 20),
    // kafkajs restarts a consumer after a retriable crash; this seam reports it and stops instead.
    retry: { retries: 0, restartOnFailure: async () => false },
  });
  let assigned: TP[] = [];
  let assigning: Promise<void> = Promise.resolve();
  /** A rebalance seen since the last join: this member's generation is over. */
  let rebalancing = false;
  let lastHeartbeat: (() => Promise<void>) | undefined;
  return {
    async run(h: GroupHandlers) {
      consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
        rebalancing = false;
        const all = Object.entries(payload.memberAssignment).flatMap(([topic, ps]) =>
          ps.map((partition) => ({ topic, partition })),
        );
        const diff = assignmentDiff(assigned, all);
        assigned = all;
        assigning = assigning.then(() => h.onAssign(diff));
      });
      consumer.on(consumer.events.REBALANCING, () => {
        rebalancing = true;
      });
      consumer.on(consumer.events.CRASH, ({ payload }) => h.onError(payload.error));
      await consumer.connect();
      await consumer.subscribe({ topics: o.topics, fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, heartbeat, resolveOffset }) => {
          await assigning;
          lastHeartbeat = heartbeat;
          if (batch.messages.length === 0) return;
          const records = batch.messages.map(fetchedRecord);
          await h.onBatch(
            {
              topic: batch.topic,
              partition: batch.partition,
              records,
              lastOffset: BigInt(batch.lastOffset()),
              highWatermark: BigInt(batch.highWatermark),
            },
            heartbeat,
          );
          resolveOffset(batch.lastOffset());
        },
      });
    },
    async commit(offsets) {
      await consumer.commitOffsets(
        offsets.map((x) => ({ topic: x.topic, partition: x.partition, offset: String(x.offset) })),
      );
    },
    async heartbeat() {
      if (rebalancing || assigned.length === 0)
        throw new Error(`${o.group}: this member's generation is over`);
      // kafkajs sends it only once the heartbeat interval has passed; it throws on a rebalance.
      await lastHeartbeat?.();
    },
    pause: (tps) => consumer.pause(byTopic(tps)),
    resume: (tps) => consumer.resume(byTopic(tps)),
    close: async () => {
      assigned = [];
      await consumer.disconnect();
    },
  };
}

function fetchedRecord(m: KafkaMessage): FetchedRecord {
  const record: FetchedRecord = { offset: BigInt(m.offset), key: m.key, value: m.value };
  const headers = m.headers && Object.entries(m.headers);
  if (headers && headers.length > 0) {
    record.headers = {};
    for (const [k, v] of headers) {
      const first = Array.isArray(v) ? v[0] : v;
      if (first !== undefined) record.headers[k] = Buffer.isBuffer(first) ? first : Buffer.from(first);
    }
  }
  return record;
}

function byTopic(tps: TP[]): { topic: string; partitions: number[] }[] {
  const m = new Map<string, number[]>();
  for (const { topic, partition } of tps) m.set(topic, [...(m.get(topic) ?? []), partition]);
  return [...m].map(([topic, partitions]) => ({ topic, partitions }));
}

/**
 * A throwaway group reads the topic (kafkajs has no manual assignment). Every join seeks each
 * partition to the next offset to hand over: kafkajs forgets seeks when a failed join or a crash
 * restarts the consumer, and a group without committed offsets would read from the start.
 */
async function* readRange(kafka: Kafka, a: TransportAdmin, o: RangeRead): AsyncIterable<FetchedBatch> {
  const ends = await a.endOffsets(o.topic);
  const { follow } = o;
  const { from, pending, reached, take } = rangePlan(o, ends);
  if (from.size === 0 || follow?.signal.aborted) return;
  const groupId = `fundguard-range-${randomUUID()}`;
  const consumer = kafka.consumer({
    groupId,
    maxWaitTimeInMs: DEFAULT_TIMING.fetchWaitMs,
    maxBytesPerPartition: 16 << 20,
    maxBytes: 64 << 20,
  });
  const queue = new Handoff<FetchedBatch>();
  const abort = () => queue.end();
  follow?.signal.addEventListener("abort", abort);
  // Only a crash kafkajs will not restart from ends the read; the others rejoin and seek again.
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (!payload.restart) queue.end(payload.error);
  });
  consumer.on(consumer.events.GROUP_JOIN, () => {
    for (const [partition, offset] of from)
      consumer.seek({ topic: o.topic, partition, offset: String(offset) });
  });
  try {
    await consumer.connect();
    await consumer.subscribe({ topic: o.topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const fetched = batch.messages.map((m) => ({
          ...fetchedRecord(m),
          timestampMs: Number(m.timestamp),
        }));
        const records = take(batch.partition, fetched, BigInt(batch.lastOffset()));
        const last = records[records.length - 1];
        if (last)
          await queue.put({
            topic: o.topic,
            partition: batch.partition,
            records,
            lastOffset: last.offset,
            highWatermark: BigInt(batch.highWatermark),
          });
        reached();
        if (!follow && pending.size === 0) queue.end();
      },
    });
    yield* queue;
  } finally {
    follow?.signal.removeEventListener("abort", abort);
    queue.drop();
    await consumer.disconnect();
    await a.deleteGroup(groupId).catch(() => undefined);
  }
}

/** One item at a time from a callback to an async iterator: put() resolves once the reader has handled the item. */
class Handoff<T> {
  #items: { item: T; taken: () => void }[] = [];
  #wake: (() => void) | undefined;
  #ended = false;
  #dropped = false;
  #error: Error | undefined;
  put(item: T): Promise<void> {
    if (this.#dropped) return Promise.resolve();
    return new Promise((taken) => {
      this.#items.push({ item, taken });
      this.#wake?.();
    });
  }
  /** The reader is gone: waiting and later puts resolve at once, so the callback never hangs. */
  drop() {
    this.#dropped = true;
    for (const { taken } of this.#items.splice(0)) taken();
  }
  end(error?: Error) {
    this.#ended = true;
    this.#error = error;
    this.#wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const next = this.#items[0];
      if (next) {
        // Released once the reader asks for the next item: the callback then knows this one was handled.
        yield next.item;
        this.#items.shift();
        next.taken();
        continue;
      }
      if (this.#error) throw this.#error;
      if (this.#ended) return;
      await new Promise<void>((wake) => {
        this.#wake = wake;
      });
    }
  }
}

export function kafkajsTransport(conn: TransportConnection): KafkaTransport {
  const kafka = createKafka(conn, conn.log);
  return {
    name: "kafkajs",
    admin: () => admin(kafka),
    producer: (o) => producer(kafka, o?.retries),
    groupConsumer: (o) => groupConsumer(kafka, o),
    async *readRange(o) {
      const a = admin(kafka);
      try {
        yield* readRange(kafka, a, o);
      } finally {
        await a.close();
      }
    },
  };
}
