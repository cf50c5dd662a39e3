import { describe, expect, it } from "vitest";
import { rangePlan } from "../../services/kafka/transport.ts";

const records = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => ({ offset: BigInt(from + i) }));
const offsets = (rs: { offset: bigint }[]) => rs.map((r) => Number(r.offset));

describe("a readRange's plan", () => {
  it("hands each record over once when a restarted group reads the partition again from the start", () => {
    const plan = rangePlan(
      { topic: "t", ranges: new Map([[0, { from: 5n, to: "end" }]]) },
      new Map([[0, 20n]]),
    );
    expect(offsets(plan.take(0, records(0, 10), 9n))).toEqual([5, 6, 7, 8, 9]);
    expect(plan.from.get(0)).toBe(10n);
    // The consumer crashed and restarted: it reads from 0 again (no committed offsets).
    expect(offsets(plan.take(0, records(0, 8), 7n))).toEqual([]);
    expect(plan.from.get(0)).toBe(10n);
    expect(offsets(plan.take(0, records(0, 15), 14n))).toEqual([10, 11, 12, 13, 14]);
    expect(plan.pending.has(0)).toBe(true);
    expect(offsets(plan.take(0, records(15, 25), 24n))).toEqual([15, 16, 17, 18, 19]);
    expect(plan.pending.size).toBe(0);
    expect(plan.from.has(0)).toBe(false);
    expect(offsets(plan.take(0, records(0, 25), 24n))).toEqual([]);
  });

  it("when following, hands over past `to` and tells once that every range got there", () => {
    let told = 0;
    const plan = rangePlan(
      {
        topic: "t",
        ranges: new Map([
          [0, { from: 0n, to: "end" }],
          [1, { from: 0n, to: "end" }],
        ]),
        follow: { signal: new AbortController().signal, onCaughtUp: () => told++ },
      },
      new Map([
        [0, 3n],
        [1, 0n],
      ]),
    );
    expect(offsets(plan.take(0, records(0, 5), 4n))).toEqual([0, 1, 2, 3, 4]);
    plan.reached();
    plan.reached();
    expect(told).toBe(1);
    expect(offsets(plan.take(0, records(2, 7), 6n))).toEqual([5, 6]);
    expect(offsets(plan.take(1, records(0, 2), 1n))).toEqual([0, 1]);
    expect(plan.from.get(0)).toBe(7n);
  });

  it("ignores partitions outside the ranges and ranges already read", () => {
    const plan = rangePlan({ topic: "t", ranges: new Map([[0, { from: 4n, to: 4n }]]) }, new Map([[0, 9n]]));
    expect(plan.from.size).toBe(0);
    expect(offsets(plan.take(0, records(0, 9), 8n))).toEqual([]);
    expect(offsets(plan.take(3, records(0, 9), 8n))).toEqual([]);
  });
});
