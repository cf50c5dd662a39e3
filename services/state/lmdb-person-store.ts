// An engine partition's persons on disk (LMDB through lmdb-js, values in msgpack), with the most
// recently used as live objects in front: memory is bounded by the cache, not by the history.
// Entries are kept as the changelog keeps them (one per settlement, cancellation, death record and
// finding), so a change writes what it touched, not the whole person again. Changes stay in the
// cache until commit() writes them in one transaction with the caller's checkpoint (Kafka Streams'
// .checkpoint: the changelog offsets the written state reflects). Past the bound they are spilled
// earlier, and the store is unclean until the next commit: state on disk may then be ahead of any
// checkpoint, so a restart must not resume from it.
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { type Database, open, type RootDatabase } from "lmdb";
import { type PersonState, STATE_FORMAT, type StateEntry } from "../engine/person-state.ts";
import type { PersonStore } from "../engine/person-store.ts";

export interface LmdbStoreOptions {
  /** A directory of its own (created if missing). */
  path: string;
  /** Persons kept as live objects (at least 1); the others are read from disk when an event needs them. */
  cacheSize: number;
  /** A person object as its engine makes them (with the engine's change listener). */
  create: (personId: string) => PersonState;
}

/** A person's value in `persons`: its time in the expiry index, with its id when keyed by a hash. */
type PersonValue = number | [o: number, id: string];
/** An entry's key: [person key, kind, id key]. */
type EntryKey = [string, StateEntry["kind"], string];

interface Cached {
  state: PersonState;
  /** The expiry time on disk; undefined when the person is not on disk. */
  indexed: number | undefined;
}

const STRUCTURES = Symbol.for("structures");

/** The expiry index's time of a person holding no dated evidence (a death record, findings). */
const NEVER = Number.MAX_SAFE_INTEGER;

/** What starts a hashed key; an id that starts so is hashed too, so keys of two ids never meet. */
const HASHED = "\u0001#";
/** The value of an entry whose id is keyed by a hash: [WRAPPED, id, value]. */
const WRAPPED = "\u0001id";
/**
 * An id's part of a key: itself, unless LMDB could not key it (an entry's key, person and id, must
 * fit 1,978 bytes, and a NUL splits array keys); then a hash of it. Only hostile input has such ids.
 */
function keyOf(id: string): string {
  // A UTF-16 unit is 3 bytes at most: 300 of them fit without counting.
  const fits = id.length <= 300 || Buffer.byteLength(id) <= 900;
  if (fits && !id.includes("\u0000") && !id.startsWith(HASHED)) return id;
  return HASHED + createHash("sha256").update(id).digest("base64");
}

/** Every entry key of a person sorts within [[key], [key, LAST]] (kinds are one letter). */
const LAST = "\uffff";

export class LmdbPersonStore implements PersonStore {
  private readonly root: RootDatabase;
  /** Person key → PersonValue: who is on disk. */
  private readonly persons: Database<PersonValue, string>;
  private readonly entries: Database<unknown, EntryKey>;
  /** [oldest evidence ms, person key] of every person on disk: a sweep reads only what may expire. */
  private readonly expiry: Database<boolean, [number, string]>;
  private readonly meta: Database<unknown, string>;
  /** Unchanged since the last write, least recently used first: what eviction takes. */
  private readonly lru = new Map<string, Cached>();
  /** Changed since the last write: held until it writes them. */
  private readonly changes = new Map<string, Cached>();
  /** The entries each changed person changed since the last write, by kind and id. */
  private readonly pending = new Map<string, Map<string, StateEntry>>();
  /** Deleted since the last write, with their expiry time on disk. */
  private readonly deleted = new Map<string, number | undefined>();
  /** Deleted and added again since the last write: their entries on disk go before the new ones are written. */
  private readonly wiped = new Set<string>();
  private count: number;
  private clean: boolean;

