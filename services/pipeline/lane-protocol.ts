// What a main thread (the worker's, detect's) asks of a lane (the engines of some partitions, in a
// worker thread or inline) and what the lane answers. Main does the I/O; a lane decodes, validates,
// detects and encodes the changelog. A lane handles requests one at a time in the order they were
// sent, so a flush's state request comes after every batch sent before it.
import type { Limits, Settlement, Suspect } from "../../schemas/index.ts";
import type { ConfigRecord } from "../dynamic-config/topic.ts";
import type { CheckAnswer } from "../engine/check.ts";
import type { Change, EngineEvent, EngineStats } from "../engine/engine.ts";
import type { Dependency } from "../health.ts";
import type { InputKind, SubjectTopics } from "../kafka/serde.ts";
import type { BackoffPolicy } from "../retry.ts";
import type { EncodedState, EntryArena, StateMarker } from "../worker/changelog.ts";

/** The detectors a lane runs: the registry's, with this catalog folder and these effective configs. */
export interface DetectorSetup {
  /** The registered detectors to run, by id (default: all of them). */
  ids?: string[];
  reference?: string;
  /** Detector id → its effective config (defaults filled in); absent ids run on their defaults. */
  configs?: Record<string, unknown>;
}

/** Engine state on local disk (LMDB) instead of the heap. */
export interface LocalState {
  /** The directory of this worker's partitions' stores (one per partition below it). */
  dir: string;
  /** Persons each partition's store keeps as live objects. */
  cachePersons: number;
}

/**
 * Where a partition's local store stands against its changelog: the store's commit `seq` holds the
 * state the changelog holds up to `end` (its last marker `marker`), as confirmed at `atMs`.
 */
export interface LocalCheckpoint {
  seq: number;
  end: string;
  marker: StateMarker;
  atMs: number;
  /**
   * From `open`: the store's own last commit (`seq` or a later one whose confirmation had not come
   * back). The resume holds only if the changelog read from `end` ends at a marker of this commit.
   */
  stored?: string;
}

/** What a lane needs to decode Kafka's Avro values (a lane fed NDJSON lines never loads avsc). */
export interface AvroSetup {
  registryUrl: string;
  topics: SubjectTopics;
  schemaWaitMs?: number;
  /** How an unreachable registry is waited out (the process's backoff). */
  backoff: BackoffPolicy;
}

export interface LaneSetup {
  avro?: AvroSetup;
  limits?: Limits;
  detectors: DetectorSetup;
  retentionDays?: number;
  /** EngineOptions.latenessDays (default: the retention). */
  latenessDays?: number;
  /** Engines record their changed state for `state` requests (a changelog or local store drains it). */
  changelog: boolean;
  /** Batches answer with the suspect changes they caused (`detect` asks for the active suspects at the end instead). */
  changes: boolean;
  /** Where the engines keep their persons (default: the heap). */
  state?: LocalState;
}

/** Kafka values in one buffer: record i is bytes [ends[i-1] or 0, ends[i]); a null value is empty. */
export interface RecordArena {
  arena: Uint8Array;
  ends: Int32Array;
}

/** Kafka values copied into one arena, to hand to a lane in one transfer. */
export function packValues(values: readonly (Buffer | null)[]): RecordArena {
  let bytes = 0;
  for (const v of values) bytes += v?.length ?? 0;
  const arena = Buffer.allocUnsafeSlow(bytes);
  const ends = new Int32Array(values.length);
  let at = 0;
  values.forEach((v, i) => {
    if (v) at += v.copy(arena, at);
    ends[i] = at;
  });
  return { arena, ends };
}

/** A line's place in its file and its kind, in one number: the line number × 2, plus 1 for a death record. */
export const encodeLineMeta = (line: number, kind: InputKind) => line * 2 + (kind === "death" ? 1 : 0);
export const lineMetaKind = (meta: number): InputKind => (meta % 2 === 1 ? "death" : "settlement");
export const lineMetaLine = (meta: number) => Math.floor(meta / 2);

