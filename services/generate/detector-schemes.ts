// The kit a detector's own scheme (Detector.scheme) plans its case with: a thin layer over World,
// so a new detector brings its labelled cases to `generate` without touching the generator.
import { type AnyDetector, DETECTORS } from "../../detectors/index.ts";
import type { SchemeItem, SchemeKit, SchemeVisit } from "../../detectors/scheme-kit.ts";
import type { Item } from "./pools.ts";
import { fate, opDiagFor, type Planner, shape } from "./schemes.ts";
import { F_NO_BACKGROUND, type Fate, type LineSpec } from "./world.ts";

const H = 3600;

const schemeItem = (it: Item): SchemeItem => ({
  code: it.code,
  name: it.name,
  category: it.category,
  priceFen: it.price,
});

function planner(d: AnyDetector & { scheme: NonNullable<AnyDetector["scheme"]> }): Planner {
  return (w, p) => {
    if (w.pools.drugs.length === 0) return false;
    const byCode = new Map(w.pools.drugs.map((x) => [x.code, x]));
    const visits: SchemeVisit[] = [];
    const kit: SchemeKit = {
      rng: w.rng,
      firstDay: w.day0,
      lastDay: w.lastServiceDay,
      person: (o) => shape(w, p, o.sex, o.minAge, o.maxAge, F_NO_BACKGROUND),
      drug: () => schemeItem(w.rng.pick(w.pools.drugs)),
      visit: (v) => void visits.push(v),
    };
    const variant = d.scheme(kit);
    if (variant === undefined || visits.length === 0) return false;
    const ctx = w.newScheme(d.id, variant, p);
    // Visits of one day settle in the order planned, an hour apart from 09:00.
    const perDay = new Map<number, number>();
    for (const v of visits) {
      const nth = perDay.get(v.day) ?? 0;
      perDay.set(v.day, nth + 1);
      const inst =
        v.type === "PHARMACY" ? w.pickPharmacy(p) : w.pickOutpatientPlace(p, w.ageAt(p, v.day) < 15);
      const extraLines: LineSpec[] = v.lines.map((l) => {
        const item = byCode.get(l.item.code);
        if (!item) throw new Error(`scheme of ${d.id}: ${l.item.code} is not an item the kit gave`);
        return { item, qty: l.quantity, day: v.day };
      });
      const labels = (v.findings ?? []).map((f) => ({
        detector: d.id,
        rule: f.rule,
        related: [...(f.related ?? [])],
      }));
      const f: Fate = v.mayReverse ? fate(w) : "keep";
      w.plan(v.day, 9 * H + nth * H + w.rng.int(0, 1800), {
        p,
        inst,
        type: v.type,
        adm: v.day,
        dis: v.day,
        reason: null,
        diag: opDiagFor(w, p, v.day),
        bare: true,
        extraLines,
        scheme: { ctx, role: v.role, labels, fate: f },
      });
    }
    return true;
  };
}

/** A planner per detector that declares a scheme, keyed by detector id. */
export const DETECTOR_SCHEMES: Readonly<Record<string, Planner>> = Object.fromEntries(
  DETECTORS.filter((d): d is AnyDetector & { scheme: NonNullable<AnyDetector["scheme"]> } => !!d.scheme).map(
    (d) => [d.id, planner(d)],
  ),
);
