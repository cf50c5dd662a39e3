// Applying detector-config.v1 records to running detectors. The ActiveDetector objects are shared
// by every engine of a worker, so swapping their ctx and hash reconfigures all partitions at once;
// state is kept, and from then on each change carries the new config hash.
import type { ActiveDetector } from "../engine/engine.ts";
import type { Logger } from "../log.ts";
import type { ConfigRecord } from "./topic.ts";
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
