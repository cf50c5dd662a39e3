// Injected schemes: each picks a person, shapes them to fit, and plans the settlements that
// make exactly the labelled finding(s) and nothing else. Labels come from this construction
// (written when the suspect settlement is rendered), never from running the detectors.
import { birthdayAt, dayOfYmd, isLeapYear, ymd } from "./calendar.ts";
import type { Diag, Item, Sex } from "./pools.ts";
import {
  F_NO_BG_STAYS,
  F_NO_CAP,
  F_NO_REVERSE,
  F_SCHEME,
  type Fate,
  type LabelSpec,
  type LineSpec,
  type SchemeCtx,
  type Spec,
  World,
} from "./world.ts";

export type Planner = (w: World, p: number) => boolean;

const H = 3600;
const label = (detector: string, rule: string, related: string[] = []): LabelSpec => ({
  detector,
  rule,
  related,
});

export function fate(w: World): Fate {
  const u = w.rng.float();
  return u < 0.1 ? "reverse" : u < 0.2 ? "resubmit" : "keep";
}

/** Resets `p` to a plain scheme person of the given sex and age (in years at the start). */
export function shape(
  w: World,
  p: number,
  sex: Sex | undefined,
  minAge: number,
  maxAge: number,
  flags = 0,
): void {
  const s = sex ?? (w.rng.chance(0.5) ? "M" : "F");
  const age = w.rng.int(minAge, maxAge);
  w.setBasics(p, s, w.day0 - age * 365 - w.rng.int(0, 364));
  w.death[p] = World.NO_DEATH;
  w.chronic[p] = -1;
  w.resident[p] = age < 18 ? 1 : w.rng.chance(0.5) ? 1 : 0;
  w.flags[p] = F_SCHEME | flags;
}

function role(ctx: SchemeCtx, name: string, labels: LabelSpec[] = [], f: Fate = "keep"): Spec["scheme"] {
  return { ctx, role: name, labels, fate: f };
}

export const opDiagFor = (w: World, p: number, day: number): Diag => {
  const age = w.ageAt(p, day);
  const sex = w.sexOf(p);
  const options = ["J06.900", "K29.700", "M54.500", "A09.900", "L30.900", "J02.900"]
    .map((c) => w.diag(c))
    .filter((d) => age >= d.ages[0] && age <= d.ages[1] && (!d.sex || d.sex === sex));
  return w.rng.pick(options.length > 0 ? options : [w.diag("J06.900")]);
};

const ipDiagFor = (w: World, p: number, day: number, codes: readonly string[]): Diag => {
  const age = w.ageAt(p, day);
  const sex = w.sexOf(p);
  const options = codes
    .map((c) => w.diag(c))
    .filter((d) => age >= d.ages[0] && age <= d.ages[1] && (!d.sex || d.sex === sex));
  return w.rng.pick(options.length > 0 ? options : [w.diag("J18.900")]);
};

const COMMON_STAYS = ["J18.900", "I25.103", "J44.900", "E11.900", "I63.900", "I10.x00", "K80.200"] as const;

function visit(
  p: number,
  inst: number,
  type: "OUTPATIENT" | "PHARMACY",
  day: number,
  diag: Diag,
  extra: LineSpec[] = [],
): Spec {
  return { p, inst, type, adm: day, dis: day, reason: null, diag, extraLines: extra };
}

function stay(
  p: number,
  inst: number,
  adm: number,
  dis: number,
  diag: Diag,
  reason: Spec["reason"] = "NORMAL",
): Spec {
  return { p, inst, type: "INPATIENT", adm, dis, reason, diag };
}

const busy = (w: World) => w.rng.int(8 * H, 11 * H);
const afternoon = (w: World) => w.rng.int(14 * H, 17 * H);

// ------------------------------------------------------------------ pediatric_drug

