import fc from "fast-check";
import { Partitioners } from "kafkajs";
import { describe, expect, it } from "vitest";
import { keyPartition } from "../../services/kafka/partition.ts";

describe("keyPartition", () => {
  it("places keys where the Java client does", () => {
    // Utils.toPositive(Utils.murmur2(key)) % 6, run against kafka-clients 4.3.1.
    const java: [string, number][] = [
      ["a", 4],
      ["b", 2],
      ["P0000123", 1],
      ["参保人", 3],
    ];
    for (const [key, p] of java) expect(keyPartition(Buffer.from(key), 6), key).toBe(p);
  });

  it("agrees with kafkajs's DefaultPartitioner on any key and partition count", () => {
    const kafkajs = Partitioners.DefaultPartitioner();
    fc.assert(
      fc.property(
        fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 64 }),
        (key, n) => {
          const partitionMetadata = Array.from({ length: n }, (_, partitionId) => ({
            partitionId,
            leader: 0,
            partitionErrorCode: 0,
            replicas: [0],
            isr: [0],
          }));
          const expected = kafkajs({ topic: "t", partitionMetadata, message: { key, value: null } });
          expect(keyPartition(Buffer.from(key), n)).toBe(expected);
        },
      ),
    );
  });
});
