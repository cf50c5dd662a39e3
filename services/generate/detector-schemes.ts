// The kit a detector's own scheme (Detector.scheme) plans its case with: a thin layer over World,
// so a new detector brings its labelled cases to `generate` without touching the generator.
import { dateOfDay } from "../../detectors/dates.ts";
import { type AnyDetector, DETECTORS } from "../../detectors/index.ts";
import type { SchemeItem, SchemeKit, SchemePlace, SchemeVisit } from "../../detectors/scheme-kit.ts";
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

type Scheming = AnyDetector & { scheme: NonNullable<AnyDetector["scheme"]> };

function planner(d: Scheming, rule: string): Planner {
  return (w, p) => {
    if (w.pools.drugs.length === 0) return false;
    const byCode = new Map(w.pools.drugs.map((x) => [x.code, x]));
    const places = new Map<string, number>();
    const visits: SchemeVisit[] = [];
    const kit: SchemeKit = {
      rule,
      rng: w.rng,
      firstDay: w.day0,
      lastDay: w.lastServiceDay,
      catalogs: w.catalogs,
      person: (o) => {
        shape(w, p, o.sex, o.minAge, o.maxAge, F_NO_BACKGROUND);
        return { birthDate: dateOfDay(w.birth[p] as number) };
      },
      drug: () => schemeItem(w.rng.pick(w.pools.drugs)),
      item: (it) => {
        byCode.set(it.code, {
          key: `scheme:${it.code}`,
          code: it.code,
          name: it.name,
          category: it.category,
          price: it.priceFen,
          qty: [1, 1],
          halves: false,
          fixedPrice: true,
        });
        return it;
      },
      diagnosis: (prefix) => {
        const d = w.pools.diagnoses.find((x) => x.code.startsWith(prefix));
        return d && { code: d.code, name: d.name, ...(d.sex ? { sex: d.sex } : {}) };
      },
      place: (type) => {
        const inst = type === "PHARMACY" ? w.pickPharmacy(p) : w.pickOutpatientPlace(p, false);
        const id = (w.institutions[inst] as { id: string }).id;
        places.set(id, inst);
        return { id, type } satisfies SchemePlace;
      },
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
      if (v.place && v.place.type !== v.type)
        throw new Error(`scheme of ${d.id}: a ${v.type} visit at a ${v.place.type} place`);
      const inst = v.place
        ? (places.get(v.place.id) as number)
        : v.type === "PHARMACY"
          ? w.pickPharmacy(p)
          : w.pickOutpatientPlace(p, w.ageAt(p, v.day) < 15);
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
        diagnoses: v.diagnoses?.map((x, i) => ({ code: x.code, name: x.name, primary: i === 0 })),
        bare: true,
        extraLines,
        scheme: { ctx, role: v.role, labels, fate: f },
      });
    }
    return true;
  };
}

/**
 * A planner per rule of each detector that declares a scheme, keyed by detector id (`id/rule` for a
 * detector of several rules), in registry order: `generate` runs each once per cycle.
 */
export const DETECTOR_SCHEMES: Readonly<Record<string, Planner>> = Object.fromEntries(
  DETECTORS.filter((d): d is Scheming => !!d.scheme).flatMap((d) => {
    const rules = Object.keys(d.rules);
    return rules.map((r) => [rules.length === 1 ? d.id : `${d.id}/${r}`, planner(d, r)] as const);
  }),
);
