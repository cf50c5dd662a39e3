import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { DLQ_HEADERS, deadLetterBatchBytes, deadLetterMessage } from "../../services/kafka/deadletter.ts";
import { DEFAULT_BATCH_BYTES } from "../../services/kafka/produce.ts";

const letter = (key: Buffer | null, value: Buffer | null, reason = "contract violation: x") => ({
  topic: "p.settlements.v1",
  partition: 2,
  offset: "41",
  key,
  value,
  reason,
});
const sizeOf = (m: ReturnType<typeof deadLetterMessage>) =>
  ((m.key as Buffer | null)?.length ?? 0) +
  ((m.value as Buffer | null)?.length ?? 0) +
  Object.entries(m.headers ?? {}).reduce((n, [k, v]) => n + k.length + Buffer.byteLength(String(v)), 0);
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const now = new Date("2026-01-01T00:00:00Z");

describe("dead letters", () => {
  it("keep a letter that fits whole, with its source and reason", () => {
    const value = randomBytes(5_000);
    const m = deadLetterMessage(letter(Buffer.from("P1"), value), { maxBytes: 1 << 20, now });
    expect(m.value).toBe(value);
    expect(m.headers).toEqual({
      [DLQ_HEADERS.reason]: "contract violation: x",
      [DLQ_HEADERS.topic]: "p.settlements.v1",
      [DLQ_HEADERS.partition]: "2",
      [DLQ_HEADERS.offset]: "41",
      [DLQ_HEADERS.at]: "2026-01-01T00:00:00.000Z",
    });
    expect(deadLetterMessage(letter(null, null), { now }).value).toBeNull();
  });

  it.each([
    ["a value", Buffer.from("P1"), 3 << 20, 1 << 20],
    ["a value and a key", randomBytes(2 << 20), 2 << 20, 1 << 20],
    ["a value for a small topic", Buffer.from("P1"), 100_000, 32 << 10],
  ])("cut %s larger than the topic accepts, with the original's size and sha256", (_name, key, size, max) => {
    const value = randomBytes(size);
    const m = deadLetterMessage(letter(key, value), { maxBytes: max, now });
    expect(sizeOf(m)).toBeLessThanOrEqual(max - 1024);
    expect(sizeOf(m)).toBeGreaterThan(max - 4096);
    const kept = m.value as Buffer;
    expect(value.subarray(0, kept.length).equals(kept)).toBe(true);
    expect(m.headers?.[DLQ_HEADERS.originalSize]).toBe(String(size));
    expect(m.headers?.[DLQ_HEADERS.originalSha256]).toBe(sha256(value));
    expect(m.headers?.[DLQ_HEADERS.offset]).toBe("41");
    expect(m.headers?.[DLQ_HEADERS.partition]).toBe("2");
    expect(m.headers?.[DLQ_HEADERS.topic]).toBe("p.settlements.v1");
    if (key.length > 1024) {
      expect((m.key as Buffer).equals(key.subarray(0, 1024))).toBe(true);
      expect(m.headers?.[DLQ_HEADERS.originalKeySize]).toBe(String(key.length));
    } else {
      expect(m.key).toBe(key);
      expect(m.headers?.[DLQ_HEADERS.originalKeySize]).toBeUndefined();
    }
  });

  it("bound a pathological reason", () => {
    const m = deadLetterMessage(letter(null, null, "y".repeat(100_000)), { now });
    expect(String(m.headers?.[DLQ_HEADERS.reason]).length).toBe(2_001);
  });

  it("are sent in requests that fit the topic", () => {
    expect(deadLetterBatchBytes(32 << 10)).toBe((32 << 10) - 1024);
    expect(deadLetterBatchBytes(16 << 20)).toBe(DEFAULT_BATCH_BYTES);
  });
});
