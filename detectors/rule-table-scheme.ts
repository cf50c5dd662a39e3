// rule_table's generator scheme: one labelled case of one kind, planned from a row of the newest
// loaded table (what a worker with no configured version judges by), so `generate` injects what the
// rows say, whatever the table. A row is used only where its case can hit nothing but that row: no
// other row, no catalog (whose own detectors would find it too). Each kind plans near-misses too.
import { ageOn, dateOfDay } from "./dates.ts";
import { type RowOf, RULE_KINDS, type RuleKind, type RuleRow, type RuleTable } from "./rule-table.ts";
import type { DetectorScheme, SchemeDiagnosis, SchemeItem, SchemeKit } from "./scheme-kit.ts";

type Plan = (kit: SchemeKit, table: RuleTable) => string | undefined;
type Rule = { rule: RuleKind; related?: string[] };

const categoryOf = (code: string): SchemeItem["category"] =>
  code.startsWith("X") || code.startsWith("Z") ? "DRUG" : code.startsWith("C") ? "MATERIAL" : "SERVICE";

/** The row's own code as an item (its prefix is a code it matches), named by the row. */
const itemOf = (kit: SchemeKit, code: string, name: string, priceFen = 1_000) =>
  kit.item({ code, name, category: categoryOf(code), priceFen });

/**
 * Whether billing these lines to one person can hit no row but `except` and no catalog: lines may
 * match quantity rows only, and stay within their limits together.
 */
function inert(kit: SchemeKit, t: RuleTable, lines: [code: string, qty: number][], except: RuleRow): boolean {
  const sums = new Map<RowOf<"quantity_limit">, number>();
  for (const [code, qty] of lines) {
    if (kit.catalogs.pediatricDrugs.longest(code) || kit.catalogs.sexItems.longest(code)) return false;
    for (const k of RULE_KINDS) {
      const hit = t.items[k].longest(code);
      if (!hit || hit === except) continue;
      if (hit.kind !== "quantity_limit") return false;
      sums.set(hit, (sums.get(hit) ?? 0) + qty);
    }
  }
  return [...sums].every(([r, n]) => n <= r.max);
}

/** A background diagnosis starting with `prefix` that no age_sex row judges, and the sex it needs. */
function plainDiagnosis(kit: SchemeKit, t: RuleTable, prefix: string, avoid: readonly string[] = []) {
  for (let i = 0; i < 5; i++) {
    const d = kit.diagnosis(prefix);
    if (!d) return undefined;
    if (t.diagnoses.longest(d.code) || avoid.some((p) => d.code.startsWith(p))) continue;
    return d;
  }
  return undefined;
}

const type = (kit: SchemeKit): "PHARMACY" | "OUTPATIENT" => (kit.rng.chance(0.5) ? "PHARMACY" : "OUTPATIENT");

function pickRow<K extends RuleKind>(kit: SchemeKit, t: RuleTable, kind: K, ok: (r: RowOf<K>) => boolean) {
  const rows = t.rows.filter((r): r is RowOf<K> => r.kind === kind && ok(r as RowOf<K>));
  return rows.length > 0 ? kit.rng.pick(rows) : undefined;
}

