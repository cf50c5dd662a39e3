// The engine's per-person state in a compacted changelog topic, as Kafka Streams keeps its stores:
// restoring a partition reads only the latest value of each state entry, never the input history.

import type { Message } from "kafkajs";
import { personOfStateKey } from "../engine/engine.ts";
import type { KafkaTransport } from "../kafka/transport.ts";

/**
 * A partition's changed state entries as changelog messages, each person's adjacent (see
 * changelogGroup): a restore sees a person as of one flush or the next, never a settlement
 * without the findings decided with it. Keys and values are encoded into one buffer: a Buffer per
 * string costs a new 8 KiB pool every few entries, which the worker's profile showed as 13% of
 * its CPU.
 */
/** A changelog message that knows its produce group, so cutting requests decodes no key. */
type ChangelogMessage = Message & { group: string };

export function changelogMessages(partition: number, dirty: { key: string; value: unknown }[]): Message[] {
  const byPerson = new Map<string, { key: string; value: string | null }[]>();
  let bytes = 0;
  for (const { key, value } of dirty) {
    const person = personOfStateKey(key);
    let entries = byPerson.get(person);
    if (!entries) {
      entries = [];
      byPerson.set(person, entries);
    }
    const json = value === null ? null : JSON.stringify(value);
    bytes += Buffer.byteLength(key) + (json === null ? 0 : Buffer.byteLength(json));
    entries.push({ key, value: json });
  }
  const arena = Buffer.allocUnsafeSlow(bytes);
  let at = 0;
  const encode = (s: string) => {
    const start = at;
    at += arena.write(s, at);
    return arena.subarray(start, at);
  };
  const messages: ChangelogMessage[] = [];
  for (const [person, entries] of byPerson) {
    const group = `${partition}:${person}`;
    for (const e of entries)
      messages.push({
        key: encode(e.key),
        partition,
        value: e.value === null ? null : encode(e.value),
        group,
      });
  }
  return messages;
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
  /** Topic output: the suspects-topic offset of the partition before this flush's suspects (or lower). */
  suspects?: string;
}

export function markerMessage(partition: number, marker: StateMarker): Message {
  return { key: MARKER_KEY, partition, value: JSON.stringify(marker) };
}

/** The produce group of a changelog message: its partition and person (see produceRequests). */
export const changelogGroup = (m: Message): string =>
  (m as Partial<ChangelogMessage>).group ?? `${m.partition}:${personOfStateKey(String(m.key))}`;

/** Reads `partitions` of the changelog from the start to the end offsets seen now; the number of entries. */
export async function restoreFromChangelog(
  transport: KafkaTransport,
  topic: string,
  partitions: number[],
  apply: (partition: number, key: string, value: unknown) => void,
): Promise<number> {
  let restored = 0;
  const ranges = new Map(partitions.map((p) => [p, { from: 0n, to: "end" as const }]));
  for await (const b of transport.readRange({ topic, ranges })) {
    for (const r of b.records) {
      apply(b.partition, r.key?.toString() ?? "", r.value ? JSON.parse(r.value.toString()) : null);
      restored++;
    }
  }
  return restored;
}
