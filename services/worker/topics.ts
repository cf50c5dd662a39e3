// What a worker checks and creates among its topics before it joins its group, and the limits it
// takes from them.
import {
  changelogConfig,
  checkCoPartitioned,
  inputTopicConfigs,
  maxMessageBytes,
  type Topics,
} from "../kafka/topics.ts";
import type { TransportAdmin } from "../kafka/transport.ts";

export interface WorkerTopics {
  /** The input topics' partition count (they are co-partitioned). */
  partitions: number;
  /** The dead-letter topic's max.message.bytes: letters are cut to it, as one refused would fail every flush. */
  deadLetterBytes: number;
  /** The changelog's delete.retention.ms: a local store older than this may miss a tombstone compaction dropped. */
  resumeWithinMs: number;
}

export async function prepareTopics(
  admin: TransportAdmin,
  o: { topics: Topics; group: string; createPartitions?: number; suspectsToTopic: boolean },
): Promise<WorkerTopics> {
  // A worker may start before anything was produced: create missing topics, then insist on co-partitioning.
  if (o.createPartitions) await admin.createTopics(inputTopicConfigs(o.topics, o.createPartitions));
  const partitions = await checkCoPartitioned((topic) => admin.partitions(topic), o.topics);
  // Suspects go to the partition of their person's input partition, so a restore reads only its own.
  if (o.suspectsToTopic && (await admin.partitions(o.topics.suspects)) !== partitions) {
    throw new Error(`${o.topics.suspects} must have ${partitions} partitions, as the input topics`);
  }
  await admin.createTopics([changelogConfig(o.topics, o.group, partitions)]);
  const retention = await admin.topicConfig(o.topics.changelog(o.group), "delete.retention.ms");
  return {
    partitions,
    deadLetterBytes: await maxMessageBytes(admin, o.topics.deadletter),
    // Kafka's default where the broker reports none.
    resumeWithinMs: Number(retention ?? 86_400_000),
  };
}
