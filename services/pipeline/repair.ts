// Bringing the store back to a restored state. A process that stopped past its last commit may
// have written suspect rows the restored state does not hold: re-processing can interleave the
// input topics differently and never produce them again. Every row written after the commit is
// rewritten to the restored state's verdict, above all versions, so store and state agree and
// continuing gives what one uninterrupted pass gives.
import type { Suspect } from "../../schemas/index.ts";
import type { ActiveDetector, Change } from "../engine/engine.ts";
import { decodeSuspectChange } from "../kafka/serde.ts";
import type { KafkaTransport } from "../kafka/transport.ts";
import { FINAL_SETTINGS } from "../store/final.ts";
import type { Store } from "../store/index.ts";
import { SUSPECT_COLUMNS, type SuspectReadRow, suspectFromRow } from "../store/rows.ts";

/** A suspect as the store holds it now (its highest version). */
export interface WrittenSuspect {
  suspect: Suspect;
  status: "active" | "retracted";
  version: number;
  /** The input partition of its person (0 when not asked by partition). */
  partition: number;
}

export interface WrittenAfterQuery {
  runId: string;
  /** Rows whose newest version is above this... */
  after: number;
  /** ...and, if given, only those of persons on these input partitions (Kafka's murmur2 partitioner). */
  partitions?: { count: number; ids: number[] };
}

/** Suspects of a run whose newest version is above `after`: the candidates for repair. */
export async function* writtenAfter(store: Store, q: WrittenAfterQuery): AsyncIterable<WrittenSuspect> {
  // The same hash kafkajs's DefaultPartitioner keys input records with, so a row's partition
  // needs no column of its own. The subquery reads no FINAL, so the version index applies.
  const partitionOf = q.partitions ? "kafkaMurmurHash(person_id) % {n:UInt32}" : "0";
  const rows = store.stream<SuspectReadRow & { status: "active" | "retracted"; version: string; p: number }>(
    `SELECT ${SUSPECT_COLUMNS}, status, toString(version) AS version, toUInt32(${partitionOf}) AS p
     FROM suspects FINAL
     WHERE run_id = {run:String}
       AND suspect_id IN (SELECT suspect_id FROM suspects WHERE run_id = {run:String} AND version > {after:UInt64}
                          ${q.partitions ? `AND ${partitionOf} IN {ps:Array(UInt32)}` : ""})
     ${FINAL_SETTINGS}`,
    {
      run: q.runId,
      after: String(q.after),
      ...(q.partitions ? { n: q.partitions.count, ps: q.partitions.ids } : {}),
    },
  );
  for await (const r of rows) {
    yield {
      suspect: suspectFromRow(r),
      status: r.status,
      version: Number(r.version),
      partition: Number(r.p),
    };
  }
}

/** The latest change of each suspect in a suspects topic's partitions, from the given offsets to the end. */
export async function* writtenToTopic(
  transport: KafkaTransport,
  o: { topic: string; from: Map<number, string>; signal?: AbortSignal },
): AsyncIterable<WrittenSuspect> {
  const latest = new Map<string, WrittenSuspect>();
  const ranges = new Map([...o.from].map(([p, offset]) => [p, { from: BigInt(offset), to: "end" as const }]));
  for await (const b of transport.readRange({ topic: o.topic, ranges })) {
    o.signal?.throwIfAborted();
    for (const r of b.records) {
      const c = decodeSuspectChange(r);
      const seen = latest.get(c.suspect.suspect_id);
      if (seen && seen.version >= c.version) continue;
      const status = c.op === "upsert" ? "active" : "retracted";
      latest.set(c.suspect.suspect_id, {
        suspect: c.suspect,
        status,
        version: c.version,
        partition: b.partition,
      });
    }
  }
  yield* latest.values();
}

export interface Repair {
  change: Change;
  /** The input partition of the suspect's person. */
  partition: number;
}

/**
 * The changes that bring what was written after each partition's commit (`floor`) back to the
 * restored engines' state. Every written version is observed, so the repairs go above them all.
 */
export async function repairsAfter(
  written: AsyncIterable<WrittenSuspect>,
  o: {
    /** The restored state's active suspects; asked only when a repair is due. */
    active: () => Promise<Iterable<Suspect>>;
    floor: (partition: number) => number;
    detectors: ActiveDetector[];
    observe: (version: number) => void;
  },
): Promise<Repair[]> {
  const out: Repair[] = [];
  const hashOf = new Map(o.detectors.map((a) => [a.detector.id, a.configHash]));
  let active: Map<string, Change> | undefined;
  for await (const w of written) {
    o.observe(w.version);
    if (w.version <= o.floor(w.partition)) continue;
    active ??= restoredActive(await o.active(), hashOf);
    const change = repairChange(w, active, hashOf);
    if (change) out.push({ change, partition: w.partition });
  }
  return out;
}

/** The restored state's active suspects, as the upserts a repair writes. */
function restoredActive(
  suspects: Iterable<Suspect>,
  hashOf: Map<string, string | undefined>,
): Map<string, Change> {
  const active = new Map<string, Change>();
  for (const s of suspects) {
    active.set(s.suspect_id, { op: "upsert", suspect: s, configHash: hashOf.get(s.detector) });
  }
  return active;
}

/**
 * What makes a written suspect agree with the restored state: its restored copy when the state
 * holds it active, a retraction when only the store does, nothing when both say retracted.
 */
function repairChange(
  written: WrittenSuspect,
  active: ReadonlyMap<string, Change>,
  hashOf: Map<string, string | undefined>,
): Change | undefined {
  const restored = active.get(written.suspect.suspect_id);
  if (restored) return restored;
  if (written.status !== "active") return undefined;
  return { op: "retract", suspect: written.suspect, configHash: hashOf.get(written.suspect.detector) };
}
