// Related settlements of a finding (settlement_ids[1..]: the previous stay, the overlapping
// stays, the first copy of a line) may lie in regions the caller was not granted. For such a
// caller they are replaced wherever a suspect shows them: the id by a numbered marker (stable
// for one suspect, so the evidence still links up), the institution and other facts by a
// marker; dates stay, so the finding still reads ("a stay at another region's institution,
// 12 days before"). Users who see every region get the suspect as stored.
import type { User } from "./auth.ts";

export const OUTSIDE_REGIONS = "(outside your regions)";
const idMarker = (n: number) => `(outside your regions #${n})`;

/** `settlement_id`, `first_settlement_id`, …: the prefix names the facts of that settlement. */
const ID_KEY = /^(.*)settlement_id$/;
/** Facts of a hidden settlement that are kept: its dates and times. */
const KEPT_KEY = /(_date|_at)$/;

export class RelatedRedaction {
  private readonly markers = new Map<string, string>();

  /** `hidden` undefined: not looked up, so every related settlement is hidden (fail closed). */
  constructor(settlementIds: readonly string[], hidden: readonly string[] | undefined) {
    const h = hidden ? new Set(hidden) : undefined;
    for (const id of settlementIds.slice(1))
      if ((!h || h.has(id)) && !this.markers.has(id)) this.markers.set(id, idMarker(this.markers.size + 1));
  }

  /** Null when the user sees every region, or the suspect names no hidden settlement. */
  static of(
    user: User,
    row: { settlement_ids: readonly string[]; hidden_related?: readonly string[] },
  ): RelatedRedaction | null {
    if (user.regions === null) return null;
    const r = new RelatedRedaction(row.settlement_ids, row.hidden_related);
    return r.markers.size > 0 ? r : null;
  }

  ids(ids: readonly string[]): string[] {
    return ids.map((id) => this.markers.get(id) ?? id);
  }

  /** A deep copy of `value` with hidden settlements' ids replaced and their facts (but dates) masked. */
  evidence(value: unknown): unknown {
    if (typeof value === "string") return this.markers.get(value) ?? value;
    if (Array.isArray(value)) return value.map((v) => this.evidence(v));
    if (value === null || typeof value !== "object") return value;
    const entries = Object.entries(value);
    const prefixes: string[] = [];
    for (const [k, v] of entries) {
      const m = ID_KEY.exec(k);
      if (m && typeof v === "string" && this.markers.has(v)) prefixes.push(m[1] as string);
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of entries) {
      if (!prefixes.some((p) => k.startsWith(p)) || KEPT_KEY.test(k)) out[k] = this.evidence(v);
      else out[k] = (typeof v === "string" && this.markers.get(v)) || OUTSIDE_REGIONS;
    }
    return out;
  }
}
