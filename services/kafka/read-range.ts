// Reading topics from their start to the end offsets seen at start, and on when following: the
// config follower (its catch-up, then the changes as they come). kafkajs has no manual
// assignment, so a consumer group of the reader's own stands in for it: it never commits, seeks
// to the reader's positions whenever it is assigned, and is deleted when the reader stops.
import { randomUUID } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import type { Admin, EachBatchPayload, Kafka, KafkaMessage } from "kafkajs";
import type { Logger } from "../log.ts";
import { type ConsumerTiming, DEFAULT_TIMING } from "./connection.ts";
import { tpKey } from "./transport.ts";

export interface RangeRecord {
  topic: string;
  partition: number;
  message: KafkaMessage;
}

export interface RangeOptions {
  topics: string[];
  /** Keep reading past the ends (`caughtUp` still tells when they were reached); until stop(). */
  follow?: boolean;
  /** The reader's group is this prefix and a uuid. */
  groupPrefix: string;
  timing?: ConsumerTiming;
  /** Where a group that could not be deleted is reported. */
  log?: Logger;
  /** Every record in range, in offset order per partition; may wait, heartbeating through `heartbeat`. */
  onRecord(r: RangeRecord, heartbeat: () => Promise<void>): void | Promise<void>;
}

export type RangeOutcome = "done" | "interrupted";

export interface RangeReader {
  /** Resolves once every partition reached its end. */
  caughtUp: Promise<void>;
  /**
   * "done" when every partition reached its end (never when following), "interrupted" on
   * stop; rejects when `onRecord` throws or the consumer crashes for good.
   */
  done: Promise<RangeOutcome>;
  /** Stops reading and deletes the reader's group; idempotent. */
  stop(): Promise<void>;
}

/** Starts reading; the caller must stop() the reader. */
export async function openRange(kafka: Kafka, o: RangeOptions): Promise<RangeReader> {
  const timing = o.timing ?? DEFAULT_TIMING;
  const admin = kafka.admin();
  await admin.connect();
  let resolveDone: (outcome: RangeOutcome) => void = () => undefined;
  let rejectDone: (e: Error) => void = () => undefined;
  const done = new Promise<RangeOutcome>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  let markCaughtUp: () => void = () => undefined;
  const caughtUp = new Promise<void>((resolve, reject) => {
    markCaughtUp = resolve;
    done.catch(reject);
  });
  // A follower's caller may never await these: a failure must not become an unhandled rejection.
  caughtUp.catch(() => undefined);
  done.catch(() => undefined);
  let settled = false;
  const settle = (outcome: RangeOutcome | Error) => {
    if (settled) return;
    settled = true;
    if (outcome instanceof Error) rejectDone(outcome);
    else resolveDone(outcome);
  };

  /** Next offset per partition read; `ends` holds those not at their end yet. */
  const position = new Map<string, bigint>();
  const ends = new Map<string, bigint>();
  try {
    for (const topic of o.topics) {
      for (const p of await admin.fetchTopicOffsets(topic)) {
        const k = tpKey(topic, p.partition);
        const from = BigInt(p.low);
        const to = BigInt(p.high);
        position.set(k, from);
        if (from < to) ends.set(k, to);
      }
    }
  } catch (e) {
    await admin.disconnect().catch(() => undefined);
    throw e;
  }
  const reached = () => {
    if (ends.size > 0) return;
    markCaughtUp();
    if (!o.follow) settle("done");
  };
  reached();
  if (settled) {
    await admin.disconnect().catch(() => undefined);
    return { caughtUp, done, stop: async () => undefined };
  }

  const groupId = `${o.groupPrefix}${randomUUID()}`;
  const consumer = kafka.consumer({
    groupId,
    sessionTimeout: timing.sessionTimeoutMs,
    heartbeatInterval: timing.heartbeatMs,
    maxWaitTimeInMs: timing.fetchWaitMs,
  });

  const finishPartition = (topic: string, partition: number) => {
    if (!ends.delete(tpKey(topic, partition))) return;
    if (!o.follow) consumer.pause([{ topic, partitions: [partition] }]);
    reached();
  };

  const eachBatch = async ({ batch, heartbeat, isRunning, isStale }: EachBatchPayload) => {
    const k = tpKey(batch.topic, batch.partition);
    const end = ends.get(k);
    if (settled || (end === undefined && !o.follow)) return;
    try {
      for (const message of batch.messages) {
        if (settled || !isRunning() || isStale()) return;
        const offset = BigInt(message.offset);
        if (offset < (position.get(k) ?? 0n)) continue; // fetched before the seek took effect
        if (end !== undefined && offset >= end && !o.follow) break;
        const pending = o.onRecord({ topic: batch.topic, partition: batch.partition, message }, heartbeat);
        if (pending) await pending;
        position.set(k, offset + 1n);
        if (end !== undefined && offset + 1n >= end) finishPartition(batch.topic, batch.partition);
      }
      // Compaction leaves offset gaps: the batch's last offset, not a message's, tells where the partition is.
      if (end !== undefined && BigInt(batch.lastOffset()) + 1n >= end) {
        finishPartition(batch.topic, batch.partition);
      }
      await heartbeat();
    } catch (e) {
      settle(e as Error);
    }
  };

  consumer.on(consumer.events.CRASH, ({ payload }) => {
    // kafkajs restarts the consumer after retriable errors; anything else ends the read.
    if (!payload.restart) settle(payload.error);
  });
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    for (const [topic, partitions] of Object.entries(payload.memberAssignment)) {
      for (const partition of partitions) {
        const k = tpKey(topic, partition);
        const next = position.get(k);
        if (next !== undefined && (o.follow || ends.has(k)))
          consumer.seek({ topic, partition, offset: next.toString() });
        else consumer.pause([{ topic, partitions: [partition] }]);
      }
    }
  });

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      settle("interrupted");
      // Stop fetching first: a batch under way finishes before the caller goes on.
      await consumer.stop().catch(() => undefined);
      await consumer.disconnect().catch(() => undefined);
      await deleteGroup(admin, groupId, o.log, 5_000);
      await admin.disconnect().catch(() => undefined);
    })();
    return stopped;
  };
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: o.topics, fromBeginning: true });
    await consumer.run({ autoCommit: false, partitionsConsumedConcurrently: 1, eachBatch });
  } catch (e) {
    await stop();
    throw e;
  }
  return { caughtUp, done, stop };
}

/** Deletes a group, retrying while it still has a member (leaving, or dead until its session expires). */
async function deleteGroup(admin: Admin, groupId: string, log: Logger | undefined, patienceMs: number) {
  const until = Date.now() + patienceMs;
  for (;;) {
    try {
      await admin.deleteGroups([groupId]);
      return;
    } catch (e) {
      const groups = (e as { groups?: { error?: { type?: string } }[] }).groups ?? [];
      if (groups.some((g) => g.error?.type === "GROUP_ID_NOT_FOUND")) return;
      if (Date.now() >= until) {
        log?.warn({ err: e, group: groupId }, "could not delete a reader's consumer group");
        return;
      }
      await delay(250);
    }
  }
}
