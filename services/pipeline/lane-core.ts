// A lane: the engines of the partitions main gave it, and the decoding, validation and changelog
// encoding around them. The same code runs in a worker thread (lane-thread.ts) or on main
// (lanes.ts, inline); it does no I/O but the registry lookups of the Avro decoder. What only some
// lanes need (avsc and the registry client, LMDB) is loaded on first use, so `detect`'s lanes,
// fed NDJSON lines, start without them.
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { DETECTORS, loadCatalogs } from "../../detectors/index.ts";
import type { Suspect } from "../../schemas/index.ts";
import { applyConfigRecord } from "../dynamic-config/apply.ts";
import { requireDetector } from "../dynamic-config/validate.ts";
import { checkOnEngine } from "../engine/check.ts";
import {
  type ActiveDetector,
  activate,
  addStats,
  type Change,
  Engine,
  type EngineEvent,
  emptyStats,
} from "../engine/engine.ts";
import type { OutageListener } from "../health.ts";
import { parseEventLine } from "../ingest/ndjson-source.ts";
import { type Validators, validators } from "../ingest/validate.ts";
import type { AvroSerde, InputKind } from "../kafka/serde.ts";
import { createLogger } from "../log.ts";
import type { LmdbPersonStore } from "../state/lmdb-person-store.ts";
import { encodeState, forEachEntry } from "../worker/changelog.ts";
import {
  type ActiveResult,
  type BatchResult,
  type DetectorSetup,
  type LaneRequest,
  type LaneResult,
  type LaneSetup,
  type LocalCheckpoint,
  lineMetaKind,
  type RecordArena,
  type StateResult,
  unpackValues,
} from "./lane-protocol.ts";

/** The registry's detectors as a setup says, each with its catalogs and effective config. */
export const activateSetup = (s: DetectorSetup): ActiveDetector[] =>
  activate(s.ids ? s.ids.map(requireDetector) : DETECTORS, loadCatalogs(s.reference), s.configs);

/** A store's own checkpoint: its commit number and the engine's watermark then. */
interface StoreCheckpoint {
  seq: number;
  /** Random per commit, so a marker names this store's commit and no other's (seqs repeat across stores). */
  id: string;
  watermark: number;
  /** A `commit` request's note. */
  note?: unknown;
}

/** What a store notes of the changelog's confirmation of its commit. */
export const CHANGELOG_NOTE = "changelog";

/** A logger for what main already logs (config applied, outages): a lane's copies would be noise. */
const quiet = createLogger("lane", "silent");

/** An Avro decoder that waits out an unreachable registry. */
type AvroDecode = (kind: InputKind, value: Buffer) => ReturnType<AvroSerde["decode"]>;