/** The values of an arena, in order, as views into it. */
export function* unpackValues(r: RecordArena): Generator<Buffer> {
  const bytes = Buffer.from(r.arena.buffer, r.arena.byteOffset, r.arena.byteLength);
  for (let i = 0; i < r.ends.length; i++) yield bytes.subarray(i === 0 ? 0 : r.ends[i - 1], r.ends[i]);
}

export type LaneRequest =
  /** Engines for these partitions (replacing any), empty or resumed from their local stores (see ResumePolicy). */
  | { op: "open"; partitions: number[]; resume?: ResumePolicy }
  /**
   * Commits every partition's store with the state of every batch sent before, and `note` (what
   * the caller knows that state holds: `start`'s archive time); `open` with the `committed` policy
   * carries on from a store clean at such a commit and answers its note.
   */
  | { op: "commit"; note: unknown }
  /** The changelog has a state commit: the partition's store may resume from it. */
  | { op: "checkpointed"; partition: number; checkpoint: LocalCheckpoint }
  | { op: "restore"; partition: number; entries: EntryArena }
  | { op: "drop"; partitions: number[] }
  | { op: "batch"; partition: number; kind: InputKind; values: RecordArena }
  /**
   * Events decoded and validated already (a run's merge of files): inline they cost nothing to hand
   * over; to a thread they are cloned.
   */
  | { op: "events"; partition: number; events: EngineEvent[] }
  /** NDJSON lines (UTF-8, no newline), each with its line meta (encodeLineMeta): blank ones are skipped. */
  | { op: "lines"; partition: number; lines: RecordArena; meta: Float64Array }
  /** Every partition's state changed since the last state request, encoded for the changelog. */
  | { op: "state" }
  /** The same as objects (a run's checkpoint file writes them as JSON itself). */
  | { op: "dirty" }
  | { op: "active"; partitions: number[] }
  /** What processing the settlement would find, on the partition's engine as it stands (nothing changes). */
  | { op: "check"; partition: number; settlement: Settlement }
  | { op: "config"; record: ConfigRecord }
  /** Closes the partitions' stores: the last request. */
  | { op: "close" };

export interface BatchResult {
  /** In the order the engine decided them; main gives them their versions. Empty without `changes`. */
  changes: Change[];
  /** Events the engine processed (valid ones). */
  events: number;
  /** Records that failed decoding or validation: their index in the batch and why. */
  bad: { index: number; reason: string }[];
  /** Events older than the retention behind the newest event, in this batch. */
  tooLate: number;
  /** Persons held by this lane after the batch. */
  persons: number;
}

export interface StateResult {
  states: EncodedState[];
  /** The local stores' commits of this state, by partition (none without local state). */
  commits: { partition: number; seq: number; id: string }[];
  persons: number;
}

/** The partitions' active suspects, and their engines' counts. */
export interface ActiveResult {
  suspects: Suspect[];
  stats: EngineStats;
}

/** Each partition's changed state entries as objects, and its engine's counts. */
export interface DirtyResult {
  dirty: { partition: number; entries: { key: string; value: unknown }[]; stats: EngineStats }[];
}

/**
 * How a partition's local store may carry on. `changelog` (workers): where a checkpoint confirmed
 * by the changelog within `withinMs` says where the changelog is read on from; it answers that
 * checkpoint. `committed` (start): where the store is clean at a commit with a note; it answers the
 * note. Otherwise (and with no policy) the store is emptied and the answer is null.
 */
export type ResumePolicy = { from: "changelog"; withinMs: number } | { from: "committed" };

export interface OpenResult {
  /** Per partition opened, in order: what its store resumed from (see ResumePolicy), or null. */
  resumed: unknown[];
}

export type LaneResult =
  | BatchResult
  | StateResult
  | DirtyResult
  | OpenResult
  | ActiveResult
  | CheckAnswer
  | Record<string, never>;

/** A lane's registry wait, forwarded to the process's Health. */
export type OutageNote =
  | { outage: "failing"; dependency: Dependency; reason: string; attempt: number; delayMs: number }
  | { outage: "recovered"; dependency: Dependency };

export type FromLane =
  | { id: number; ok: true; result: LaneResult }
  | { id: number; ok: false; error: string }
  | OutageNote;
