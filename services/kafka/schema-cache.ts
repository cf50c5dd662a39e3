// Writer schemas by id, as the registry answered them: a bounded LRU, and a policy for ids the
// registry does not know (yet).
//
// A producer can write an id before this registry can serve it: a follower replica or another
// data centre's registry lags behind the one the producer registered with. So a 404 is not final
// at once: for `unknownWaitMs` after the first one, lookups throw SchemaNotYetKnownError and the
// caller waits with backoff, as for an unreachable registry. Past that window the id is answered
// as unknown (the message is dead-lettered), and only re-asked once per window after that, so a
// stream of messages with a bogus id neither stalls each one nor floods the registry, while an id
// registered later is picked up. The window is per id, so each distinct bogus id stalls its
// partition once, for the window; 0 dead-letters at the first 404 (Confluent deserializers' way).

/** The registry failed in a way that is not the message's fault (network, 5xx): retry, never dead-letter. */
export class RegistryUnavailableError extends Error {}

/** The registry does not know this id yet; still inside the window in which it may appear. */
export class SchemaNotYetKnownError extends RegistryUnavailableError {}

export interface SchemaCacheOptions {
  /** Resolved ids (and ids given up on) kept; the least recently used go first. */
  maxEntries?: number;
  /** How long an id the registry does not know is waited for before its messages are dead-lettered. */
  unknownWaitMs?: number;
  now?: () => number;
}

export const DEFAULT_SCHEMA_CACHE_ENTRIES = 1_000;
export const DEFAULT_UNKNOWN_SCHEMA_WAIT_MS = 10_000;
/** An id given up on is asked again at most this often (or once per window, if longer). */
const MIN_RECHECK_MS = 1_000;

type Entry<T> =
  | { kind: "lookup"; value: Promise<T | string> }
  | { kind: "unknown"; since: number; recheckAt?: number };

const statusOf = (e: unknown) => (e as { status?: number }).status;

export class SchemaCache<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly maxEntries: number;
  private readonly waitMs: number;
  private readonly now: () => number;

  constructor(o: SchemaCacheOptions = {}) {
    this.maxEntries = o.maxEntries ?? DEFAULT_SCHEMA_CACHE_ENTRIES;
    this.waitMs = o.unknownWaitMs ?? DEFAULT_UNKNOWN_SCHEMA_WAIT_MS;
    this.now = o.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * What `load` gives for `key` (a resolver, or a reason the message cannot be read). A string is
   * a definite answer about the message; thrown errors are RegistryUnavailableError.
   */
  get(key: string, id: number, load: () => Promise<T | string>): Promise<T | string> {
    const entry = this.entries.get(key);
    if (entry) {
      // Re-inserting keeps the Map in least-recently-used-first order.
      this.entries.delete(key);
      this.entries.set(key, entry);
      if (entry.kind === "lookup") return entry.value;
      if (entry.recheckAt !== undefined && this.now() < entry.recheckAt) {
        return Promise.resolve(this.unknownReason(id));
      }
    }
    const since = entry?.kind === "unknown" ? entry.since : undefined;
    const value = load().catch((e: unknown) => {
      if (statusOf(e) !== 404) {
        this.entries.delete(key);
        throw new RegistryUnavailableError(`schema registry: ${(e as Error).message}`);
      }
      const now = this.now();
      const first = since ?? now;
      if (now - first < this.waitMs) {
        this.put(key, { kind: "unknown", since: first });
        throw new SchemaNotYetKnownError(
          `schema id ${id} is not in the registry (yet): waiting up to ${this.waitMs} ms for it`,
        );
      }
      this.put(key, {
        kind: "unknown",
        since: first,
        recheckAt: now + Math.max(MIN_RECHECK_MS, this.waitMs),
      });
      return this.unknownReason(id);
    });
    this.put(key, { kind: "lookup", value });
    return value;
  }

  private unknownReason(id: number): string {
    return `unknown schema id ${id} (not in the registry for ${this.waitMs} ms)`;
  }

  private put(key: string, entry: Entry<T>): void {
    this.entries.delete(key);
    this.entries.set(key, entry);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }
}