export class LaneCore {
  private readonly engines = new Map<number, Engine>();
  private readonly stores = new Map<number, LmdbPersonStore>();
  /** The last commit number of each partition's store. */
  private readonly seqOf = new Map<number, number>();
  private readonly detectors: ActiveDetector[];
  private avro: AvroDecode | undefined;
  private lmdb: typeof LmdbPersonStore | undefined;
  private validate: Validators | undefined;
  /** Requests run one at a time, in the order they came: decoding awaits the registry. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly setup: LaneSetup,
    private readonly outages: OutageListener,
    private readonly signal?: AbortSignal,
  ) {
    this.detectors = activateSetup(setup.detectors);
  }

  handle(r: LaneRequest): Promise<LaneResult> {
    const run = this.tail.then(() => this.run(r));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async run(r: LaneRequest): Promise<LaneResult> {
    switch (r.op) {
      case "open": {
        if (this.setup.state) this.lmdb ??= (await import("../state/lmdb-person-store.ts")).LmdbPersonStore;
        const resumed: unknown[] = [];
        for (const p of r.partitions) {
          await this.closeStore(p);
          const engine = this.newEngine(p);
          this.engines.set(p, engine);
          resumed.push(
            r.resume?.from === "committed"
              ? this.resumeCommitted(p, engine)
              : this.resume(p, engine, r.resume?.withinMs ?? 0),
          );
        }
        return { resumed };
      }
      case "commit": {
        for (const [p, e] of this.engines) this.commitStore(p, e, r.note);
        return {};
      }
      case "checkpointed": {
        const store = this.stores.get(r.partition);
        // Confirmations come back in commit order, often after the next commit: each is noted, as
        // the changelog's end a resume reads on from.
        const noted = store?.noted(CHANGELOG_NOTE) as LocalCheckpoint | undefined;
        if (store && (noted?.seq ?? 0) < r.checkpoint.seq) store.note(CHANGELOG_NOTE, r.checkpoint);
        return {};
      }
      case "restore": {
        const engine = this.engineOf(r.partition);
        forEachEntry(r.entries, (key, value) =>
          engine.restoreEntry(key.toString(), value === null ? null : JSON.parse(value.toString())),
        );
        return {};
      }
      case "drop":
        for (const p of r.partitions) {
          this.engines.delete(p);
          await this.closeStore(p);
        }
        return {};
      case "batch":
        return this.batch(r.partition, r.kind, r.values);
      case "lines":
        return this.lines(r.partition, r.lines, r.meta);
      case "events":
        return this.events(r.partition, r.events);
      case "state":
        return this.state();
      case "dirty":
        return {
          dirty: [...this.engines].map(([partition, e]) => ({
            partition,
            entries: e.takeDirty(),
            stats: { ...e.stats },
          })),
        };
      case "active":
        return this.active(r.partitions);
      case "check":
        return checkOnEngine(r.settlement, this.engineOf(r.partition), this.detectors);
      case "config":
        applyConfigRecord(this.detectors, r.record, quiet);
        return {};
      case "close":
        for (const p of [...this.stores.keys()]) await this.closeStore(p);
        return {};
    }
  }

  private async batch(partition: number, kind: InputKind, values: RecordArena): Promise<BatchResult> {
    const engine = this.engineOf(partition);
    const decode = await this.avroDecoder();
    const tooLateBefore = engine.stats.tooLate;
    const changes: Change[] = [];
    const bad: BatchResult["bad"] = [];
    let i = 0;
    for (const value of unpackValues(values)) {
      const decoded = await decode(kind, value);
      if (decoded.ok) this.take(engine.process({ kind, value: decoded.value } as EngineEvent), changes);
      else bad.push({ index: i, reason: decoded.reason });
      i++;
    }
    const events = values.ends.length - bad.length;
    return { changes, events, bad, tooLate: engine.stats.tooLate - tooLateBefore, persons: this.persons() };
  }

  private lines(partition: number, lines: RecordArena, meta: Float64Array): BatchResult {
    const engine = this.engineOf(partition);
    this.validate ??= validators(this.setup.limits);
    const tooLateBefore = engine.stats.tooLate;
    const changes: Change[] = [];
    const bad: BatchResult["bad"] = [];
    const bytes = Buffer.from(lines.arena.buffer, lines.arena.byteOffset, lines.arena.byteLength);
    let events = 0;
    for (let i = 0; i < lines.ends.length; i++) {
      const text = bytes.toString("utf8", i === 0 ? 0 : lines.ends[i - 1], lines.ends[i]);
      const parsed = parseEventLine(lineMetaKind(meta[i] as number), text, this.validate);
      if (!parsed) continue;
      if (!parsed.ok) {
        bad.push({ index: i, reason: parsed.reason });
        continue;
      }
      this.take(engine.process(parsed.value), changes);
      events++;
    }
    return { changes, events, bad, tooLate: engine.stats.tooLate - tooLateBefore, persons: this.persons() };
  }

  private events(partition: number, events: readonly EngineEvent[]): BatchResult {
    const engine = this.engineOf(partition);
    const tooLateBefore = engine.stats.tooLate;
    const changes: Change[] = [];
    for (const e of events) this.take(engine.process(e), changes);
    const tooLate = engine.stats.tooLate - tooLateBefore;
    return { changes, events: events.length, bad: [], tooLate, persons: this.persons() };
  }

  private take(decided: readonly Change[], into: Change[]): void {
    if (this.setup.changes) for (const c of decided) into.push(c);
  }

  /**
   * The Avro decoder, made on the first Kafka batch. Most values decode without waiting: only an
   * unreachable registry or an unknown id pays for the retry.
   */
  private async avroDecoder(): Promise<AvroDecode> {
    if (this.avro) return this.avro;
    const avro = this.setup.avro;
    if (!avro) throw new Error("a lane set up without Avro was sent Kafka values");
    const [{ AvroSerde, RegistryUnavailableError }, { Health }] = await Promise.all([
      import("../kafka/serde.ts"),
      import("../health.ts"),
    ]);
    // Registered by main already; the lane only reads writer schemas by id.
    const serde = new AvroSerde(avro.registryUrl, avro.topics, {
      unknownWaitMs: avro.schemaWaitMs,
      limits: this.setup.limits,
    });
    const health = new Health({ log: quiet, policy: avro.backoff, forward: this.outages });
    this.avro = async (kind, value) => {
      try {
        return await serde.decode(kind, value);
      } catch (first) {
        if (!(first instanceof RegistryUnavailableError)) throw first;
        // The partition waits here; its batches queue behind, so main stops fetching once the lane is full.
        return health.retry("registry", () => serde.decode(kind, value), {
          retryable: (e) => e instanceof RegistryUnavailableError,
          signal: this.signal,
        });
      }
    };
    return this.avro;
  }

