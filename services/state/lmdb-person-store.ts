// An engine partition's persons on disk (LMDB through lmdb-js, values in msgpack), with the most
// recently used as live objects in front: memory is bounded by the cache, not by the history.
// Changed persons stay in the cache until commit() writes them in one transaction with the caller's
// checkpoint (Kafka Streams' .checkpoint: the changelog offsets the written state reflects). Past
// the bound they are spilled earlier, and the store is unclean until the next commit: state on
// disk may then be ahead of any checkpoint, so a restart must not resume from it.
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { type Database, open, type RootDatabase } from "lmdb";
import { type PersonSnapshot, type PersonState, STATE_FORMAT } from "../engine/person-state.ts";
import type { PersonStore } from "../engine/person-store.ts";

export interface LmdbStoreOptions {
  /** A directory of its own (created if missing). */
  path: string;
  /** Persons kept as live objects (at least 1); the others are read from disk when an event needs them. */
  cacheSize: number;
  /** A person object as its engine makes them (with the engine's change listener). */
  create: (personId: string) => PersonState;
}

/** A person's value on disk: its snapshot, its time in the expiry index, and its id when keyed by a hash. */
type Stored = PersonSnapshot & { o: number; p?: string };

interface Cached {
  state: PersonState;
  /** The expiry key's time on disk; undefined when the person is not on disk. */
  indexed: number | undefined;
}

const STRUCTURES = Symbol.for("structures");

/** The expiry index's time of a person holding no dated evidence (a death record, findings). */
const NEVER = Number.MAX_SAFE_INTEGER;

/** What starts a hashed key; an id that starts so is hashed too, so keys of two ids never meet. */
const HASHED = "\u0001#";
/**
 * A person's key on disk: its id, unless LMDB could not key it (over 1,978 bytes, or a NUL, which
 * splits array keys such as the expiry index's); then a hash of it. Only hostile input has such ids.
 */
function keyOf(id: string): string {
  // A UTF-16 unit is 3 bytes at most: 600 of them fit without counting.
  const fits = id.length <= 600 || Buffer.byteLength(id) <= 1_800;
  if (fits && !id.includes("\u0000") && !id.startsWith(HASHED)) return id;
  return HASHED + createHash("sha256").update(id).digest("base64");
}

export class LmdbPersonStore implements PersonStore {
  private readonly root: RootDatabase;
  private readonly persons: Database<Stored, string>;
  /** [oldest evidence ms, person id] of every person on disk: a sweep reads only what may expire. */
  private readonly expiry: Database<boolean, [number, string]>;
  private readonly meta: Database<unknown, string>;
  /** Unchanged since the last write, least recently used first: what eviction takes. */
  private readonly lru = new Map<string, Cached>();
  /** Changed since the last write: held until it writes them. */
  private readonly changes = new Map<string, Cached>();
  /** Deleted since the last write, with their expiry key on disk. */
  private readonly deleted = new Map<string, number | undefined>();
  private count: number;
  private clean: boolean;

  constructor(private readonly o: LmdbStoreOptions) {
    if (o.cacheSize < 1) throw new Error("an LMDB person store needs a cache of at least one person");
    mkdirSync(o.path, { recursive: true });
    // Every transaction synced (LMDB's default): a crash of the process or the machine leaves the
    // last committed state, never a store that does not open.
    this.root = open({ path: o.path, maxDbs: 4 });
    this.persons = this.root.openDB<Stored, string>({ name: "persons", sharedStructuresKey: STRUCTURES });
    this.expiry = this.root.openDB<boolean, [number, string]>({ name: "expiry" });
    this.meta = this.root.openDB<unknown, string>({ name: "meta" });
    // Written by a version of fundguard whose state reads differently (or one before formats were
    // noted): nothing of it is kept.
    if (this.meta.get("format") !== STATE_FORMAT) this.clear();
    // msgpackr's record structures are an entry of the persons' database too.
    const entries = (this.persons.getStats() as { entryCount: number }).entryCount;
    this.count = entries - (this.persons.doesExist(STRUCTURES as never) ? 1 : 0);
    this.clean = this.meta.get("clean") !== false;
  }

  /** The last commit's checkpoint, unless state was spilled after it (then a restart must not resume from disk). */
  checkpoint(): unknown {
    return this.clean ? this.meta.get("checkpoint") : undefined;
  }

  get(personId: string): PersonState | undefined {
    const changed = this.changes.get(personId);
    if (changed) return changed.state;
    const hit = this.lru.get(personId);
    if (hit) {
      this.lru.delete(personId);
      this.lru.set(personId, hit);
      return hit.state;
    }
    // Deleted since the last write: what disk holds is gone.
    if (this.deleted.has(personId)) return undefined;
    const stored = this.persons.get(keyOf(personId));
    if (!stored) return undefined;
    const state = this.o.create(personId);
    state.load(stored);
    this.makeRoom();
    this.lru.set(personId, { state, indexed: stored.o });
    return state;
  }

