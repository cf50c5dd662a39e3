// A worker's flushes, written in three stages in the background while the next batches are
// processed: (1) the store, (2) dead letters, suspects for the topic sink and the changelog state
// ending with each partition's marker, (3) the input offsets. Stage 1 of the next flush overlaps
// stages 2 and 3 of this one; each stage runs in flush order, so offsets never overtake their state
// and state never its rows. What a crash leaves in the store past the last marker is repaired on
// restore (restore.ts), so the overlap reopens nothing. A step that fails is retried with backoff
// on exactly the data it took (the same rows and versions; sends resume at the first request not
// acknowledged). Only a stop ends the wait: the flush is dropped and a restart resumes from the
// last one, where changelog and offsets agree.
import type { Health } from "../health.ts";
import { deadLetterBatchBytes } from "../kafka/deadletter.ts";
import { type OutMessage, type ProduceRequest, produceRequests, sendRequest } from "../kafka/produce.ts";
import { encodeSuspectChange, type SuspectChange } from "../kafka/serde.ts";
import { CHANGELOG_MAX_MESSAGE_BYTES, type Topics } from "../kafka/topics.ts";
import type { GroupConsumer, TP, TransportProducer } from "../kafka/transport.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { RawArchiveRecord, Store } from "../store/index.ts";
import { changelogGroup, type StateMarker } from "./changelog.ts";

/** The partition of a send result's "topic:partition". */
const partitionOfKey = (k: string) => Number(k.slice(k.lastIndexOf(":") + 1));

/** Where suspect changes go: the store (with the archive of the input events) or the suspects topic. */
export type TaskOutput = { kind: "store"; store: Store } | { kind: "topic" };

/** A change with the input partition of its person: a lost partition's are its new owner's to write. */
export type PartitionedChange = SuspectChange & { partition: number };

/** What one flush writes, taken from the outbox at once. */
export interface FlushContents {
  changes: PartitionedChange[];
  archive: RawArchiveRecord[];
  letters: OutMessage[];
  /** Changelog entries, each partition's ending with its marker. */
  state: OutMessage[];
  offsets: (TP & { offset: bigint })[];
  /** The local stores' commits of this flush's state, with the marker each partition's state ends with. */
  localCommits: LocalCommit[];
}

export interface LocalCommit {
  partition: number;
  seq: number;
  marker: StateMarker;
}

export interface FlushOptions {
  producer: TransportProducer;
  consumer: GroupConsumer;
  health: Health;
  log: Logger;
  metrics?: Metrics;
  topics: Topics;
  changelogTopic: string;
  output: TaskOutput;
  /** The registry ClickHouse reads writer schemas from unless the store's configuration names one. */
  registryUrl: string;
  suspectSchemaId: () => number;
  /** The dead-letter topic's max.message.bytes. */
  deadLetterBytes: number;
  /** Whether a partition is still this worker's when its stage comes. */
  owns(partition: number): boolean;
  /** The suspects-topic offset after what this flush wrote to a partition there. */
  onSuspectsWritten(partition: number, end: bigint): void;
  /** The changelog holds this flush's state: each local commit with the partition's changelog end after it. */
  onStateWritten(commits: (LocalCommit & { end: bigint })[]): void;
  onFlushed(): void;
  /** A stage failed for good (or was stopped): the worker stops. */
  onFailure(e: unknown, stopped: boolean): void;
}

export class FlushStages {
  private stored: Promise<void> = Promise.resolve();
  private inFlight: Promise<void> = Promise.resolve();
  /** Flushes started whose offsets are not committed yet. */
  queued = 0;

  constructor(private readonly o: FlushOptions) {}

  /** Settles once every flush started so far has settled, failed ones included. */
  settled(): Promise<void> {
    return this.inFlight.catch(() => undefined);
  }