/** A child whose `limit`-th birthday falls on `t` (never a 29 February). */
function birthdayPerson(w: World, p: number, limit: number, t: number, flags = 0): boolean {
  const [ty, tm, td] = ymd(t);
  if (tm === 2 && td === 29) return false;
  shape(w, p, undefined, 10, 10, flags);
  const birth = dayOfYmd(ty - limit, tm, td);
  w.setBasics(p, w.sexOf(p), birth);
  w.resident[p] = 1;
  return birthdayAt(birth, limit) === t && w.ageAt(p, t) === limit && w.ageAt(p, t - 1) === limit - 1;
}

function pediatricItem(w: World): Item | undefined {
  return w.pools.pediatric.length > 0 ? w.rng.pick(w.pools.pediatric) : undefined;
}

const pediatricBirthday: Planner = (w, p) => {
  const e = pediatricItem(w);
  if (!e || w.days < 40) return false;
  const limit = e.ageLimit as number;
  const t = w.rng.int(w.day0 + 25, w.lastServiceDay - 3);
  if (!birthdayPerson(w, p, limit, t)) return false;
  const ctx = w.newScheme("pediatric_drug", "birthday", p);
  const k = w.rng.chance(0.5) ? 1 : w.rng.int(2, 20);
  const type = () => (w.rng.chance(0.6) ? "PHARMACY" : "OUTPATIENT") as "PHARMACY" | "OUTPATIENT";
  const place = (tp: string) => (tp === "PHARMACY" ? w.pickPharmacy(p) : w.pickOutpatientPlace(p, true));
  const t1 = type();
  const before = visit(p, place(t1), t1, t - k, w.diag("J06.900"), [{ item: e, qty: 1, day: t - k }]);
  w.plan(t - k, busy(w), { ...before, scheme: role(ctx, "before") });
  const t2 = type();
  const on = visit(p, place(t2), t2, t, w.diag("J06.900"), [{ item: e, qty: 1, day: t }]);
  w.plan(t, afternoon(w), {
    ...on,
    scheme: role(ctx, "suspect", [label("pediatric_drug", "pediatric_drug")], fate(w)),
  });
  return true;
};

const pediatricAdult: Planner = (w, p) => {
  const e = pediatricItem(w);
  if (!e || w.days < 10) return false;
  shape(w, p, undefined, Math.max(19, (e.ageLimit as number) + 1), 75);
  const t = w.rng.int(w.day0 + 3, w.lastServiceDay - 3);
  const ctx = w.newScheme("pediatric_drug", "adult", p);
  const tp = w.rng.chance(0.5) ? "PHARMACY" : "OUTPATIENT";
  const inst = tp === "PHARMACY" ? w.pickPharmacy(p) : w.pickOutpatientPlace(p, false);
  const spec = visit(p, inst, tp, t, opDiagFor(w, p, t), [{ item: e, qty: w.rng.int(1, 3), day: t }]);
  w.plan(t, busy(w), {
    ...spec,
    scheme: role(ctx, "suspect", [label("pediatric_drug", "pediatric_drug")], fate(w)),
  });
  return true;
};

/** A stay across the birthday: the same drug on the eve (clean) and on the day (a finding) in one settlement. */
const pediatricStay: Planner = (w, p) => {
  const e = pediatricItem(w);
  if (!e || w.days < 40) return false;
  const limit = e.ageLimit as number;
  const t = w.rng.int(w.day0 + 25, w.lastServiceDay - 8);
  if (!birthdayPerson(w, p, limit, t, F_NO_BG_STAYS)) return false;
  const ctx = w.newScheme("pediatric_drug", "stay_over_birthday", p);
  const adm = t - w.rng.int(1, 3);
  const dis = t + w.rng.int(2, 5);
  const spec = stay(
    p,
    w.pickHospital(p, { maternity: true }),
    adm,
    dis,
    ipDiagFor(w, p, adm, ["J18.900", "J20.900"]),
  );
  spec.extraLines = [
    { item: e, qty: 1, day: t - 1 },
    { item: e, qty: 1, day: t },
  ];
  w.plan(dis, afternoon(w), {
    ...spec,
    scheme: role(ctx, "suspect", [label("pediatric_drug", "pediatric_drug")], fate(w)),
  });
  return true;
};

