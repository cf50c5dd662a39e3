// Where an engine keeps its persons' state, as a Kafka Streams task keeps a key-value store per
// partition: in the heap (MemoryPersonStore), or on disk behind a bounded cache (state/lmdb-store.ts).
import type { PersonState, StateEntry } from "./person-state.ts";

export interface PersonStore {
  get(personId: string): PersonState | undefined;
  /** A person new to the store. */
  add(p: PersonState): void;
  delete(personId: string): void;
  /**
   * Tells the store that the person its last get (or add) returned has changed: a persistent store
   * writes it at its next commit. Called before the store is asked for anyone else.
   */
  changed(p: PersonState): void;
  /**
   * A store on disk is told each entry a person's change touched (as the changelog is), so it
   * writes those rather than the person: called before `changed`, and for each entry restored.
   */
  record?(personId: string, entry: StateEntry): void;
  /** Persons that may hold evidence older than `horizonMs` (a sweep's candidates; PersonState.evict decides). */
  expiring(horizonMs: number): Iterable<PersonState>;
  /** Every person: for listings, restores and tests, never per event (a persistent store reads them from disk). */
  values(): Iterable<PersonState>;
  readonly size: number;
}

/** The heap store: every person a live object, nothing written anywhere. */
export class MemoryPersonStore implements PersonStore {
  private readonly persons = new Map<string, PersonState>();

  get(personId: string): PersonState | undefined {
    return this.persons.get(personId);
  }

  add(p: PersonState): void {
    this.persons.set(p.personId, p);
  }

  delete(personId: string): void {
    this.persons.delete(personId);
  }

  changed(): void {}

  expiring(): Iterable<PersonState> {
    return this.persons.values();
  }

  values(): Iterable<PersonState> {
    return this.persons.values();
  }

  get size(): number {
    return this.persons.size;
  }
}
