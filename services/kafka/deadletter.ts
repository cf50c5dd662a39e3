// Dead letters keep the original bytes and say why and where from, so nothing bad is lost or silently dropped.
// A letter must also fit the dead-letter topic: one the broker refused would fail the worker's flush,
// and the restart would meet the same record again. A letter that would not fit keeps the head of
// the original, with its size and sha256 beside the source topic, partition and offset.
import { createHash } from "node:crypto";
import { DEFAULT_BATCH_BYTES, type OutMessage } from "./produce.ts";
import { DEADLETTER_MAX_MESSAGE_BYTES } from "./topics.ts";

export interface DeadLetter {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  reason: string;
}

export const DLQ_HEADERS = {
  reason: "fundguard-reason",
  topic: "fundguard-source-topic",
  partition: "fundguard-source-partition",
  offset: "fundguard-source-offset",
  at: "fundguard-failed-at",
  /** Set on a truncated letter: the original value's size in bytes and its sha256 (hex). */
  originalSize: "fundguard-original-size",
  originalSha256: "fundguard-original-sha256",
  /** Set when the key was truncated too: its original size. */
  originalKeySize: "fundguard-original-key-size",
} as const;

/** Room kept in a record batch for its framing and the record's own, beyond key, value and headers. */
const FRAMING_BYTES = 1024;
/** A truncated letter keeps at most this much of its key (keys route, they do not explain). */
const KEPT_KEY_BYTES = 1024;
/** Reasons are ours and short; this only bounds a pathological one. */
const MAX_REASON_CHARS = 2000;

export interface LetterOptions {
  /** The dead-letter topic's max.message.bytes. */
  maxBytes?: number;
  now?: Date;
}

const headerBytes = (h: Record<string, string>) =>
  Object.entries(h).reduce((n, [k, v]) => n + k.length + Buffer.byteLength(v), 0);

export function deadLetterMessage(d: DeadLetter, o: LetterOptions = {}): OutMessage {
  const reason = d.reason.length > MAX_REASON_CHARS ? `${d.reason.slice(0, MAX_REASON_CHARS)}…` : d.reason;
  const headers: Record<string, string> = {
    [DLQ_HEADERS.reason]: reason,
    [DLQ_HEADERS.topic]: d.topic,
    [DLQ_HEADERS.partition]: String(d.partition),
    [DLQ_HEADERS.offset]: d.offset,
    [DLQ_HEADERS.at]: (o.now ?? new Date()).toISOString(),
  };
  const room = (o.maxBytes ?? DEADLETTER_MAX_MESSAGE_BYTES) - FRAMING_BYTES;
  const keyBytes = d.key?.length ?? 0;
  const value = d.value ?? Buffer.alloc(0);
  if (keyBytes + value.length + headerBytes(headers) <= room) return { key: d.key, value: d.value, headers };

  headers[DLQ_HEADERS.originalSize] = String(value.length);
  headers[DLQ_HEADERS.originalSha256] = createHash("sha256").update(value).digest("hex");
  let key = d.key;
  if (key && keyBytes > KEPT_KEY_BYTES) {
    headers[DLQ_HEADERS.originalKeySize] = String(keyBytes);
    key = key.subarray(0, KEPT_KEY_BYTES);
  }
  const kept = Math.max(0, room - (key?.length ?? 0) - headerBytes(headers));
  return { key, value: value.subarray(0, kept), headers };
}

/** produceRequests' per-request budget for dead letters, so a batch of them fits the topic too. */
export const deadLetterBatchBytes = (maxBytes: number): number =>
  Math.min(DEFAULT_BATCH_BYTES, maxBytes - FRAMING_BYTES);