/** Born on 29 February: in a common year the limit is reached on 1 March, not on 28 February. */
const pediatricLeapDay: Planner = (w, p) => {
  const limits = [...new Set(w.pools.pediatric.map((x) => x.ageLimit as number))];
  const options: { limit: number; mar1: number }[] = [];
  for (let y = w.startYear; y <= w.startYear + 1; y++) {
    if (isLeapYear(y)) continue;
    const mar1 = dayOfYmd(y, 3, 1);
    if (mar1 - 1 < w.day0 + 1 || mar1 > w.lastServiceDay) continue;
    for (const limit of limits) if (isLeapYear(y - limit)) options.push({ limit, mar1 });
  }
  if (options.length === 0) return false;
  const { limit, mar1 } = w.rng.pick(options);
  const e = w.rng.pick(w.pools.pediatric.filter((x) => x.ageLimit === limit));
  const [y] = ymd(mar1);
  shape(w, p, undefined, 10, 10);
  w.setBasics(p, w.sexOf(p), dayOfYmd(y - limit, 2, 29));
  w.resident[p] = 1;
  if (w.ageAt(p, mar1) !== limit || w.ageAt(p, mar1 - 1) !== limit - 1) return false;
  const ctx = w.newScheme("pediatric_drug", "leap_day_birthday", p);
  const ph1 = w.pickPharmacy(p);
  w.plan(mar1 - 1, busy(w), {
    ...visit(p, ph1, "PHARMACY", mar1 - 1, w.diag("J06.900"), [{ item: e, qty: 1, day: mar1 - 1 }]),
    scheme: role(ctx, "before"),
  });
  const ph2 = w.pickPharmacy(p);
  const on = visit(p, ph2, "PHARMACY", mar1, w.diag("J06.900"), [{ item: e, qty: 1, day: mar1 }]);
  w.plan(mar1, afternoon(w), {
    ...on,
    scheme: role(ctx, "suspect", [label("pediatric_drug", "pediatric_drug")], fate(w)),
  });
  return true;
};

const pediatric: Planner = (w, p) => {
  const u = w.rng.float();
  if (u < 0.12 && pediatricLeapDay(w, p)) return true;
  if (u < 0.5) return pediatricBirthday(w, p) || pediatricAdult(w, p);
  if (u < 0.75) return pediatricStay(w, p) || pediatricAdult(w, p);
  return pediatricAdult(w, p);
};

// ------------------------------------------------------------------ gender_mismatch

const genderMismatch: Planner = (w, p) => {
  if (w.days < 10) return false;
  const sex: Sex = w.rng.chance(0.5) ? "M" : "F";
  const wrong: Sex = sex === "M" ? "F" : "M";
  shape(w, p, sex, 22, 75);
  const t = w.rng.int(w.day0 + 3, w.lastServiceDay - 3);
  const item = w.rng.chance(0.5);
  const diagnoses = w.pools.sexDiagnoses[wrong];
  const items = w.pools.sexItems[wrong];
  const ctx = w.newScheme("gender_mismatch", item ? "item" : "diagnosis", p);
  const sus = (s: Spec) => ({
    ...s,
    scheme: role(ctx, "suspect", [label("gender_mismatch", "gender_mismatch")], fate(w)),
  });
  if (item && items.length > 0) {
    const it = w.rng.pick(items);
    const tp = it.category === "DRUG" && w.rng.chance(0.5) ? "PHARMACY" : "OUTPATIENT";
    const inst = tp === "PHARMACY" ? w.pickPharmacy(p) : w.pickHospital(p);
    w.plan(t, busy(w), sus(visit(p, inst, tp, t, opDiagFor(w, p, t), [{ item: it, qty: 1, day: t }])));
    return true;
  }
  if (diagnoses.length === 0) return false;
  ctx.variant = "diagnosis";
  const d = w.rng.pick(diagnoses);
  const spec = visit(p, w.pickHospital(p), "OUTPATIENT", t, opDiagFor(w, p, t));
  if (w.rng.chance(0.5)) {
    ctx.variant = "primary_diagnosis";
    spec.diagnoses = [{ code: d.code, name: d.name, primary: true }];
    spec.bare = true;
    spec.extraLines = [
      { item: w.pools.item("ultrasound"), qty: 1, day: t },
      { item: w.pools.item("cbc"), qty: 1, day: t },
    ];
  } else {
    ctx.variant = "secondary_diagnosis";
    spec.extraDiagnoses = [{ code: d.code, name: d.name, primary: false }];
  }
  w.plan(t, busy(w), sus(spec));
  return true;
};