  add(p: PersonState): void {
    this.makeRoom();
    this.changes.set(p.personId, { state: p, indexed: this.deleted.get(p.personId) });
    this.deleted.delete(p.personId);
    this.count++;
  }

  delete(personId: string): void {
    const e = this.changes.get(personId) ?? this.lru.get(personId);
    if (!e) return;
    this.changes.delete(personId);
    this.lru.delete(personId);
    this.deleted.set(personId, e.indexed);
    this.count--;
  }

  changed(p: PersonState): void {
    const e = this.lru.get(p.personId);
    if (!e) return;
    this.lru.delete(p.personId);
    this.changes.set(p.personId, e);
  }

  *expiring(horizonMs: number): Iterable<PersonState> {
    const ids = new Set<string>();
    for (const cached of [this.changes, this.lru])
      for (const [id, e] of cached) if (e.state.oldestEvidenceMs < horizonMs) ids.add(id);
    // Disk keys of persons changed since are stale: their cached objects were looked at above.
    for (const [, key] of this.expiry.getKeys({ end: [horizonMs, ""] })) {
      const id = this.idOf(key);
      if (id !== undefined && !this.changes.has(id) && !this.deleted.has(id)) ids.add(id);
    }
    for (const id of ids) {
      const p = this.get(id);
      if (p) yield p;
    }
  }

  *values(): Iterable<PersonState> {
    const cached = [...this.changes.keys(), ...this.lru.keys()];
    for (const id of cached) {
      const p = (this.changes.get(id) ?? this.lru.get(id))?.state;
      if (p) yield p;
    }
    const seen = new Set(cached);
    for (const key of [...this.persons.getKeys()]) {
      const id = this.idOf(key);
      if (id === undefined || seen.has(id)) continue;
      const p = this.get(id);
      if (p) yield p;
    }
  }

  get size(): number {
    return this.count;
  }

  /** What was noted under `key` (see note). */
  noted(key: string): unknown {
    return this.meta.get(`note:${key}`);
  }

  /**
   * Records what the caller learned after a commit (where its changelog ended), in a transaction of
   * its own: the changes made since the commit are not written with it.
   */
  note(key: string, value: unknown): void {
    this.meta.putSync(`note:${key}`, value);
  }

  /** Writes every change and the checkpoint in one transaction, on disk when this returns. */
  commit(checkpoint: unknown): void {
    this.write(checkpoint);
  }

  /** Writes every change in one transaction; with a checkpoint, the store is clean at it. */
  private write(checkpoint?: unknown): void {
    const cleanNow = checkpoint !== undefined;
    this.root.transactionSync(() => {
      for (const [id, was] of this.deleted) {
        const key = keyOf(id);
        this.persons.removeSync(key);
        if (was !== undefined) this.expiry.removeSync([was, key]);
      }
      for (const [id, e] of this.changes) {
        const key = keyOf(id);
        const o = Math.min(e.state.oldestEvidenceMs, NEVER);
        if (e.indexed !== undefined && e.indexed !== o) this.expiry.removeSync([e.indexed, key]);
        const stored: Stored = { ...e.state.snapshot(), o };
        if (key !== id) stored.p = id;
        this.persons.putSync(key, stored);
        if (e.indexed !== o) this.expiry.putSync([o, key], true);
        e.indexed = o;
      }
      if (cleanNow) this.meta.putSync("checkpoint", checkpoint);
      if (this.meta.get("format") !== STATE_FORMAT) this.meta.putSync("format", STATE_FORMAT);
      if (cleanNow !== this.clean) this.meta.putSync("clean", cleanNow);
    });
    // Written: now the most recently used of what eviction may take.
    for (const [id, e] of this.changes) this.lru.set(id, e);
    this.changes.clear();
    this.deleted.clear();
    this.clean = cleanNow;
  }

  /** Empties the store (a restore from the changelog follows). */
  clear(): void {
    this.root.transactionSync(() => {
      this.persons.clearSync();
      this.expiry.clearSync();
      this.meta.clearSync();
    });
    this.lru.clear();
    this.changes.clear();
    this.deleted.clear();
    this.count = 0;
    this.clean = true;
  }

  close(): Promise<void> {
    return this.root.close();
  }

  /** The person id a key on disk stands for (undefined: none, as msgpackr's structures entry). */
  private idOf(key: unknown): string | undefined {
    if (typeof key !== "string") return undefined;
    return key.startsWith(HASHED) ? this.persons.get(key)?.p : key;
  }

  /**
   * Room for one more person: the least recently used unchanged ones are evicted, after the changes
   * are written when they hold half of the cache. Called before the newcomer goes in, so that it
   * is never the one evicted.
   */
  private makeRoom(): void {
    if (this.lru.size + this.changes.size < this.o.cacheSize) return;
    if (this.changes.size >= this.o.cacheSize / 2) this.write();
    for (const id of this.lru.keys()) {
      if (this.lru.size + this.changes.size < this.o.cacheSize) break;
      this.lru.delete(id);
    }
  }
}
