// Topic names and their definitions: inputs co-partitioned by person_id, compacted where a key's latest value is all that matters.
import type { TopicSpec, TransportAdmin } from "./transport.ts";

export interface Topics {
  settlements: string;
  deaths: string;
  deadletter: string;
  suspects: string;
  /** Per consumer group: the engine's per-person state, so each group restores its own. */
  changelog(group: string): string;
}

export function topicNames(prefix = ""): Topics {
  return {
    settlements: `${prefix}settlements.v1`,
    deaths: `${prefix}deaths.v1`,
    deadletter: `${prefix}deadletter.v1`,
    suspects: `${prefix}suspects.v1`,
    changelog: (group) => `${prefix}fundguard-state.${group}.changelog`,
  };
}

const compacted = { "cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1" };

/** What the dead-letter topic accepts per record batch; larger letters are truncated to fit (deadletter.ts). */
export const DEADLETTER_MAX_MESSAGE_BYTES = 1 << 20;
/**
 * A suspect's evidence is bounded (detectors/sdk.ts), but its settlement ids are not shortened, and
 * 51 of the contract's longest strings exceed the default 1 MiB: room for the worst case.
 */
export const SUSPECTS_MAX_MESSAGE_BYTES = 16 << 20;

export function inputTopicConfigs(t: Topics, partitions: number): TopicSpec[] {
  return [
    { topic: t.settlements, partitions },
    { topic: t.deaths, partitions, configs: compacted },
    {
      topic: t.deadletter,
      partitions: 1,
      configs: { "max.message.bytes": String(DEADLETTER_MAX_MESSAGE_BYTES) },
    },
    {
      topic: t.suspects,
      partitions,
      configs: { "max.message.bytes": String(SUSPECTS_MAX_MESSAGE_BYTES) },
    },
  ];
}

/** A topic's effective max.message.bytes: its own setting, or the broker's default it inherits. */
export async function maxMessageBytes(admin: TransportAdmin, topic: string): Promise<number> {
  const value = Number(await admin.topicConfig(topic, "max.message.bytes"));
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new Error(`${topic}: no max.message.bytes in its config`);
  return value;
}

/** Settlements and deaths must be co-partitioned, or a person's events would meet in different workers. */
export async function checkCoPartitioned(
  partitionsOf: (topic: string) => Promise<number>,
  t: Topics,
): Promise<number> {
  const [s, d] = await Promise.all([partitionsOf(t.settlements), partitionsOf(t.deaths)]);
  if (s === 0 || d === 0) {
    throw new Error(
      `input topics missing: ${t.settlements} has ${s} partitions, ${t.deaths} has ${d}; run 'fundguard topics create'`,
    );
  }
  if (s !== d) {
    throw new Error(
      `${t.settlements} has ${s} partitions but ${t.deaths} has ${d}: they must be co-partitioned (same count, key person_id)`,
    );
  }
  return s;
}

/** A person's state can outgrow the default 1 MiB record limit (long stays, many lines). */
export const CHANGELOG_MAX_MESSAGE_BYTES = 16 << 20;

export function changelogConfig(t: Topics, group: string, partitions: number): TopicSpec {
  return {
    topic: t.changelog(group),
    partitions,
    configs: { ...compacted, "max.message.bytes": String(CHANGELOG_MAX_MESSAGE_BYTES) },
  };
}