// ------------------------------------------------------------------ frequent_admission

const readmission: Planner = (w, p) => {
  if (w.days < 50) return false;
  shape(w, p, undefined, 45, 88, F_NO_BG_STAYS);
  const a1 = w.rng.int(w.day0 + 3, w.lastServiceDay - 45);
  const diag = ipDiagFor(w, p, a1, COMMON_STAYS);
  const dis1 = a1 + w.rng.int(diag.los?.[0] ?? 4, diag.los?.[1] ?? 10);
  const u = w.rng.float();
  const gap = u < 0.25 ? 0 : u < 0.5 ? 15 : w.rng.int(1, 14);
  const a2 = dis1 + gap;
  const dis2 = a2 + w.rng.int(2, 9);
  if (dis2 > w.lastServiceDay) return false;
  const inst = w.pickHospital(p);
  const ctx = w.newScheme("frequent_admission", `readmission_gap_${gap}`, p);
  w.plan(dis1, busy(w), { ...stay(p, inst, a1, dis1, diag), scheme: role(ctx, "previous") });
  const s = stay(p, inst, a2, dis2, diag);
  w.plan(dis2, afternoon(w), {
    ...s,
    scheme: role(ctx, "suspect", [label("frequent_admission", "readmission", ["previous"])], fate(w)),
  });
  return true;
};

/** Four stays at four different hospitals whose admissions span `span` days (≤ 179: a finding; 180: clean). */
function fourStays(w: World, p: number, span: number, ctx: SchemeCtx, labelled: boolean): boolean {
  const hospitals = w.hospitalsFor(p).filter((h) => !(w.institutions[h] as { mch: boolean }).mch);
  if (hospitals.length < 4) return false;
  if (w.lastServiceDay - span - 8 < w.day0 + 2) return false;
  const insts = w.rng.sample(hospitals, 4);
  const a1 = w.rng.int(w.day0 + 2, w.lastServiceDay - span - 8);
  const adm = [
    a1,
    a1 + Math.floor(span / 3) + w.rng.int(-4, 4),
    a1 + Math.floor((2 * span) / 3) + w.rng.int(-4, 4),
    a1 + span,
  ];
  const dis = adm.map((a) => a + w.rng.int(2, 6));
  for (let i = 0; i < 3; i++) if ((dis[i] as number) >= (adm[i + 1] as number)) return false;
  if ((dis[3] as number) > w.lastServiceDay) return false;
  for (let i = 0; i < 4; i++) {
    const spec = stay(
      p,
      insts[i] as number,
      adm[i] as number,
      dis[i] as number,
      ipDiagFor(w, p, adm[i] as number, COMMON_STAYS),
    );
    const labels =
      labelled && i === 3 ? [label("frequent_admission", "high_frequency", ["s1", "s2", "s3"])] : [];
    w.plan(dis[i] as number, i === 3 ? afternoon(w) : busy(w), {
      ...spec,
      scheme: role(ctx, `s${i + 1}`, labels, labels.length > 0 ? fate(w) : "keep"),
    });
  }
  return true;
}

const highFrequency: Planner = (w, p) => {
  if (w.days < 200) return false;
  shape(w, p, undefined, 50, 90, F_NO_BG_STAYS);
  const span = w.rng.chance(0.25) ? 179 : w.rng.int(100, 178);
  return fourStays(w, p, span, w.newScheme("frequent_admission", `high_frequency_span_${span}`, p), true);
};

// ------------------------------------------------------------------ duplicate_billing

