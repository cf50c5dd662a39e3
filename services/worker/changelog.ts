// The engine's per-person state in a compacted changelog topic, as Kafka Streams keeps its stores:
// restoring a partition reads only the latest value of each state entry, never the input history.

import { randomUUID } from "node:crypto";
import type { Kafka, Message } from "kafkajs";
import { personOfStateKey } from "../engine/engine.ts";
import { FETCH_WAIT_MS } from "../kafka/client.ts";
import { CHANGELOG_MAX_MESSAGE_BYTES } from "../kafka/topics.ts";

/**
 * A partition's changed state entries as changelog messages, each person's adjacent (see
 * changelogGroup): a restore sees a person as of one flush or the next, never a settlement
 * without the findings decided with it.
 */
export function changelogMessages(partition: number, dirty: { key: string; value: unknown }[]): Message[] {
  const byPerson = new Map<string, Message[]>();
  for (const { key, value } of dirty) {
    const person = personOfStateKey(key);
    let messages = byPerson.get(person);
    if (!messages) {
      messages = [];
      byPerson.set(person, messages);
    }
    messages.push({ key, partition, value: value === null ? null : JSON.stringify(value) });
  }
  return [...byPerson.values()].flat();
}

/**
 * A partition's commit marker: the highest row version whose effects the state written before
 * it holds. It goes after the flush's state, in the last request (requests are sent one at a
 * time), so a restored marker means every entry of its flush is in the log. Its key is no
 * person's: the engine never sees it.
 */
export const MARKER_KEY = "\u0001marker";

export interface StateMarker {
  version: number;
}

export function markerMessage(partition: number, marker: StateMarker): Message {
  return { key: MARKER_KEY, partition, value: JSON.stringify(marker) };
}

/** The produce group of a changelog message: its partition and person (see produceRequests). */
export const changelogGroup = (m: Message): string => `${m.partition}:${personOfStateKey(String(m.key))}`;

/**
 * Reads `partitions` of the changelog from the start to the end offsets seen now.
 * kafkajs has no manual assignment, so a throwaway group reads the topic and ignores other partitions.
 */
export async function restoreFromChangelog(
  kafka: Kafka,
  topic: string,
  partitions: number[],
  apply: (partition: number, key: string, value: unknown) => void,
): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    const pending = new Map<number, bigint>();
    for (const o of offsets) {
      if (partitions.includes(o.partition) && BigInt(o.high) > BigInt(o.low))
        pending.set(o.partition, BigInt(o.high));
    }
    if (pending.size === 0) return 0;
    const groupId = `fundguard-restore-${randomUUID()}`;
    const consumer = kafka.consumer({
      groupId,
      maxWaitTimeInMs: FETCH_WAIT_MS,
      maxBytesPerPartition: CHANGELOG_MAX_MESSAGE_BYTES,
      maxBytes: 4 * CHANGELOG_MAX_MESSAGE_BYTES,
    });
    let restored = 0;
    try {
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await new Promise<void>((resolve, reject) => {
        consumer
          .run({
            autoCommit: false,
            eachBatch: async ({ batch }) => {
              const end = pending.get(batch.partition);
              if (end === undefined) return;
              for (const m of batch.messages) {
                if (BigInt(m.offset) >= end) break;
                apply(
                  batch.partition,
                  m.key?.toString() ?? "",
                  m.value ? JSON.parse(m.value.toString()) : null,
                );
                restored++;
              }
              if (BigInt(batch.lastOffset()) + 1n >= end) {
                pending.delete(batch.partition);
                if (pending.size === 0) resolve();
              }
            },
          })
          .catch(reject);
      });
    } finally {
      await consumer.disconnect();
      await admin.deleteGroups([groupId]).catch(() => undefined);
    }
    return restored;
  } finally {
    await admin.disconnect();
  }
}