// Per day: one settlement's lines of the row on one day, above max or at it. Per N days: a first
// settlement, then one within the window (above max together, or at it) or just outside it.
// Pharmacy visits: an outpatient visit's own registration line could be the row's code.
const quantity: Plan = (kit, t) => {
  const span = kit.lastDay - kit.firstDay;
  const row = pickRow(
    kit,
    t,
    "quantity_limit",
    (r) =>
      Number.isInteger(r.max) &&
      (r.per === "day" ? r.max >= 1 : r.per === "days" && r.max >= 2 && r.days + 1 <= span) &&
      inert(kit, t, [[r.codePrefix, r.max + 3]], r),
  );
  if (!row) return undefined;
  kit.person({ minAge: 20, maxAge: 70 });
  const item = itemOf(kit, row.codePrefix, row.titleZh);
  const over = kit.rng.chance(0.6);
  if (row.per === "day") {
    const qty = over ? row.max + kit.rng.int(1, 3) : row.max;
    const first = qty >= 2 && kit.rng.chance(0.5) ? kit.rng.int(1, qty - 1) : qty;
    kit.visit({
      role: "suspect",
      type: "PHARMACY",
      day: kit.rng.int(kit.firstDay, kit.lastDay),
      lines: [{ item, quantity: first }, ...(first < qty ? [{ item, quantity: qty - first }] : [])],
      findings: over ? [{ rule: "quantity_limit" }] : [],
      mayReverse: true,
    });
    return over ? "per_day_over" : "per_day_at_limit";
  }
  const a = Math.floor(row.max / 2);
  const outside = over && kit.rng.chance(0.3);
  const t0 = kit.rng.int(kit.firstDay, kit.lastDay - row.days);
  const gap = outside ? row.days : kit.rng.int(1, row.days - 1);
  kit.visit({ role: "first", type: "PHARMACY", day: t0, lines: [{ item, quantity: a }] });
  kit.visit({
    role: "suspect",
    type: "PHARMACY",
    day: t0 + gap,
    lines: [{ item, quantity: over ? row.max - a + 1 : row.max - a }],
    findings: over && !outside ? [{ rule: "quantity_limit", related: ["first"] }] : [],
    mayReverse: true,
  });
  return outside ? "per_days_outside_window" : over ? "per_days_over" : "per_days_at_limit";
};

// Both items on one day: in one settlement, or in two at one pharmacy (the row's side is the
// suspect); near-misses: the partner a day later, or the same day at another pharmacy.
const exclusive: Plan = (kit, t) => {
  const row = pickRow(kit, t, "exclusive_items", (r) =>
    inert(
      kit,
      t,
      [
        [r.codePrefix, 1],
        [r.with, 1],
      ],
      r,
    ),
  );
  if (!row) return undefined;
  const variant = kit.rng.pick(["same_settlement", "same_place", "next_day", "other_place"] as const);
  const here = kit.place("PHARMACY");
  let there = kit.place("PHARMACY");
  if (variant === "other_place") {
    for (let i = 0; i < 5 && there.id === here.id; i++) there = kit.place("PHARMACY");
    if (there.id === here.id) return undefined;
  }
  kit.person({ minAge: 20, maxAge: 80 });
  const mine = itemOf(kit, row.codePrefix, row.titleZh);
  const partner = itemOf(kit, row.with, `${row.titleZh} (${row.with})`);
  const day = kit.rng.int(kit.firstDay, kit.lastDay - 1);
  const findings: Rule[] =
    variant === "same_settlement"
      ? [{ rule: "exclusive_items" }]
      : variant === "same_place"
        ? [{ rule: "exclusive_items", related: ["partner"] }]
        : [];
  if (variant === "same_settlement") {
    kit.visit({
      role: "suspect",
      type: "PHARMACY",
      place: here,
      day,
      lines: [
        { item: mine, quantity: 1 },
        { item: partner, quantity: 1 },
      ],
      findings,
      mayReverse: true,
    });
  } else {
    kit.visit({
      role: "partner",
      type: "PHARMACY",
      place: variant === "other_place" ? there : here,
      day: variant === "next_day" ? day + 1 : day,
      lines: [{ item: partner, quantity: 1 }],
    });
    kit.visit({
      role: "suspect",
      type: "PHARMACY",
      place: here,
      day,
      lines: [{ item: mine, quantity: 1 }],
      findings,
      mayReverse: true,
    });
  }
  return variant;
};

// The row's item with a diagnosis of a listed prefix (none), or with none of them (a finding).
const diagnosis: Plan = (kit, t) => {
  const row = pickRow(kit, t, "diagnosis_required", (r) => inert(kit, t, [[r.codePrefix, 1]], r));
  if (!row) return undefined;
  const covered = kit.rng.chance(0.4);
  const d = covered
    ? plainDiagnosis(kit, t, kit.rng.pick(row.diagnoses))
    : plainDiagnosis(kit, t, "", row.diagnoses);
  if (!d) return undefined;
  kit.person({ sex: d.sex, minAge: 20, maxAge: 80 });
  kit.visit({
    role: "suspect",
    type: type(kit),
    day: kit.rng.int(kit.firstDay, kit.lastDay),
    diagnoses: [d],
    lines: [{ item: itemOf(kit, row.codePrefix, row.titleZh), quantity: 1 }],
    findings: covered ? [] : [{ rule: "diagnosis_required" }],
    mayReverse: true,
  });
  return covered ? "diagnosis_listed" : "diagnosis_missing";
};