const duplicateLine: Planner = (w, p) => {
  if (w.days < 20) return false;
  shape(w, p, undefined, 20, 85);
  const t = w.rng.int(w.day0 + 3, w.lastServiceDay - 12);
  const u = w.rng.float();
  if (u < 0.3) {
    // A stay, then a supplementary outpatient settlement at the same hospital re-billing one of its lines.
    w.flags[p] = (w.flags[p] as number) | F_NO_BG_STAYS;
    const diag = ipDiagFor(w, p, t, COMMON_STAYS);
    const dis = t + w.rng.int(3, 8);
    const k = w.rng.int(0, 3);
    if (dis + k > w.lastServiceDay) return false;
    const inst = w.pickHospital(p);
    const ctx = w.newScheme("duplicate_billing", "stay_then_supplementary", p);
    w.plan(dis, w.rng.int(9 * H, 11 * H), { ...stay(p, inst, t, dis, diag), scheme: role(ctx, "first") });
    const b = visit(p, inst, "OUTPATIENT", dis + k, diag);
    b.copy = { role: "first", mode: "one" };
    w.plan(dis + k, afternoon(w), {
      ...b,
      scheme: role(ctx, "suspect", [label("duplicate_billing", "duplicate_line", ["first"])], fate(w)),
    });
    return true;
  }
  const triple = u > 0.8;
  const inst = w.pickOutpatientPlace(p, false);
  const diag = opDiagFor(w, p, t);
  const ctx = w.newScheme("duplicate_billing", triple ? "same_day_triple" : "same_day_twice", p);
  const first = w.rng.int(8 * H, 10 * H);
  w.plan(t, first, { ...visit(p, inst, "OUTPATIENT", t, diag), scheme: role(ctx, "first") });
  const copies = triple ? ["second", "third"] : ["suspect"];
  copies.forEach((name, i) => {
    const b = visit(p, inst, "OUTPATIENT", t, diag);
    b.copy = { role: "first", mode: "all" };
    const f = triple ? "keep" : fate(w);
    w.plan(t, first + (i + 1) * w.rng.int(H, 3 * H), {
      ...b,
      scheme: role(ctx, name, [label("duplicate_billing", "duplicate_line", ["first"])], f),
    });
  });
  return true;
};

const overlappingStays: Planner = (w, p) => {
  if (w.days < 30) return false;
  shape(w, p, undefined, 40, 88, F_NO_BG_STAYS);
  const a1 = w.rng.int(w.day0 + 3, w.lastServiceDay - 25);
  const d1 = a1 + w.rng.int(5, 12);
  const a2 = w.rng.int(a1 + 1, d1 - 1);
  const d2 = a2 + w.rng.int(2, 9);
  if (d2 > w.lastServiceDay) return false;
  const h1 = w.pickHospital(p);
  const h2 = w.pickHospital(p, { exclude: [h1] });
  const ctx = w.newScheme("duplicate_billing", d2 <= d1 ? "overlapping_nested" : "overlapping_extending", p);
  w.plan(d1, busy(w), {
    ...stay(p, h1, a1, d1, ipDiagFor(w, p, a1, COMMON_STAYS)),
    scheme: role(ctx, "first"),
  });
  const b = stay(p, h2, a2, d2, ipDiagFor(w, p, a2, COMMON_STAYS));
  w.plan(d2, afternoon(w), {
    ...b,
    scheme: role(ctx, "suspect", [label("duplicate_billing", "overlapping_stays", ["first"])], fate(w)),
  });
  return true;
};

