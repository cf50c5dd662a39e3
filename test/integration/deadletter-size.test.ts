// A dead letter larger than the dead-letter topic accepts must not fail the worker's flush (a failed
// flush stops the worker, and its restart meets the same record again): it is written truncated,
// with the original's size, sha256 and source. Here the topic accepts 64 KiB per record batch.
import { createHash, randomBytes } from "node:crypto";
import kafkajs from "kafkajs";
import { afterEach, describe, expect, it } from "vitest";
import { DLQ_HEADERS } from "../../services/kafka/deadletter.ts";
import { settlement } from "../fixtures/events.ts";
import { flagged } from "../fixtures/hostile.ts";
import { canonical, run } from "../fixtures/run.ts";
import { cli, exported, killStrays } from "./harness.ts";
import { kafkaPipeline, readTopic, recordCount } from "./kafka-kit.ts";

afterEach(killStrays);

describe("dead letters larger than their topic accepts", () => {
  it("are written truncated with size, sha256 and source; the flush succeeds and good ones are detected", async () => {
    const { env, topics, kafka, serde } = await kafkaPipeline("dlqsize");
    const admin = kafka.admin();
    await admin.connect();
    const topicMax = 64 << 10;
    await admin.alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: kafkajs.ConfigResourceTypes.TOPIC,
          name: topics.deadletter,
          configEntries: [{ name: "max.message.bytes", value: String(topicMax) }],
        },
      ],
    });
    await admin.disconnect();

    const good = [
      flagged("G1"),
      settlement({
        settlement_id: "G2",
        person_id: "B",
        gender: "F",
        diagnoses: [{ code: "N40.x00", name: "前列腺增生", primary: true }],
      }),
    ];
    const expected = canonical(run(good));
    expect(expected).toHaveLength(2);
    // Each over 64 KiB: a 200 KB string (a contract violation) and 300 KB of garbage after the header
    // (a malformed varint where the first string's length belongs: random bytes could as well spell a
    // length over the limit, and the reason would change from run to run).
    const overlong = serde.encode("settlement", settlement({ institution_name: "x".repeat(200_000) }));
    const big = [overlong, Buffer.concat([overlong.subarray(0, 5), Buffer.alloc(300_000, 0xff)])];
    // And 600 small ones, about 180 KB together: more than one request's worth for this topic.
    const small = Array.from({ length: 600 }, () => randomBytes(300));
    const producer = kafka.producer();
    await producer.connect();
    for (const value of big)
      await producer.send({ topic: topics.settlements, messages: [{ key: "big", value }] });
    await producer.send({
      topic: topics.settlements,
      messages: small.map((value) => ({ key: "small", value })),
    });
    await producer.send({
      topic: topics.settlements,
      messages: good.map((g) => ({ key: g.person_id, value: serde.encode("settlement", g) })),
    });
    await producer.disconnect();

    const worker = await cli(["worker", "--until-caught-up"], env);
    expect(worker.code).toBe(0);

    const letters = await readTopic(kafka, topics.deadletter, big.length + small.length);
    expect(await recordCount(kafka, topics.deadletter)).toBe(big.length + small.length);
    const cut = letters.filter((l) => l.key === "big");
    expect(cut).toHaveLength(2);
    for (const [i, l] of cut.entries()) {
      const original = big[i] as Buffer;
      const value = l.value as Buffer;
      expect(value.length).toBeLessThan(topicMax);
      expect(value.length).toBeGreaterThan(topicMax - 4096);
      expect(original.subarray(0, value.length).equals(value)).toBe(true);
      expect(l.headers[DLQ_HEADERS.originalSize]).toBe(String(original.length));
      expect(l.headers[DLQ_HEADERS.originalSha256]).toBe(createHash("sha256").update(original).digest("hex"));
      expect(l.headers[DLQ_HEADERS.topic]).toBe(topics.settlements);
      expect(l.headers[DLQ_HEADERS.partition]).toMatch(/^\d+$/);
      expect(l.headers[DLQ_HEADERS.offset]).toMatch(/^\d+$/);
      expect(l.headers[DLQ_HEADERS.reason]).toMatch(
        i === 0 ? /^contract violation: institution_name/ : /^Avro/,
      );
    }
    const whole = letters.filter((l) => l.key === "small");
    expect(whole.every((l) => l.headers[DLQ_HEADERS.originalSize] === undefined)).toBe(true);
    expect(whole.map((l) => (l.value as Buffer).toString("hex")).sort()).toEqual(
      small.map((s) => s.toString("hex")).sort(),
    );

    expect(await exported(env)).toEqual(expected);
  }, 180_000);
});
