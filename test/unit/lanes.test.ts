// What crosses to a lane: the values of a batch packed into one arena that moves (not copies) to the
// thread, and unpacks to the same values in the same order.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { packValues, unpackValues } from "../../services/pipeline/lane-protocol.ts";
import { laneCount, transferablesOf } from "../../services/pipeline/lanes.ts";

describe("lane batches", () => {
  it("unpack to the packed values in order, an absent value as an empty one", () => {
    const value = fc.option(fc.uint8Array({ maxLength: 64 }), { nil: null });
    fc.assert(
      fc.property(fc.array(value, { maxLength: 40 }), (values) => {
        const buffers = values.map((v) => (v ? Buffer.from(v) : null));
        const back = [...unpackValues(packValues(buffers))];
        expect(back.map((b) => [...b])).toEqual(buffers.map((b) => [...(b ?? [])]));
      }),
    );
  });

  it("move the batch's own buffers to the thread, never a shared pool's", () => {
    const values = packValues([Buffer.from("a"), Buffer.from("bc")]);
    const moved = transferablesOf({ op: "batch", partition: 0, kind: "settlement", values });
    expect(moved).toEqual([values.arena.buffer, values.ends.buffer]);
    // Buffer.from of a short string is a view into the process-wide pool: moving it would detach the pool.
    const pooled = { arena: Buffer.from("abc"), ends: new Int32Array([3]) };
    expect(pooled.arena.byteLength).toBeLessThan(pooled.arena.buffer.byteLength);
    expect(transferablesOf({ op: "batch", partition: 0, kind: "settlement", values: pooled })).toEqual([
      pooled.ends.buffer,
    ]);
  });
});

describe("lane count", () => {
  it("is what is configured (0 is inline) but never more than the partitions", () => {
    expect(laneCount(0, 6)).toBe(0);
    expect(laneCount(3, 6)).toBe(3);
    expect(laneCount(8, 6)).toBe(6);
  });

  it("defaults to at least one thread and at most one per partition", () => {
    expect(laneCount(undefined, 6)).toBeGreaterThanOrEqual(1);
    expect(laneCount(undefined, 1)).toBe(1);
  });
});
