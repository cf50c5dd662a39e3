// Writer schemas by id, as the registry answered them: a bounded LRU, and a policy for ids the
// registry does not know (yet).
//
// A producer can write an id before this registry can serve it: a follower replica or another
// data centre's registry lags behind the one the producer registered with. Registries number
// schemas in order and replicas catch up in order, so such an id is newer than every id this
// registry has served us. Only such an id, and only a plausible step ahead (FRESH_ID_SPAN), is
// waited for: for `unknownWaitMs` after its first 404 lookups throw SchemaNotYetKnownError and
// the caller waits with backoff, as for an unreachable registry. Any other unknown id (older,
// far ahead, random bytes after a zero byte), or one still unknown after its window, is answered
// as unknown: its messages are dead-lettered at once, and the registry is asked again at most
// once per window, so an id registered later is picked up. A wait that ends in vain means the
// registry is not behind: no other id is waited for during the next window, so bad input can
// cost at most every other window. 0 dead-letters at the first 404 (Confluent deserializers' way).

/** The registry failed in a way that is not the message's fault (network, 5xx): retry, never dead-letter. */
export class RegistryUnavailableError extends Error {}

/** The registry does not know this id yet; still inside the window in which it may appear. */
export class SchemaNotYetKnownError extends RegistryUnavailableError {}

export interface SchemaCacheOptions {
  /** Resolved ids (and ids given up on) kept; the least recently used go first. */
  maxEntries?: number;
  /** How long a fresh id the registry does not know is waited for before its messages are dead-lettered. */
  unknownWaitMs?: number;
}

const DEFAULT_MAX_ENTRIES = 1_000;
const DEFAULT_UNKNOWN_WAIT_MS = 10_000;
/** How far beyond the newest id served an id may be and still be a registration not seen yet. */
const FRESH_ID_SPAN = 10_000;
/** An id given up on is asked again at most this often (or once per window, if longer). */
const MIN_RECHECK_MS = 1_000;

type Entry<T> =
  | { kind: "lookup"; value: Promise<T | string> }
  | { kind: "waiting"; since: number }
  | { kind: "unknown"; reason: string; recheckAt: number };

const statusOf = (e: unknown) => (e as { status?: number }).status;

export class SchemaCache<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly maxEntries: number;
  private readonly waitMs: number;
  private newest = -1;
  private calmUntil = 0;

  constructor(o: SchemaCacheOptions = {}) {
    this.maxEntries = o.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.waitMs = o.unknownWaitMs ?? DEFAULT_UNKNOWN_WAIT_MS;
  }

  /** An id the registry served (say, at registration): ids above it may be fresh, those below not. */
  served(id: number): void {
    this.newest = Math.max(this.newest, id);
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
      if (entry.kind === "unknown" && Date.now() < entry.recheckAt) return Promise.resolve(entry.reason);
    }
    const value = load().then(
      (found) => {
        this.served(id);
        return found;
      },
      (e: unknown) => {
        if (statusOf(e) !== 404) {
          this.entries.delete(key);
          throw new RegistryUnavailableError(`schema registry: ${(e as Error).message}`);
        }
        return this.unknown(key, id, entry);
      },
    );
    this.put(key, { kind: "lookup", value });
    return value;
  }

  private unknown(key: string, id: number, before: Entry<T> | undefined): string {
    const now = Date.now();
    const since = before?.kind === "waiting" ? before.since : undefined;
    // An id given up on before does not get a second window.
    if (
      since !== undefined ? now - since < this.waitMs : before?.kind !== "unknown" && this.mayWait(id, now)
    ) {
      this.put(key, { kind: "waiting", since: since ?? now });
      throw new SchemaNotYetKnownError(
        `schema id ${id} is not in the registry (yet): waiting up to ${this.waitMs} ms for it`,
      );
    }
    let reason = `unknown schema id ${id} (not in the registry, nor a registration it may not have seen yet)`;
    if (since !== undefined) {
      this.calmUntil = now + this.waitMs;
      reason = `unknown schema id ${id} (not in the registry after waiting ${this.waitMs} ms)`;
    } else if (before?.kind === "unknown") reason = before.reason;
    this.put(key, { kind: "unknown", reason, recheckAt: now + Math.max(MIN_RECHECK_MS, this.waitMs) });
    return reason;
  }

  private mayWait(id: number, now: number): boolean {
    return this.waitMs > 0 && now >= this.calmUntil && id > this.newest && id - this.newest <= FRESH_ID_SPAN;
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
