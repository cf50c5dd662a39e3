import { createHash } from "node:crypto";

/**
 * A finding is one rule firing on one suspect settlement, so its id hashes exactly that:
 * re-evaluation, re-delivery, replays and restarts all land on the same row, and a case's
 * workflow history stays attached while its evidence is refined by late events.
 */
export function suspectId(detector: string, rule: string, settlementId: string): string {
  return createHash("sha256")
    .update(`${detector}\u0000${rule}\u0000${settlementId}`)
    .digest("hex")
    .slice(0, 32);
}