  private state(): StateResult {
    const states = [];
    const commits = [];
    for (const [p, e] of this.engines) {
      states.push(encodeState(p, e.takeDirty()));
      const commit = this.commitStore(p, e);
      if (commit) commits.push({ partition: p, ...commit });
    }
    return { states, commits, persons: this.persons() };
  }

  /** Commits the partition's store, if it has one; its commit's number and id. */
  private commitStore(partition: number, e: Engine, note?: unknown): { seq: number; id: string } | undefined {
    const store = this.stores.get(partition);
    if (!store) return undefined;
    const seq = (this.seqOf.get(partition) ?? 0) + 1;
    this.seqOf.set(partition, seq);
    const id = randomBytes(8).toString("hex");
    const checkpoint: StoreCheckpoint = {
      seq,
      id,
      watermark: e.watermark,
      ...(note === undefined ? {} : { note }),
    };
    store.commit(checkpoint);
    return { seq, id };
  }

  /**
   * A store clean at a commit with a note carries on from it (the caller knows from the note what
   * to replay after it); otherwise it is emptied. The note, or null.
   */
  private resumeCommitted(partition: number, engine: Engine): unknown {
    const store = this.stores.get(partition);
    if (!store) return null;
    const at = store.checkpoint() as StoreCheckpoint | undefined;
    this.seqOf.set(partition, at?.seq ?? 0);
    if (at?.note !== undefined) {
      engine.restoreWatermark(at.watermark);
      return at.note;
    }
    store.clear();
    return null;
  }

  /**
   * Whether a partition's store may carry on: it is clean at a commit and holds a confirmation of
   * that commit or an earlier one (recent enough that the log's compaction has dropped no tombstone
   * since). Then the engine carries on from it, the changelog is read on from the confirmed end
   * (re-applying entries the store already holds changes nothing) and the caller checks that the log
   * ends at a marker of the store's commit (`stored`); a store ahead of its log is reopened empty.
   * Otherwise the store is emptied here.
   */
  private resume(partition: number, engine: Engine, withinMs: number): LocalCheckpoint | null {
    const store = this.stores.get(partition);
    if (!store) return null;
    const at = store.checkpoint() as StoreCheckpoint | undefined;
    const confirmed = store.noted(CHANGELOG_NOTE) as LocalCheckpoint | undefined;
    // Commit numbers go on from the last one, so a confirmation of an old commit never matches a new one.
    this.seqOf.set(partition, Math.max(at?.seq ?? 0, confirmed?.seq ?? 0));
    if (
      at &&
      confirmed &&
      confirmed.seq <= at.seq &&
      withinMs > 0 &&
      Date.now() - confirmed.atMs <= withinMs
    ) {
      engine.restoreWatermark(at.watermark);
      return { ...confirmed, stored: at.id };
    }
    store.clear();
    return null;
  }

  private active(partitions: number[]): ActiveResult {
    const suspects: Suspect[] = [];
    const stats = emptyStats();
    for (const p of partitions) {
      const engine = this.engines.get(p);
      if (!engine) continue;
      for (const s of engine.activeSuspects()) suspects.push(s);
      addStats(stats, engine.stats);
    }
    return { suspects, stats };
  }

  private persons(): number {
    let n = 0;
    for (const e of this.engines.values()) n += e.personCount;
    return n;
  }

  private engineOf(partition: number): Engine {
    const e = this.engines.get(partition);
    if (!e) throw new Error(`lane has no engine for partition ${partition}: open it first`);
    return e;
  }

  private newEngine(partition: number): Engine {
    const local = this.setup.state;
    return new Engine({
      detectors: this.detectors,
      retentionDays: this.setup.retentionDays,
      latenessDays: this.setup.latenessDays,
      changelog: this.setup.changelog,
      store: local
        ? (create) => {
            const path = join(local.dir, `p${partition}`);
            const Store = this.lmdb as typeof LmdbPersonStore;
            const store = new Store({ path, cacheSize: local.cachePersons, create });
            this.stores.set(partition, store);
            return store;
          }
        : undefined,
    });
  }

  private async closeStore(partition: number): Promise<void> {
    const store = this.stores.get(partition);
    this.stores.delete(partition);
    await store?.close();
  }
}