// A unit price above the standard for the place's level, at it, or where the level has none.
const price: Plan = (kit, t) => {
  const qty = kit.rng.int(1, 2);
  const row = pickRow(kit, t, "price_limit", (r) => inert(kit, t, [[r.codePrefix, qty]], r));
  if (!row) return undefined;
  const place = kit.place("OUTPATIENT");
  const level = kit.catalogs.ruleTables.levels.longest(place.id);
  const limit = level === undefined ? undefined : row.limits[level];
  const over = limit !== undefined && kit.rng.chance(0.6);
  const highest = Math.max(...Object.values(row.limits).filter((x): x is number => x !== undefined));
  const unit = limit === undefined ? highest + 1_000 : over ? limit + kit.rng.int(1, 1_000) : limit;
  kit.person({ minAge: 20, maxAge: 80 });
  kit.visit({
    role: "suspect",
    type: "OUTPATIENT",
    place,
    day: kit.rng.int(kit.firstDay, kit.lastDay),
    lines: [{ item: itemOf(kit, row.codePrefix, row.titleZh, unit), quantity: qty }],
    findings: over ? [{ rule: "price_limit" }] : [],
    mayReverse: true,
  });
  return limit === undefined ? "price_no_standard" : over ? "price_over" : "price_at_standard";
};

// A person of the row's sex and ages, or of the other sex, or younger or older; the label follows
// from their exact age on the day (the birthday may fall between the start and the visit).
const ageSex: Plan = (kit, t) => {
  const row = pickRow(kit, t, "age_sex", (r) =>
    r.target === "item" ? inert(kit, t, [[r.codePrefix, 1]], r) : kit.diagnosis(r.codePrefix) !== undefined,
  );
  if (!row) return undefined;
  let d: SchemeDiagnosis | undefined;
  if (row.target === "diagnosis") {
    d = kit.diagnosis(row.codePrefix);
    if (!d || t.diagnoses.longest(d.code) !== row) return undefined;
  }
  const lo = row.minAge ?? 0;
  const hi = Math.min(row.maxAge ?? 90, 90);
  const ways = [
    ...(row.sex ? ["sex"] : []),
    ...(lo >= 1 ? ["younger"] : []),
    ...(row.maxAge !== undefined && row.maxAge < 90 ? ["older"] : []),
  ];
  const way = ways.length > 0 && kit.rng.chance(0.6) ? kit.rng.pick(ways) : "fits";
  const sex = way === "sex" ? (row.sex === "M" ? "F" : "M") : (row.sex ?? d?.sex);
  const [min, max] = way === "younger" ? [0, lo - 1] : way === "older" ? [hi + 1, hi + 20] : [lo, hi];
  const { birthDate } = kit.person({ sex, minAge: min, maxAge: max });
  const day = kit.rng.int(kit.firstDay, kit.lastDay);
  const age = ageOn(birthDate, dateOfDay(day));
  const outside =
    way === "sex" ||
    (row.minAge !== undefined && age < row.minAge) ||
    (row.maxAge !== undefined && age > row.maxAge);
  kit.visit({
    role: "suspect",
    type: d ? "OUTPATIENT" : type(kit),
    day,
    ...(d ? { diagnoses: [d] } : {}),
    lines: d ? [] : [{ item: itemOf(kit, row.codePrefix, row.titleZh), quantity: 1 }],
    findings: outside ? [{ rule: "age_sex" }] : [],
    mayReverse: true,
  });
  return `${row.target}_${outside ? "outside" : "within"}`;
};

const PLANS: Record<RuleKind, Plan> = {
  quantity_limit: quantity,
  exclusive_items: exclusive,
  diagnosis_required: diagnosis,
  price_limit: price,
  age_sex: ageSex,
};

/** A case of the kind `generate` asks for (the detector's rules are the kinds). */
export const ruleTableScheme: DetectorScheme = (kit) => {
  const table = kit.catalogs.ruleTables.newest;
  const kind = RULE_KINDS.find((k) => k === kit.rule);
  const variant = table && kind && PLANS[kind](kit, table);
  return variant ? `${kind}/${variant}` : undefined;
};