  /** Starts a flush; returns the previous one, which the caller waits for (two at most are under way). */
  start(c: FlushContents, signal: AbortSignal): Promise<void> {
    const o = this.o;
    const owned = <T extends { partition?: number }>(xs: T[]) =>
      xs.filter((x) => x.partition === undefined || o.owns(x.partition));
    const previous = this.inFlight;
    this.queued++;
    const timer = o.metrics?.flushSeconds.startTimer();
    const thisStored = this.stored.then(async () => {
      if (o.output.kind !== "store") return;
      const store = o.output.store;
      const t0 = Date.now();
      const mine = owned(c.changes);
      await o.health.retry("store", () => this.writeToStore(store, mine, c.archive), { signal });
      o.log.debug({ changes: mine.length, archived: c.archive.length, ms: Date.now() - t0 }, "flush written");
    });
    this.stored = thisStored;
    this.inFlight = Promise.all([previous, thisStored])
      .then(async () => {
        const ends = await this.send(this.requests(c, owned), signal);
        const written = owned(c.localCommits).flatMap((x) => {
          const end = ends.get(x.partition);
          return end === undefined ? [] : [{ ...x, end }];
        });
        if (written.length > 0) o.onStateWritten(written);
        await o.health.retry(
          "broker",
          async () => {
            const mine = owned(c.offsets);
            if (mine.length > 0) await o.consumer.commit(mine);
          },
          { signal },
        );
        timer?.();
        o.onFlushed();
      })
      .finally(() => this.queued--);
    this.inFlight.catch((e) => o.onFailure(e, e === signal.reason));
    return previous;
  }

  private requests(
    c: FlushContents,
    owned: <T extends { partition?: number }>(xs: T[]) => T[],
  ): ProduceRequest[] {
    const o = this.o;
    return produceRequests([
      {
        topic: o.topics.suspects,
        messages:
          o.output.kind === "topic"
            ? owned(c.changes).map((x) => ({
                ...encodeSuspectChange(o.suspectSchemaId(), x),
                partition: x.partition,
              }))
            : [],
      },
      {
        topic: o.topics.deadletter,
        messages: c.letters,
        maxBatchBytes: deadLetterBatchBytes(o.deadLetterBytes),
      },
      // State is the bulk of what a worker writes: big batches, compressed with lz4 (the cheapest
      // codec per record in the transport bench, for either client).
      {
        topic: o.changelogTopic,
        messages: owned(c.state),
        maxBatchBytes: CHANGELOG_MAX_MESSAGE_BYTES / 2,
        groupOf: changelogGroup,
        compression: "lz4",
      },
    ]);
  }

  /**
   * Sends the requests in order; a retry resumes at the first one not acknowledged. Returns the
   * changelog's end offset after what was written to each of its partitions.
   */
  private async send(requests: ProduceRequest[], signal: AbortSignal): Promise<Map<number, bigint>> {
    const o = this.o;
    const changelogEnds = new Map<number, bigint>();
    let sent = 0;
    await o.health.retry(
      "broker",
      async () => {
        for (; sent < requests.length; sent++) {
          const request = requests[sent] as ProduceRequest;
          const written = await sendRequest(o.producer, request);
          if (request.topic === o.changelogTopic)
            for (const [k, last] of written) changelogEnds.set(partitionOfKey(k), last + 1n);
          if (request.topic !== o.topics.suspects) continue;
          for (const [k, last] of written) o.onSuspectsWritten(partitionOfKey(k), last + 1n);
          if (requests[sent + 1]?.topic !== o.topics.suspects) {
            const changes = requests.reduce(
              (n, r) => n + (r.topic === o.topics.suspects ? r.messages.length : 0),
              0,
            );
            o.log.debug({ changes }, "flush written");
          }
        }
      },
      { signal },
    );
    return changelogEnds;
  }

  /** The store path: the archive first (from the Kafka values as they are), then the suspect changes. */
  private async writeToStore(store: Store, changes: SuspectChange[], archive: RawArchiveRecord[]) {
    const o = this.o;
    const fallbacks = await store.archive(archive, "AvroConfluent", { registryUrl: o.registryUrl });
    for (const f of fallbacks) {
      o.log.warn(
        { table: f.table, clickhouse: f.message },
        "ClickHouse refused the archive's Avro bytes as data: this flush was archived through JS rows",
      );
      o.metrics?.archiveFallbacks.inc({ table: f.table });
    }
    if (changes.length > 0)
      await store.writeChanges(changes, { versionOf: (x) => (x as SuspectChange).version });
  }
}
