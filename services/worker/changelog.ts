// The engine's per-person state in a compacted changelog topic, as Kafka Streams keeps its stores:
// restoring a partition reads only the latest value of each state entry, never the input history.

import { personOfStateKey } from "../engine/engine.ts";
import type { OutMessage } from "../kafka/produce.ts";
import type { KafkaTransport } from "../kafka/transport.ts";

/**
 * A partition's changed state entries, encoded for the changelog with each person's adjacent (see
 * changelogGroup): a restore sees a person as of one flush or the next, never a settlement
 * without the findings decided with it. Keys and values share one buffer, so a lane thread hands
 * a flush's state over as one transfer, and no Buffer per string is made (a new 8 KiB pool every
 * few entries, 13% of the worker's CPU in its profile).
 */
export interface EncodedState extends EntryArena {
  partition: number;
  /** Each entry's person, the produce group that keeps it with the rest of the person's. */
  persons: string[];
}

/**
 * Key-value entries in one buffer: entry i's key is bytes [end of entry i-1, keyEnds[i]), its value
 * [keyEnds[i], valueEnds[i]), or null when valueEnds[i] is -1.
 */
export interface EntryArena {
  arena: Uint8Array;
  keyEnds: Int32Array;
  valueEnds: Int32Array;
}

/** Entries (as read from the changelog) copied into one arena, to hand to a lane in one transfer. */
export function packEntries(entries: readonly { key: Buffer | null; value: Buffer | null }[]): EntryArena {
  let bytes = 0;
  for (const e of entries) bytes += (e.key?.length ?? 0) + (e.value?.length ?? 0);
  const arena = Buffer.allocUnsafeSlow(bytes);
  const keyEnds = new Int32Array(entries.length);
  const valueEnds = new Int32Array(entries.length);
  let at = 0;
  entries.forEach((e, i) => {
    if (e.key) at += e.key.copy(arena, at);
    keyEnds[i] = at;
    if (e.value) {
      at += e.value.copy(arena, at);
      valueEnds[i] = at;
    } else valueEnds[i] = -1;
  });
  return { arena, keyEnds, valueEnds };
}

/** Calls `fn` with each entry's key and value as views of the arena. */
export function forEachEntry(a: EntryArena, fn: (key: Buffer, value: Buffer | null) => void): void {
  const arena = Buffer.from(a.arena.buffer, a.arena.byteOffset, a.arena.byteLength);
  let at = 0;
  for (let i = 0; i < a.keyEnds.length; i++) {
    const keyEnd = a.keyEnds[i] as number;
    const valueEnd = a.valueEnds[i] as number;
    fn(arena.subarray(at, keyEnd), valueEnd < 0 ? null : arena.subarray(keyEnd, valueEnd));
    at = valueEnd < 0 ? keyEnd : valueEnd;
  }
}

export function encodeState(partition: number, dirty: { key: string; value: unknown }[]): EncodedState {
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
  const keyEnds = new Int32Array(dirty.length);
  const valueEnds = new Int32Array(dirty.length);
  const persons: string[] = [];
  let at = 0;
  let i = 0;
  for (const [person, entries] of byPerson) {
    for (const e of entries) {
      at += arena.write(e.key, at);
      keyEnds[i] = at;
      if (e.value === null) valueEnds[i] = -1;
      else {
        at += arena.write(e.value, at);
        valueEnds[i] = at;
      }
      persons.push(person);
      i++;
    }
  }
  return { partition, arena, keyEnds, valueEnds, persons };
}

/** A changelog message that knows its produce group, so cutting requests decodes no key. */
type ChangelogMessage = OutMessage & { group: string };

/** Encoded state as changelog messages: views of its arena, no copies. */
export function stateMessages(s: EncodedState): OutMessage[] {
  const messages: ChangelogMessage[] = [];
  forEachEntry(s, (key, value) => {
    messages.push({
      key,
      partition: s.partition,
      value,
      group: `${s.partition}:${s.persons[messages.length]}`,
    });
  });
  return messages;
}

export const changelogMessages = (
  partition: number,
  dirty: { key: string; value: unknown }[],
): OutMessage[] => stateMessages(encodeState(partition, dirty));

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
  /** A worker with a local store: the id of the store's commit that holds the state this marker ends. */
  commit?: string;
}

export function markerMessage(partition: number, marker: StateMarker): OutMessage {
  return { key: MARKER_KEY, partition, value: JSON.stringify(marker) };
}

/** The produce group of a changelog message: its partition and person (see produceRequests). */
export const changelogGroup = (m: OutMessage): string =>
  (m as Partial<ChangelogMessage>).group ?? `${m.partition}:${personOfStateKey(String(m.key))}`;

/**
 * Reads `partitions` of the changelog from `from` (default: the start) to the end offsets seen now,
 * a fetched batch (one partition's records, raw) at a time; the number of records.
 */
export async function restoreFromChangelog(
  transport: KafkaTransport,
  topic: string,
  partitions: number[],
  apply: (partition: number, records: { key: Buffer | null; value: Buffer | null }[]) => Promise<void>,
  from: ReadonlyMap<number, bigint> = new Map(),
): Promise<number> {
  let restored = 0;
  const ranges = new Map(partitions.map((p) => [p, { from: from.get(p) ?? 0n, to: "end" as const }]));
  for await (const b of transport.readRange({ topic, ranges })) {
    await apply(b.partition, b.records);
    restored += b.records.length;
  }
  return restored;
}

/** Whether a changelog key is a commit marker's (no person's entry). */
export const isMarkerKey = (key: Buffer | null): boolean =>
  key !== null && key.length === MARKER_BYTES.length && key.equals(MARKER_BYTES);
const MARKER_BYTES = Buffer.from(MARKER_KEY);
