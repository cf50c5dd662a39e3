// Taking over partitions: their state from the changelog into the lanes given them, then the
// suspects written after each partition's last marker (by a process that stopped before its flush
// was committed) rewritten to the restored state.
import type { ActiveDetector } from "../engine/engine.ts";
import type { Health } from "../health.ts";
import { sendRequest } from "../kafka/produce.ts";
import type { KafkaTransport, TransportAdmin, TransportProducer } from "../kafka/transport.ts";
import type { Logger } from "../log.ts";
import type { LocalCheckpoint } from "../pipeline/lane-protocol.ts";
import type { Lane } from "../pipeline/lanes.ts";
import { type Repair, repairsAfter, writtenAfter, writtenToTopic } from "../pipeline/repair.ts";
import type { VersionClock } from "../pipeline/version-clock.ts";
import { LIVE_RUN } from "../store/index.ts";
import {
  isMarkerKey,
  markerMessage,
  packEntries,
  restoreFromChangelog,
  type StateMarker,
} from "./changelog.ts";
import type { TaskOutput } from "./flush.ts";

export interface RestoreContext {
  transport: KafkaTransport;
  admin: TransportAdmin;
  producer: TransportProducer;
  health: Health;
  log: Logger;
  changelogTopic: string;
  suspectsTopic: string;
  /** The input topics' partition count. */
  partitions: number;
  output: TaskOutput;
  detectors: ActiveDetector[];
  clock: VersionClock;
  signal: AbortSignal;
}

export interface Restored {
  /** Each restored partition's last marker (a partition new to the group gets its first here). */
  markers: Map<number, StateMarker>;
  /** Changelog records read. */
  records: number;
}

/**
 * Reads the partitions' changelog into their (opened) lanes, from the start or, for a lane that
 * resumed a partition from its local store, from the checkpoint's end on; every marker's version
 * is observed.
 */
export async function restoreState(
  c: RestoreContext,
  fresh: Map<number, Lane>,
  resumed: ReadonlyMap<number, LocalCheckpoint>,
): Promise<Restored> {
  const missing = [...fresh.keys()];
  const markers = new Map<number, StateMarker>([...resumed].map(([p, at]) => [p, at.marker]));
  const logged = new Set<number>(resumed.keys());
  const from = new Map([...resumed].map(([p, at]) => [p, BigInt(at.end)]));
  /** Restore chunks the lanes have not applied yet: the read waits for them past a few. */
  const applying: Promise<void>[] = [];
  const records = await restoreFromChangelog(
    c.transport,
    c.changelogTopic,
    missing,
    async (p, rs) => {
      const entries = [];
      for (const r of rs) {
        if (isMarkerKey(r.key)) markers.set(p, JSON.parse(String(r.value)) as StateMarker);
        else entries.push(r);
      }
      if (entries.length === 0) return;
      logged.add(p);
      applying.push((fresh.get(p) as Lane).restore(p, packEntries(entries)));
      if (applying.length > 8) await applying.shift();
    },
    from,
  );
  await Promise.all(applying);
  for (const m of markers.values()) c.clock.observe(m.version);
  // A partition new to the group gets its first marker before anything is written for it, so a
  // later restore can tell "everything since the start" from a log older than markers.
  const first = missing.filter((p) => !logged.has(p) && !markers.has(p));
  if (first.length > 0) {
    const ends =
      c.output.kind === "topic"
        ? new Map([...(await c.admin.endOffsets(c.suspectsTopic))].map(([p, end]) => [p, String(end)]))
        : new Map<number, string>();
    const initial = new Map(first.map((p) => [p, { version: 0, suspects: ends.get(p) }]));
    await c.health.retry(
      "broker",
      () =>
        sendRequest(c.producer, {
          topic: c.changelogTopic,
          messages: [...initial].map(([p, m]) => markerMessage(p, m)),
        }),
      { signal: c.signal },
    );
    for (const [p, m] of initial) markers.set(p, m);
  }
  return { markers, records };
}

/**
 * The changes that rewrite what was written for the restored partitions after their markers to
 * the restored state; the caller gives them versions and writes them through its outbox.
 */
export async function repairsFor(
  c: RestoreContext,
  fresh: Map<number, Lane>,
  markers: Map<number, StateMarker>,
): Promise<Repair[]> {
  // A log written before markers existed says nothing about what was written after it.
  const unmarked = [...fresh.keys()].filter((p) => !markers.has(p));
  if (unmarked.length > 0)
    c.log.warn({ partitions: unmarked }, "changelog without a marker: store not repaired");
  const ids = [...fresh.keys()].filter((p) => markers.has(p));
  if (ids.length === 0) return [];
  const floor = (p: number) => markers.get(p)?.version ?? 0;
  const t0 = Date.now();
  const written = () =>
    c.output.kind === "store"
      ? writtenAfter(c.output.store, {
          runId: LIVE_RUN,
          after: Math.min(...ids.map(floor)),
          partitions: { count: c.partitions, ids },
        })
      : writtenToTopic(c.transport, {
          topic: c.suspectsTopic,
          from: new Map(ids.map((p) => [p, markers.get(p)?.suspects ?? "0"])),
          signal: c.signal,
        });
  const repairs = await c.health.retry(
    c.output.kind === "store" ? "store" : "broker",
    () =>
      repairsAfter(written(), {
        active: async () => {
          const byLane = new Map<Lane, number[]>();
          for (const p of ids) {
            const lane = fresh.get(p) as Lane;
            byLane.set(lane, [...(byLane.get(lane) ?? []), p]);
          }
          return (
            await Promise.all([...byLane].map(async ([lane, ps]) => (await lane.active(ps)).suspects))
          ).flat();
        },
        floor,
        detectors: c.detectors,
        observe: (v) => c.clock.observe(v),
      }),
    { signal: c.signal },
  );
  const retracted = repairs.filter((r) => r.change.op === "retract").length;
  c.log.info(
    { partitions: ids, rewritten: repairs.length - retracted, retracted, ms: Date.now() - t0 },
    "store repaired",
  );
  return repairs;
}
