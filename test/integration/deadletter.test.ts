import { randomBytes } from "node:crypto";
import { Kafka, logLevel } from "kafkajs";
import { describe, expect, it } from "vitest";
import { DLQ_HEADERS } from "../../services/kafka/deadletter.ts";
import { AvroSerde } from "../../services/kafka/serde.ts";
import { topicNames } from "../../services/kafka/topics.ts";
import { death, line, settlement } from "../fixtures/events.ts";
import { keys, run } from "../fixtures/run.ts";
import { cli, pipelineEnv } from "./harness.ts";

describe("dead letters", () => {
  it("10k mixed bad messages are all dead-lettered with a reason; the good ones are detected", async () => {
    const env = pipelineEnv("dlq");
    await cli(["topics", "create"], env);
    const topics = topicNames(env.FUNDGUARD_TOPIC_PREFIX);
    const kafka = new Kafka({ brokers: [env.KAFKA_BROKERS as string], logLevel: logLevel.NOTHING });
    const serde = new AvroSerde(env.SCHEMA_REGISTRY_URL as string, topics);
    await serde.register();

    const good = [
      settlement({
        settlement_id: "G1",
        person_id: "A",
        birth_date: "1990-01-01",
        items: [line({ item_code: "ZA06CAE0020010101748", category: "DRUG" })],
      }),
      settlement({ settlement_id: "G2", person_id: "B", settled_at: "2025-03-01T09:00:00+08:00" }),
      settlement({ settlement_id: "G3", person_id: "B", settled_at: "2025-03-02T09:00:00+08:00" }),
      settlement({ settlement_id: "G4", person_id: "C", admission_date: "2025-05-02" }),
    ];
    const deaths = [death("2025-05-01", { person_id: "C" })];
    const expected = keys(run([...good, ...deaths]));
    expect(expected.length).toBeGreaterThanOrEqual(3);

    const invalidSettlement = serde.encode("settlement", { ...settlement(), birth_date: "1990-13-45" });
    const unknownId = Buffer.concat([
      Buffer.from([0, 0x7f, 0xff, 0xff, 0x01]),
      serde.encode("death", deaths[0] as never).subarray(5),
    ]);
    const bad = Array.from({ length: 10_000 }, (_, i) => {
      const kind = i % 4;
      const value =
        kind === 0
          ? randomBytes(1 + (i % 200)) // no magic byte, or garbage after it
          : kind === 1
            ? unknownId
            : kind === 2
              ? invalidSettlement
              : Buffer.concat([
                  Buffer.from([0]),
                  serde.encode("settlement", good[0] as never).subarray(1, 5),
                  randomBytes(20),
                ]);
      return { key: `bad-${i % 97}`, value };
    });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: topics.settlements, messages: bad.slice(0, 5_000) });
    await producer.send({
      topic: topics.settlements,
      messages: good.map((g) => ({ key: g.person_id, value: serde.encode("settlement", g) })),
    });
    await producer.send({ topic: topics.settlements, messages: bad.slice(5_000, 9_000) });
    await producer.send({ topic: topics.deaths, messages: bad.slice(9_000) });
    await producer.send({
      topic: topics.deaths,
      messages: deaths.map((d) => ({ key: d.person_id, value: serde.encode("death", d) })),
    });
    await producer.disconnect();

    await cli(["worker", "--until-caught-up"], env);

    const letters = await readAll(kafka, topics.deadletter, 10_000);
    expect(letters).toHaveLength(10_000);
    const reasons = new Map<string, number>();
    for (const m of letters) {
      const reason = m.headers[DLQ_HEADERS.reason] ?? "";
      expect(reason).not.toBe("");
      expect(m.headers[DLQ_HEADERS.topic]).toMatch(/settlements\.v1|deaths\.v1/);
      expect(m.headers[DLQ_HEADERS.offset]).toMatch(/^\d+$/);
      const category = reason.replace(/[:\d].*$/, "").trim();
      reasons.set(category, (reasons.get(category) ?? 0) + 1);
    }
    expect([...reasons.keys()].sort()).toEqual(
      expect.arrayContaining([
        "Avro decode failed with schema id",
        "contract violation",
        "not Confluent wire format",
        "unknown schema id",
      ]),
    );

    await cli(["sink", "--until-caught-up"], env);
    const exported = (await cli(["export"], env)).stdout
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(keys(exported)).toEqual(expected);
  });
});

async function readAll(kafka: Kafka, topic: string, count: number) {
  const consumer = kafka.consumer({ groupId: `read-${Date.now()}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const out: { headers: Record<string, string> }[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`only ${out.length} of ${count} messages on ${topic}`)),
      60_000,
    );
    consumer
      .run({
        eachMessage: async ({ message }) => {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
          out.push({ headers });
          if (out.length >= count) {
            clearTimeout(timer);
            resolve();
          }
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  return out;
}