  constructor(private readonly o: LmdbStoreOptions) {
    if (o.cacheSize < 1) throw new Error("an LMDB person store needs a cache of at least one person");
    mkdirSync(o.path, { recursive: true });
    // Every transaction committed before it returns (a crash of the process keeps it); lmdb-js
    // flushes to disk after the commit (overlappingSync), so a crash of the machine may lose the
    // last ones, never the store's integrity: a store behind its changelog's marker is rebuilt.
    this.root = open({ path: o.path, maxDbs: 5 });
    this.persons = this.root.openDB<PersonValue, string>({ name: "persons" });
    this.entries = this.root.openDB<unknown, EntryKey>({ name: "entries", sharedStructuresKey: STRUCTURES });
    this.expiry = this.root.openDB<boolean, [number, string]>({ name: "expiry" });
    this.meta = this.root.openDB<unknown, string>({ name: "meta" });
    // Written by a version of fundguard whose state reads differently (or one before formats were
    // noted): nothing of it is kept.
    if (this.meta.get("format") !== STATE_FORMAT) this.clear();
    this.count = (this.persons.getStats() as { entryCount: number }).entryCount;
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
    const key = keyOf(personId);
    const value = this.persons.get(key);
    if (value === undefined) return undefined;
    const state = this.o.create(personId);
    for (const { key: k, value: v } of this.entries.getRange({ start: [key], end: [key, LAST] })) {
      const [, kind, id] = k as EntryKey;
      state.apply(
        Array.isArray(v) && v[0] === WRAPPED
          ? ({ kind, id: v[1], value: v[2] } as StateEntry)
          : ({ kind, id, value: v } as StateEntry),
      );
    }
    this.makeRoom();
    this.lru.set(personId, { state, indexed: typeof value === "number" ? value : value[0] });
    return state;
  }

  add(p: PersonState): void {
    this.makeRoom();
    this.changes.set(p.personId, { state: p, indexed: this.deleted.get(p.personId) });
    if (this.deleted.delete(p.personId)) this.wiped.add(p.personId);
    this.count++;
  }

  delete(personId: string): void {
    const e = this.changes.get(personId) ?? this.lru.get(personId);
    if (!e) return;
    this.changes.delete(personId);
    this.lru.delete(personId);
    this.pending.delete(personId);
    this.deleted.set(personId, e.indexed);
    this.count--;
  }

  changed(p: PersonState): void {
    const e = this.lru.get(p.personId);
    if (!e) return;
    this.lru.delete(p.personId);
    this.changes.set(p.personId, e);
  }

  record(personId: string, entry: StateEntry): void {
    let mine = this.pending.get(personId);
    if (!mine) {
      mine = new Map();
      this.pending.set(personId, mine);
    }
    mine.set(entry.kind + entry.id, entry);
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
    const onDisk: string[] = [];
    for (const { key, value } of this.persons.getRange())
      onDisk.push(typeof value === "number" ? key : value[1]);
    for (const id of onDisk) {
      if (seen.has(id)) continue;
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

  /** Writes every change and the checkpoint in one transaction, committed when this returns. */
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
        this.removeEntries(key);
        if (was !== undefined) this.expiry.removeSync([was, key]);
      }
      for (const id of this.wiped) this.removeEntries(keyOf(id));
      for (const [id, mine] of this.pending) {
        const key = keyOf(id);
        for (const e of mine.values()) {
          const idKey = keyOf(e.id);
          if (e.value === null) this.entries.removeSync([key, e.kind, idKey]);
          else
            this.entries.putSync([key, e.kind, idKey], idKey === e.id ? e.value : [WRAPPED, e.id, e.value]);
        }
      }
      for (const [id, e] of this.changes) {
        const o = Math.min(e.state.oldestEvidenceMs, NEVER);
        if (e.indexed === o) continue;
        const key = keyOf(id);
        if (e.indexed !== undefined) this.expiry.removeSync([e.indexed, key]);
        this.persons.putSync(key, key === id ? o : [o, id]);
        this.expiry.putSync([o, key], true);
        e.indexed = o;
      }
      if (cleanNow) this.meta.putSync("checkpoint", checkpoint);
      if (this.meta.get("format") !== STATE_FORMAT) this.meta.putSync("format", STATE_FORMAT);
      if (cleanNow !== this.clean) this.meta.putSync("clean", cleanNow);
    });
    // Written: now the most recently used of what eviction may take.
    for (const [id, e] of this.changes) this.lru.set(id, e);
    this.changes.clear();
    this.pending.clear();
    this.deleted.clear();
    this.wiped.clear();
    this.clean = cleanNow;
  }

  /** Empties the store (a restore from the changelog follows). */
  clear(): void {
    this.root.transactionSync(() => {
      this.persons.clearSync();
      this.entries.clearSync();
      this.expiry.clearSync();
      this.meta.clearSync();
    });
    this.lru.clear();
    this.changes.clear();
    this.pending.clear();
    this.deleted.clear();
    this.wiped.clear();
    this.count = 0;
    this.clean = true;
  }

  close(): Promise<void> {
    return this.root.close();
  }

  /** Takes a person's entries off disk (within a write's transaction). */
  private removeEntries(key: string): void {
    for (const k of [...this.entries.getKeys({ start: [key], end: [key, LAST] })])
      this.entries.removeSync(k as EntryKey);
  }

  /** The person id a key in `persons` or the expiry index stands for (undefined: no longer on disk). */
  private idOf(key: string): string | undefined {
    if (!key.startsWith(HASHED)) return key;
    const value = this.persons.get(key);
    return Array.isArray(value) ? value[1] : undefined;
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
