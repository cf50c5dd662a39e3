// The transport seam's contract, held by both clients against the real broker.
import { Kafka, Partitioners, type PartitionMetadata } from "kafkajs";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  type Assignment,
  type FetchedBatch,
  type GroupConsumer,
  KAFKA_CLIENTS,
  type KafkaTransport,
  openTransport,
  type TP,
  type TransportAdmin,
} from "../../services/kafka/transport.ts";
import { createLogger } from "../../services/log.ts";

const SESSION_MS = 6_000;
const log = createLogger("transport-test", "silent");

/** Where kafkajs's DefaultPartitioner (Java's murmur2) puts `key` among `n` partitions: the reference. */
function javaPartition(key: string, n: number): number {
  const partitionMetadata: PartitionMetadata[] = Array.from({ length: n }, (_, i) => ({
    partitionId: i,
    leader: 0,
    partitionErrorCode: 0,
    replicas: [],
    isr: [],
  }));
  return Partitioners.DefaultPartitioner()({ topic: "t", partitionMetadata, message: { key, value: null } });
}

async function readAll(
  t: KafkaTransport,
  topic: string,
  ranges: Map<number, { from: bigint; to: bigint | "end" }>,
) {
  const out: FetchedBatch[] = [];
  for await (const b of t.readRange({ topic, ranges })) out.push(b);
  return out;
}

