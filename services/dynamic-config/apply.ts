// Applying detector-config.v1 records to running detectors. The ActiveDetector objects are shared
// by every engine of a worker, so swapping their ctx and hash reconfigures all partitions at once;
// state is kept, and from then on each change carries the new config hash.
import type { ActiveDetector } from "../engine/engine.ts";
import type { KafkaTransport } from "../kafka/transport.ts";
import type { Logger } from "../log.ts";
import { type ConfigFollower, type ConfigRecord, followConfigTopic } from "./topic.ts";
import { checkDetectorConfig } from "./validate.ts";

export type ApplyResult = "applied" | "unchanged" | "ignored";

export function applyConfigRecord(
  active: readonly ActiveDetector[],
  r: ConfigRecord,
  log: Logger,
): ApplyResult {
  const where = { detector: r.detector, offset: r.offset };
  const a = active.find((x) => x.detector.id === r.detector);
  if (!a) {
    log.warn(where, "config record for a detector this process does not run: ignored");
    return "ignored";
  }
  if (r.parseError) {
    log.error({ ...where, reason: r.parseError }, "invalid detector config record ignored");
    return "ignored";
  }
  // A tombstone resets the detector to its defaults.
  const check = checkDetectorConfig(a.detector, r.value === null ? {} : r.value);
  if (!check.ok) {
    log.error({ ...where, reason: check.reason }, "invalid detector config record ignored");
    return "ignored";
  }
  if (check.hash === a.configHash) return "unchanged";
  const from = a.configHash;
  a.ctx = { ...a.ctx, config: check.config };
  a.configHash = check.hash;
  log.info({ ...where, from, config_hash: check.hash, config: check.config }, "detector config applied");
  return "applied";
}

/**
 * Keeps `active` on the config topic (a GlobalKTable of detector-config.v1): the whole topic is
 * applied before this resolves, then each change as it arrives. `onApplied` hears of each record
 * that changed an effective config; `serially` runs each application (under the caller's lock,
 * so that a change lands between batches).
 */
export async function followDetectorConfig(
  transport: KafkaTransport,
  topic: string,
  active: readonly ActiveDetector[],
  o: {
    log: Logger;
    onApplied?: (r: ConfigRecord) => void;
    serially?: (apply: () => Promise<void>) => Promise<void>;
  },
): Promise<ConfigFollower> {
  const apply = async (r: ConfigRecord) => {
    if (applyConfigRecord(active, r, o.log) === "applied") o.onApplied?.(r);
  };
  const follower = await followConfigTopic(
    transport,
    topic,
    (r) => (o.serially ? o.serially(() => apply(r)) : apply(r)),
    { log: o.log },
  );
  await follower.caughtUp;
  const hashes = Object.fromEntries(active.map((a) => [a.detector.id, a.configHash]));
  o.log.info({ topic, config_hashes: hashes }, "detector config loaded");
  return follower;
}
