import { describe, expect, it } from "vitest";
import { InProcessLog } from "../../services/embedded/log.ts";

describe("in-process log", () => {
  it("keeps a key in one partition, in append order, with Kafka's murmur2 partitioning", () => {
    const log = new InProcessLog<string>("t", 6);
    const placed = ["a", "b", "a", "c", "a"].map((k, i) => [k, ...log.append(k, `${k}${i}`)] as const);
    const partitionsOfA = new Set(placed.filter(([k]) => k === "a").map(([, p]) => p));
    expect(partitionsOfA.size).toBe(1);
    const [p] = [...partitionsOfA];
    expect(log.read(p as number, 0, 10).filter((v) => v.startsWith("a"))).toEqual(["a0", "a2", "a4"]);
    // The Java client's murmur2 (Utils.toPositive(Utils.murmur2(key)) % 6, run against kafka-clients 4.3.1)
    // puts these keys in these partitions: co-partitioning with topics fed by Java producers holds.
    expect(p).toBe(4);
    expect(["b", "P0000123", "参保人"].map((k) => log.append(k, k)[0])).toEqual([2, 1, 3]);
  });

  it("resumes a group from its committed offset and reports lag", () => {
    const log = new InProcessLog<number>("t", 2);
    for (let i = 0; i < 10; i++) log.append(`k${i}`, i);
    expect(log.lag("g")).toBe(10);
    const first = log.read(0, log.committedOffset("g", 0), 2);
    log.commit("g", 0, first.length);
    expect(log.lag("g")).toBe(10 - first.length);
    expect(log.read(0, log.committedOffset("g", 0), 100)).toEqual(log.read(0, first.length, 100));
  });
});
