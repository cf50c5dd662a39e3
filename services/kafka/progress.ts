// "Caught up": a consumer group has committed, on every partition, at least the end offsets seen at start.
import type { Admin } from "kafkajs";

export type Offsets = Map<string, bigint>;

const key = (topic: string, partition: number) => `${topic}:${partition}`;

export async function endOffsets(admin: Admin, topics: string[]): Promise<Offsets> {
  const out: Offsets = new Map();
  for (const topic of topics) {
    for (const p of await admin.fetchTopicOffsets(topic)) out.set(key(topic, p.partition), BigInt(p.high));
  }
  return out;
}

export async function isCaughtUp(admin: Admin, groupId: string, targets: Offsets): Promise<boolean> {
  const topics = [...new Set([...targets.keys()].map((k) => k.slice(0, k.lastIndexOf(":"))))];
  const committed = await admin.fetchOffsets({ groupId, topics });
  const have: Offsets = new Map();
  for (const t of committed) {
    for (const p of t.partitions)
      have.set(key(t.topic, p.partition), BigInt(p.offset === "-1" ? "0" : p.offset));
  }
  for (const [k, end] of targets) if ((have.get(k) ?? 0n) < end) return false;
  return true;
}