const outpatientDuringStay: Planner = (w, p) => {
  if (w.days < 30) return false;
  shape(w, p, undefined, 30, 88, F_NO_BG_STAYS);
  const a = w.rng.int(w.day0 + 3, w.lastServiceDay - 20);
  const dis = a + w.rng.int(3, 12);
  const v = w.rng.int(a + 1, dis - 1);
  const inst = w.pickHospital(p);
  const ctx = w.newScheme("duplicate_billing", "outpatient_during_stay", p);
  w.plan(dis, afternoon(w), {
    ...stay(p, inst, a, dis, ipDiagFor(w, p, a, COMMON_STAYS)),
    scheme: role(ctx, "stay"),
  });
  const pharmacy = w.rng.chance(0.6);
  const spec = pharmacy
    ? visit(p, w.pickPharmacy(p), "PHARMACY", v, opDiagFor(w, p, v))
    : visit(p, w.pickClinic(p), "OUTPATIENT", v, opDiagFor(w, p, v));
  if (pharmacy) ctx.variant = "pharmacy_during_stay";
  w.plan(v, busy(w), {
    ...spec,
    scheme: role(ctx, "suspect", [label("duplicate_billing", "outpatient_during_stay", ["stay"])], fate(w)),
  });
  return true;
};

// ------------------------------------------------------------------ deceased_activity

const deceased: Planner = (w, p) => {
  if (w.days < 40) return false;
  const variant = w.rng.float();
  shape(w, p, undefined, 55, 92, variant < 0.3 ? F_NO_BG_STAYS : 0);
  const D = w.rng.int(w.day0 + 15, w.lastServiceDay - 8);
  const delay = w.rng.int(14, Math.min(56, w.lastEventDay - D));
  const report = D + delay;
  const recordFirst = w.rng.chance(0.5) && report + 1 <= w.lastServiceDay;
  const ctx = w.newScheme("deceased_activity", "", p);
  const sus = (s: Spec) => ({
    ...s,
    scheme: role(ctx, "suspect", [label("deceased_activity", "deceased_activity")], fate(w)),
  });
  if (variant < 0.3) {
    // A stay billed past the death: discharged NORMAL after the death date.
    const adm = D - w.rng.int(1, 5);
    const dis = recordFirst
      ? Math.min(w.lastServiceDay, report + w.rng.int(1, 5))
      : D + w.rng.int(1, Math.min(6, delay - 1));
    if (dis > w.lastServiceDay || dis <= D || adm < w.day0) return false;
    ctx.variant = `stay_past_death_record_${recordFirst ? "before" : "after"}`;
    w.planDeath(p, D, false, delay);
    w.plan(
      dis,
      afternoon(w),
      sus(stay(p, w.pickHospital(p), adm, dis, ipDiagFor(w, p, adm, ["I63.900", "J18.900", "I50.900"]))),
    );
    return true;
  }
  const s = recordFirst
    ? w.rng.int(report + 1, Math.min(w.lastServiceDay, report + 25))
    : w.rng.int(D + 1, Math.min(report - 1, w.lastServiceDay));
  if (s <= D || s > w.lastServiceDay) return false;
  const pharmacy = variant < 0.75;
  ctx.variant = `${pharmacy ? "pharmacy" : "outpatient"}_after_death_record_${recordFirst ? "before" : "after"}`;
  // Half of them died in hospital (a legitimate stay ending in death, settled after it).
  w.planDeath(p, D, w.rng.chance(0.5), delay);
  const inst = pharmacy ? w.pickPharmacy(p) : w.pickClinic(p);
  w.plan(s, busy(w), sus(visit(p, inst, pharmacy ? "PHARMACY" : "OUTPATIENT", s, opDiagFor(w, p, s))));
  return true;
};

// ------------------------------------------------------------------ high_out_of_pocket

