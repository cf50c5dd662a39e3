// "Caught up": a consumer group has committed, on every partition, at least the end offsets seen at start.
import { type TransportAdmin, tpKey } from "./transport.ts";

export type Offsets = Map<string, bigint>;

export async function endOffsets(admin: TransportAdmin, topics: string[]): Promise<Offsets> {
  const out: Offsets = new Map();
  for (const topic of topics)
    for (const [p, end] of await admin.endOffsets(topic)) out.set(tpKey(topic, p), end);
  return out;
}

export async function isCaughtUp(admin: TransportAdmin, groupId: string, targets: Offsets): Promise<boolean> {
  const topics = [...new Set([...targets.keys()].map((k) => k.slice(0, k.lastIndexOf(":"))))];
  const have: Offsets = new Map();
  for (const topic of topics)
    for (const [p, offset] of await admin.committed(groupId, topic)) have.set(tpKey(topic, p), offset);
  for (const [k, end] of targets) if ((have.get(k) ?? 0n) < end) return false;
  return true;
}
