// Dead letters keep the original bytes and say why and where from, so nothing bad is lost or silently dropped.
import type { Message } from "kafkajs";

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
} as const;

export function deadLetterMessage(d: DeadLetter, now = new Date()): Message {
  return {
    key: d.key,
    value: d.value,
    headers: {
      [DLQ_HEADERS.reason]: d.reason,
      [DLQ_HEADERS.topic]: d.topic,
      [DLQ_HEADERS.partition]: String(d.partition),
      [DLQ_HEADERS.offset]: d.offset,
      [DLQ_HEADERS.at]: now.toISOString(),
    },
  };
}