const until = async (what: string, ok: () => boolean, ms = 60_000) => {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

/** A group member that records what it was assigned and received. */
function member(t: KafkaTransport, group: string, topic: string) {
  const state = {
    consumer: undefined as GroupConsumer | undefined,
    assignments: [] as Assignment[],
    records: [] as { partition: number; offset: bigint; value: string }[],
    errors: [] as Error[],
    get owned(): TP[] {
      return state.assignments.at(-1)?.all ?? [];
    },
  };
  state.consumer = t.groupConsumer({
    group,
    topics: [topic],
    sessionTimeoutMs: SESSION_MS,
    maxBytesPerPartition: 1 << 20,
  });
  const started = state.consumer.run({
    onAssign: async (a) => {
      state.assignments.push(a);
    },
    onBatch: async (b) => {
      for (const r of b.records)
        state.records.push({ partition: b.partition, offset: r.offset, value: String(r.value) });
    },
    onError: (e) => state.errors.push(e),
  });
  return { state, started, consumer: state.consumer };
}

describe.each(KAFKA_CLIENTS)("transport on %s", (client) => {
  const id = `transport-${client}-${Date.now().toString(36)}`;
  let t: KafkaTransport;
  let admin: TransportAdmin;

  beforeAll(async () => {
    t = await openTransport(client, { brokers: [inject("kafkaBrokers")], clientId: id, log });
    admin = t.admin();
  });
  afterAll(async () => {
    await admin?.close();
  });

  it("puts keyed records on Java's murmur2 partitions and reports each partition's last offset", async () => {
    const topic = `${id}.keyed`;
    await admin.createTopics([{ topic, partitions: 6 }]);
    expect(await admin.partitions(topic)).toBe(6);
    const keys = Array.from({ length: 120 }, (_, i) => (i % 3 === 0 ? `参保人-${i}-张三` : `P${i * 7919}`));
    const producer = t.producer();
    try {
      const last = await producer.send(keys.map((key) => ({ topic, key, value: `v-${key}` })));
      const batches = await readAll(
        t,
        topic,
        new Map(Array.from({ length: 6 }, (_, p) => [p, { from: 0n, to: "end" }])),
      );
      const seen = new Map<string, number>();
      for (const b of batches) for (const r of b.records) seen.set(String(r.key), b.partition);
      expect(seen.size).toBe(keys.length);
      for (const key of keys) expect(seen.get(key), key).toBe(javaPartition(key, 6));
      // One request: each partition's records are consecutive from 0, so its last offset is its count - 1.
      const ends = await admin.endOffsets(topic);
      for (const [p, end] of ends) if (end > 0n) expect(last.get(`${topic}:${p}`)).toBe(end - 1n);
      expect([...last.keys()].length).toBe([...ends.values()].filter((e) => e > 0n).length);
    } finally {
      await producer.close();
    }
  });

  it("reads exactly the ranges asked, from inclusive, to exclusive or the end seen at start", async () => {
    const topic = `${id}.range`;
    await admin.createTopics([{ topic, partitions: 2 }]);
    const producer = t.producer();
    try {
      for (let round = 0; round < 2; round++) {
        const records = [0, 1].flatMap((partition) =>
          Array.from({ length: 5 }, (_, i) => ({
            topic,
            partition,
            key: null,
            value: `${partition}/${round * 5 + i}`,
          })),
        );
        await producer.send(records, { compression: round === 0 ? "gzip" : "lz4" });
      }
    } finally {
      await producer.close();
    }
    const batches = await readAll(
      t,
      topic,
      new Map<number, { from: bigint; to: bigint | "end" }>([
        [0, { from: 3n, to: 7n }],
        [1, { from: 5n, to: "end" }],
      ]),
    );
    const got = (p: number) => batches.filter((b) => b.partition === p).flatMap((b) => b.records);
    expect(got(0).map((r) => [r.offset, String(r.value)])).toEqual(
      [3n, 4n, 5n, 6n].map((o) => [o, `0/${o}`]),
    );
    expect(got(1).map((r) => [r.offset, String(r.value)])).toEqual(
      [5n, 6n, 7n, 8n, 9n].map((o) => [o, `1/${o}`]),
    );
    expect(await readAll(t, topic, new Map([[0, { from: 10n, to: "end" }]]))).toEqual([]);
  });

  it("follows past the ends: caught up once the ends seen at start are read, then records as they come, until aborted", async () => {
    const topic = `${id}.follow`;
    await admin.createTopics([{ topic, partitions: 2 }]);
    const producer = t.producer();
    const send = (partition: number, values: string[]) =>
      producer.send(values.map((value) => ({ topic, partition, key: null, value })));
    try {
      await send(0, ["a0", "a1", "a2"]);
      const sentAt = Date.now();
      const stop = new AbortController();
      const seen: { partition: number; offset: bigint; value: string; timestampMs?: number }[] = [];
      let seenAtCaughtUp = -1;
      const reading = (async () => {
        for await (const b of t.readRange({
          topic,
          // Partition 1 is empty: only partition 0's three records stand before the catch-up.
          ranges: new Map<number, { from: bigint; to: bigint | "end" }>([
            [0, { from: 1n, to: "end" }],
            [1, { from: 0n, to: "end" }],
          ]),
          follow: { signal: stop.signal, onCaughtUp: () => (seenAtCaughtUp = seen.length) },
        })) {
          for (const r of b.records)
            seen.push({
              partition: b.partition,
              offset: r.offset,
              value: String(r.value),
              timestampMs: r.timestampMs,
            });
        }
      })();
      await until("the catch-up", () => seenAtCaughtUp >= 0);
      expect(seenAtCaughtUp).toBe(2);
      await send(1, ["b0"]);
      await send(0, ["a3"]);
      await until("the records sent after the catch-up", () => seen.length === 4);
      const started = Date.now();
      stop.abort();
      await reading;
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(seen.map((r) => [r.partition, r.offset, r.value])).toEqual(
        expect.arrayContaining([
          [0, 1n, "a1"],
          [0, 2n, "a2"],
          [1, 0n, "b0"],
          [0, 3n, "a3"],
        ]),
      );
      expect(seen.slice(0, 2).map((r) => r.value)).toEqual(["a1", "a2"]);
      // Record timestamps are the producer's clock: within a minute of the sends here.
      for (const r of seen) expect(Math.abs((r.timestampMs ?? 0) - sentAt)).toBeLessThan(60_000);
    } finally {
      await producer.close();
    }
  });

  it("finds each partition's first offset at or after a time, and its end past the last record", async () => {
    const topic = `${id}.times`;
    await admin.createTopics([{ topic, partitions: 2 }]);
    const producer = t.producer();
    const round = (n: number) =>
      producer.send(
        [0, 1].flatMap((partition) =>
          [0, 1].map((i) => ({ topic, partition, key: null, value: `${n}/${i}` })),
        ),
      );
    try {
      const before = Date.now();
      await round(0);
      // Record timestamps are the producer's clock in ms: a pause makes the second round's strictly later.
      await new Promise((r) => setTimeout(r, 50));
      const between = Date.now();
      await new Promise((r) => setTimeout(r, 50));
      await round(1);
      expect(await admin.offsetsAt(topic, before - 60_000)).toEqual(
        new Map([
          [0, 0n],
          [1, 0n],
        ]),
      );
      expect(await admin.offsetsAt(topic, between)).toEqual(
        new Map([
          [0, 2n],
          [1, 2n],
        ]),
      );
      expect(await admin.offsetsAt(topic, Date.now() + 60_000)).toEqual(
        new Map([
          [0, 4n],
          [1, 4n],
        ]),
      );
    } finally {
      await producer.close();
    }
  });

  it("hands back each record's headers as bytes, and none on records sent without", async () => {
    const topic = `${id}.headers`;
    await admin.createTopics([{ topic, partitions: 1 }]);
    const producer = t.producer();
    try {
      await producer.send([
        { topic, partition: 0, key: "a", value: "with", headers: { "fundguard-op": "upsert", 版本: "7" } },
        { topic, partition: 0, key: "b", value: "without" },
      ]);
    } finally {
      await producer.close();
    }
    const [batch] = await readAll(t, topic, new Map([[0, { from: 0n, to: "end" }]]));
    const [withHeaders, without] = batch?.records ?? [];
    expect(
      Object.fromEntries(Object.entries(withHeaders?.headers ?? {}).map(([k, v]) => [k, v.toString()])),
    ).toEqual({
      "fundguard-op": "upsert",
      版本: "7",
    });
    expect(Buffer.isBuffer(withHeaders?.headers?.["fundguard-op"])).toBe(true);
    expect(without?.headers).toBeUndefined();
  });

  it("assigns a group its partitions, delivers what was produced, and resumes a new member at the commit", async () => {
    const topic = `${id}.group`;
    const group = `${id}-group`;
    await admin.createTopics([{ topic, partitions: 2 }]);
    const producer = t.producer();
    const batch = (from: number, n: number) =>
      [0, 1].flatMap((partition) =>
        Array.from({ length: n }, (_, i) => ({
          topic,
          partition,
          key: `k${i}`,
          value: `${partition}/${from + i}`,
        })),
      );
    try {
      await producer.send(batch(0, 10));
      const a = member(t, group, topic);
      await a.started;
      await until("the first member's records", () => a.state.records.length === 20);
      expect(a.state.errors).toEqual([]);
      expect(a.state.assignments[0]?.added.map((x) => x.partition).sort()).toEqual([0, 1]);
      for (const p of [0, 1])
        expect(a.state.records.filter((r) => r.partition === p).map((r) => r.value)).toEqual(
          Array.from({ length: 10 }, (_, i) => `${p}/${i}`),
        );
      await a.consumer.heartbeat();
      await a.consumer.commit([
        { topic, partition: 0, offset: 4n },
        { topic, partition: 1, offset: 10n },
      ]);
      await a.consumer.close();
      expect(await admin.committed(group, topic)).toEqual(
        new Map([
          [0, 4n],
          [1, 10n],
        ]),
      );

      await producer.send(batch(10, 2));
      const b = member(t, group, topic);
      await b.started;
      await until("the second member's records", () => b.state.records.length === 10);
      expect(b.state.records.filter((r) => r.partition === 0).map((r) => r.offset)).toEqual([
        4n,
        5n,
        6n,
        7n,
        8n,
        9n,
        10n,
        11n,
      ]);
      expect(b.state.records.filter((r) => r.partition === 1).map((r) => r.value)).toEqual(["1/10", "1/11"]);
      await b.consumer.close();
    } finally {
      await producer.close();
      await admin.deleteGroup(group).catch(() => undefined);
    }
  });

  it("holds back a paused partition's records until it is resumed, the others flowing meanwhile", async () => {
    const topic = `${id}.pause`;
    const group = `${id}-pause`;
    await admin.createTopics([{ topic, partitions: 2 }]);
    const producer = t.producer();
    const a = member(t, group, topic);
    try {
      await a.started;
      await until("the assignment", () => a.state.owned.length === 2);
      a.consumer.pause([{ topic, partition: 0 }]);
      await producer.send(
        [0, 1].map((partition) => ({ topic, partition, key: null, value: `${partition}/0` })),
      );
      await until("partition 1's record", () => a.state.records.length === 1);
      await new Promise((r) => setTimeout(r, 1500));
      expect(a.state.records.map((r) => r.value)).toEqual(["1/0"]);
      a.consumer.resume([{ topic, partition: 0 }]);
      await until("partition 0's record", () => a.state.records.length === 2);
      expect(a.state.records.map((r) => r.value)).toEqual(["1/0", "0/0"]);
    } finally {
      await a.consumer.close();
      await producer.close();
      await admin.deleteGroup(group).catch(() => undefined);
    }
  });

  it("revokes partitions from a member when another joins, and heartbeats only in its generation", async () => {
    const topic = `${id}.rebalance`;
    const group = `${id}-rebalance`;
    await admin.createTopics([{ topic, partitions: 2 }]);
    const a = member(t, group, topic);
    await a.started;
    await until("the first assignment", () => a.state.owned.length === 2);
    await a.consumer.heartbeat();
    const b = member(t, group, topic);
    await b.started;
    try {
      await until("the hand-over", () => a.state.owned.length === 1 && b.state.owned.length === 1);
      const last = a.state.assignments.at(-1) as Assignment;
      expect(last.revoked).toHaveLength(1);
      expect(last.revoked[0]?.partition).toBe(b.state.owned[0]?.partition);
      await a.consumer.heartbeat();
      await b.consumer.heartbeat();
      await a.consumer.close();
      await expect(a.consumer.heartbeat()).rejects.toThrow();
      await until("the survivor takes both", () => b.state.owned.length === 2, SESSION_MS * 5);
    } finally {
      await b.consumer.close();
      await admin.deleteGroup(group).catch(() => undefined);
    }
  });
});

// kafkajs reads a range through a throwaway group: a member that joins it and commits must not
// make the reader skip or repeat a record when its partition comes back after the rebalances.
describe("readRange on kafkajs", () => {
  it("hands every record over once when another member joins its group, commits and leaves", async () => {
    const id = `transport-rejoin-${Date.now().toString(36)}`;
    const t = await openTransport("kafkajs", { brokers: [inject("kafkaBrokers")], clientId: id, log });
    const admin = t.admin();
    const kafka = new Kafka({ brokers: [inject("kafkaBrokers")], clientId: id, logCreator: () => () => {} });
    const groups = kafka.admin();
    const topic = `${id}.follow`;
    const producer = t.producer();
    const send = (round: number) =>
      producer.send(
        [0, 1].flatMap((partition) =>
          Array.from({ length: 5 }, (_, i) => ({
            topic,
            partition,
            key: null,
            value: `${round}/${partition}/${i}`,
          })),
        ),
      );
    const stop = new AbortController();
    const seen: string[] = [];
    let reading: Promise<void> | undefined;
    try {
      await admin.createTopics([{ topic, partitions: 2 }]);
      await send(0);
      let caughtUp = false;
      reading = (async () => {
        for await (const b of t.readRange({
          topic,
          ranges: new Map<number, { from: bigint; to: bigint | "end" }>([
            [0, { from: 0n, to: "end" }],
            [1, { from: 0n, to: "end" }],
          ]),
          follow: { signal: stop.signal, onCaughtUp: () => (caughtUp = true) },
        }))
          for (const r of b.records) seen.push(String(r.value));
      })();
      await until("the catch-up", () => caughtUp);
      await groups.connect();
      // The reader's group: a range group whose member is subscribed to this topic (others may linger).
      const ranges = (await groups.listGroups()).groups.filter((g) =>
        g.groupId.startsWith("fundguard-range-"),
      );
      const described = await groups.describeGroups(ranges.map((g) => g.groupId));
      const group = described.groups.find((g) => g.members.some((m) => m.memberMetadata.includes(topic)));
      expect(group).toBeDefined();
      // Two members share two partitions: the intruder takes one, reads it from the start and
      // commits (kafkajs's default), also the round sent while it holds it.
      const intruder = kafka.consumer({ groupId: String(group?.groupId), sessionTimeout: SESSION_MS });
      let intruded = 0;
      await intruder.connect();
      await intruder.subscribe({ topic, fromBeginning: true });
      await intruder.run({ eachMessage: async () => void intruded++ });
      await until("the intruder's partition", () => intruded >= 5);
      await send(1);
      await until("the intruder's share of the next round", () => intruded >= 10);
      await intruder.disconnect();
      await send(2);
      await until("every record", () => seen.length >= 30, 90_000);
      // Anything handed over twice would come within a fetch's wait.
      await new Promise((r) => setTimeout(r, 1_000));
      expect(seen.length).toBe(30);
      expect(new Set(seen).size).toBe(30);
    } finally {
      stop.abort();
      await reading;
      await groups.disconnect();
      await producer.close();
      await admin.close();
    }
  }, 180_000);
});