const highOutOfPocket: Planner = (w, p) => {
  shape(w, p, undefined, 45, 80, F_NO_BG_STAYS | F_NO_CAP | F_NO_REVERSE);
  w.resident[p] = 1;
  // The calendar year with the most service days in the span.
  const [y0] = ymd(w.day0);
  let lo = w.day0;
  let hi = Math.min(w.lastServiceDay, dayOfYmd(y0, 12, 31));
  if (w.lastServiceDay >= dayOfYmd(y0 + 1, 1, 1) && w.lastServiceDay - dayOfYmd(y0 + 1, 1, 1) > hi - lo) {
    lo = dayOfYmd(y0 + 1, 1, 1);
    hi = w.lastServiceDay;
  }
  if (hi - lo < 60) return false;
  const inst = w.pickHospital(p, { severe: true });
  const diag = ipDiagFor(w, p, lo, ["C34.900", "C16.900"]);
  const ctx = w.newScheme("high_out_of_pocket", "", p);
  const selfPay = w.pools.selfPay;
  const stays: Spec[] = [];
  let a = lo + w.rng.int(0, 20);
  const wanted = w.rng.int(2, 3);
  while (stays.length < wanted) {
    const dis = a + w.rng.int(4, 8);
    if (dis > hi) break;
    const spec = stay(p, inst, a, dis, diag);
    const lines = w.rng.int(1, 3);
    spec.extraLines = [];
    for (let i = 0; i < lines && selfPay.length > 0; i++) {
      spec.extraLines.push({
        item: w.rng.pick(selfPay),
        qty: 1,
        day: a + 1 + (i % Math.max(1, dis - a - 1)),
      });
    }
    stays.push(spec);
    a = dis + w.rng.int(25, 50);
  }
  if (stays.length < 2) return false;
  ctx.variant = `${stays.length}_costly_stays`;
  for (const [i, spec] of stays.entries())
    w.plan(spec.dis, afternoon(w), { ...spec, scheme: role(ctx, `stay${i + 1}`) });
  return true;
};

// ------------------------------------------------------------------ decoys (no finding by design)

const decoy: Planner = (w, p) => {
  if (w.days < 60) return false;
  const v = w.rng.int(0, 7);
  shape(w, p, undefined, 30, 85, F_NO_BG_STAYS | F_NO_REVERSE);
  const ctx = w.newScheme("decoy", "", p);
  const t = w.rng.int(w.day0 + 5, w.lastServiceDay - 45);
  const keep = (name: string) => role(ctx, name);
  switch (v) {
    case 0: {
      // Readmission after 16 days: one day past the rule.
      ctx.variant = "readmission_gap_16";
      const inst = w.pickHospital(p);
      const diag = ipDiagFor(w, p, t, COMMON_STAYS);
      const d1 = t + w.rng.int(3, 8);
      const a2 = d1 + 16;
      const d2 = a2 + w.rng.int(2, 6);
      w.plan(d1, busy(w), { ...stay(p, inst, t, d1, diag), scheme: keep("s1") });
      w.plan(d2, busy(w), { ...stay(p, inst, a2, d2, diag), scheme: keep("s2") });
      return true;
    }
    case 1:
      ctx.variant = "four_stays_over_180_days";
      return w.days >= 200 && fourStays(w, p, 180, ctx, false);
    case 2: {
      // Transfer: discharged and admitted elsewhere the same day, and a pharmacy purchase that day.
      ctx.variant = "transfer_same_day";
      const h1 = w.pickHospital(p);
      const h2 = w.pickHospital(p, { severe: true, exclude: [h1] });
      const x = t + w.rng.int(2, 6);
      const y = x + w.rng.int(3, 9);
      const diag = ipDiagFor(w, p, t, ["I63.900", "I25.103", "J18.900"]);
      w.plan(x, busy(w), { ...stay(p, h1, t, x, diag, "TRANSFER"), scheme: keep("s1") });
      w.plan(y, busy(w), { ...stay(p, h2, x, y, diag), scheme: keep("s2") });
      w.plan(x, afternoon(w), {
        ...visit(p, w.pickPharmacy(p), "PHARMACY", x, opDiagFor(w, p, x)),
        scheme: keep("rx"),
      });
      return true;
    }
    case 3: {
      // A pediatric drug the day before the birthday that reaches the limit.
      const e = pediatricItem(w);
      if (!e) return false;
      if (!birthdayPerson(w, p, e.ageLimit as number, t + 1, F_NO_BG_STAYS | F_NO_REVERSE)) return false;
      ctx.variant = "pediatric_eve_of_birthday";
      w.plan(t, busy(w), {
        ...visit(p, w.pickPharmacy(p), "PHARMACY", t, w.diag("J06.900"), [{ item: e, qty: 1, day: t }]),
        scheme: keep("rx"),
      });
      return true;
    }
    case 4: {
      // Visits elsewhere on the admission and on the discharge day: not strictly inside the stay.
      ctx.variant = "visits_on_admission_and_discharge_day";
      const inst = w.pickHospital(p);
      const dis = t + w.rng.int(3, 10);
      w.plan(dis, w.rng.int(9 * H, 10 * H), {
        ...stay(p, inst, t, dis, ipDiagFor(w, p, t, COMMON_STAYS)),
        scheme: keep("stay"),
      });
      w.plan(t, w.rng.int(7 * H + 1800, 8 * H), {
        ...visit(p, w.pickClinic(p), "OUTPATIENT", t, opDiagFor(w, p, t)),
        scheme: keep("v1"),
      });
      w.plan(dis, afternoon(w), {
        ...visit(p, w.pickPharmacy(p), "PHARMACY", dis, opDiagFor(w, p, dis)),
        scheme: keep("v2"),
      });
      return true;
    }
    case 5: {
      // The same lines on the same day at two different institutions.
      ctx.variant = "same_lines_other_institution";
      const c1 = w.pickClinic(p);
      const h = w.pickHospital(p);
      const diag = opDiagFor(w, p, t);
      w.plan(t, busy(w), { ...visit(p, c1, "OUTPATIENT", t, diag), scheme: keep("first") });
      const b = visit(p, h, "OUTPATIENT", t, diag);
      b.copy = { role: "first", mode: "all" };
      w.plan(t, afternoon(w), { ...b, scheme: keep("second") });
      return true;
    }
    case 6: {
      // Died in hospital; an earlier outpatient visit settled only after the death record arrived.
      ctx.variant = "settled_after_death_for_earlier_service";
      const D = t + 10;
      const delay = w.rng.int(14, 20);
      if (D + delay + 3 > w.lastEventDay) return false;
      const v0 = D - w.rng.int(3, 8);
      w.plan(D + delay + w.rng.int(1, 3), busy(w), {
        ...visit(p, w.pickClinic(p), "OUTPATIENT", v0, opDiagFor(w, p, v0)),
        scheme: keep("late"),
      });
      // Planned after the visit, so the terminal stay is only added when it does not contain it.
      w.planDeath(p, D, true, delay);
      return true;
    }
    default: {
      // Readmitted within 15 days, but at a different hospital.
      ctx.variant = "readmission_other_hospital";
      const h1 = w.pickHospital(p);
      const h2 = w.pickHospital(p, { exclude: [h1] });
      const diag = ipDiagFor(w, p, t, COMMON_STAYS);
      const d1 = t + w.rng.int(3, 8);
      const a2 = d1 + w.rng.int(0, 15);
      const d2 = a2 + w.rng.int(2, 6);
      w.plan(d1, busy(w), { ...stay(p, h1, t, d1, diag), scheme: keep("s1") });
      w.plan(d2, busy(w), { ...stay(p, h2, a2, d2, diag), scheme: keep("s2") });
      return true;
    }
  }
};

export const SCHEMES: Readonly<Record<string, Planner>> = {
  pediatric_drug: pediatric,
  gender_mismatch: genderMismatch,
  readmission,
  duplicate_line: duplicateLine,
  deceased_activity: deceased,
  high_out_of_pocket: highOutOfPocket,
  high_frequency: highFrequency,
  overlapping_stays: overlappingStays,
  outpatient_during_stay: outpatientDuringStay,
  decoy,
};

/** The order in which scheme persons get their scheme: every kind early, the common ones twice. */
export const SCHEME_CYCLE = [
  "pediatric_drug",
  "gender_mismatch",
  "readmission",
  "duplicate_line",
  "deceased_activity",
  "high_out_of_pocket",
  "high_frequency",
  "overlapping_stays",
  "outpatient_during_stay",
  "decoy",
  "pediatric_drug",
  "gender_mismatch",
  "readmission",
  "duplicate_line",
  "deceased_activity",
  "decoy",
] as const;
