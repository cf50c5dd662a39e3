import { z } from "zod";
import { addDays } from "./dates.ts";
import { bySettledAt, defineDetector, type Finding, type SettlementRecord, sharedText } from "./sdk.ts";

/** One drug's units on one service date of a settlement: [item_code, service_date, quantity, amount_fen, item_name]. */
type DrugDay = [code: string, date: string, quantity: number, amountFen: number, name: string];

export const excessiveDispensing = defineDetector({
  id: "excessive_dispensing",
  version: "1.0.0",
  description:
    "超量开药: one drug dispensed to a person, pharmacy and outpatient claims together, above a number of units within a window of days.",
  rules: {
    excessive_dispensing: {
      severity: "WARN",
      title: "Drug dispensed above the units allowed in a window",
      titleZh: "超量开药",
    },
  },
  labels: {
    max_units: { zh: "数量上限", en: "Max units" },
    window_days: { zh: "统计窗口(天)", en: "Window days" },
    drugs: { zh: "超量药品", en: "Drugs over the limit" },
    window_from: { zh: "窗口起始日期", en: "Window from" },
    window_quantity: { zh: "窗口内数量", en: "Units in window" },
    dispensed: { zh: "窗口内开药记录", en: "Dispensed in window" },
  },
  config: z.object({
    /** A window holding more units than this is a finding (90 units: a quarter's supply of one a day). */
    maxUnits: z.number().positive().default(90),
    /** The window: this many days ending on the line's service date, both ends included. */
    windowDays: z.number().int().min(1).default(30),
  }),
  extract(s): DrugDay[] | undefined {
    if (s.visit_type !== "PHARMACY" && s.visit_type !== "OUTPATIENT") return undefined;
    const days = new Map<string, DrugDay>();
    for (const i of s.items) {
      if (i.category !== "DRUG") continue;
      const key = `${i.item_code}\u0001${i.service_date}`;
      const d = days.get(key);
      if (d) {
        d[2] += i.quantity;
        d[3] += i.amount_fen;
      } else
        days.set(key, [
          sharedText(i.item_code),
          sharedText(i.service_date),
          i.quantity,
          i.amount_fen,
          sharedText(i.item_name),
        ]);
    }
    return days.size > 0 ? [...days.values()] : undefined;
  },
  // A line on day e is in the window of every line of its drug dated e … e + windowDays − 1.
  affected(changed, person, { config, facts }) {
    const reach = (facts(changed) ?? []).map(([c, e]) => [c, e, addDays(e, config.windowDays - 1)] as const);
    if (reach.length === 0) return [];
    const out: SettlementRecord[] = [];
    for (const s of person.settlements) {
      if (s.id === changed.id) continue;
      const theirs = facts(s);
      if (theirs?.some(([code, d]) => reach.some(([c, e, last]) => c === code && e <= d && d <= last)))
        out.push(s);
    }
    return out;
  },
  reachDays: ({ config }) => config.windowDays,
  evaluate(subject, person, { config, facts }): Finding[] {
    const mine = facts(subject);
    if (!mine) return [];
    type Dispensed = { settlement: SettlementRecord; date: string; quantity: number };
    /** Units of `code` dispensed in [from, date]; each dispensing listed in `listed` when given. */
    const windowed = (code: string, from: string, date: string, listed?: Dispensed[]) => {
      let total = 0;
      // Indexed reads, not for…of with destructuring: this loop is most of the detector's time.
      for (const s of person.settlements) {
        const days = facts(s);
        if (days === undefined) continue;
        for (let i = 0; i < days.length; i++) {
          const day = days[i] as DrugDay;
          if (day[0] !== code || day[1] < from || day[1] > date) continue;
          total += day[2];
          listed?.push({ settlement: s, date: day[1], quantity: day[2] });
        }
      }
      return total;
    };
    // Most drug days are within their limit: those are summed without building their evidence.
    const over: { day: DrugDay; from: string; total: number }[] = [];
    for (const day of mine) {
      const from = addDays(day[1], 1 - config.windowDays);
      const total = windowed(day[0], from, day[1]);
      if (total > config.maxUnits) over.push({ day, from, total });
    }
    if (over.length === 0) return [];
    over.sort(({ day: a }, { day: b }) =>
      a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0,
    );
    const drugs: Record<string, unknown>[] = [];
    const related = new Set<SettlementRecord>();
    let amount = 0;
    for (const { day, from, total } of over) {
      const [code, date, quantity, amountFen, name] = day;
      const dispensed: Dispensed[] = [];
      windowed(code, from, date, dispensed);
      dispensed.sort((a, b) =>
        a.date < b.date ? -1 : a.date > b.date ? 1 : bySettledAt(a.settlement, b.settlement),
      );
      for (const x of dispensed) if (x.settlement !== subject) related.add(x.settlement);
      amount += amountFen;
      drugs.push({
        item_code: code,
        item_name: name,
        service_date: date,
        quantity,
        window_from: from,
        window_quantity: total,
        dispensed: dispensed.map((x) => ({
          settlement_id: x.settlement.id,
          service_date: x.date,
          quantity: x.quantity,
        })),
      });
    }
    return [
      {
        rule: "excessive_dispensing",
        related: [...related].sort(bySettledAt).map((s) => s.id),
        amountAtRiskFen: amount,
        evidence: { max_units: config.maxUnits, window_days: config.windowDays, drugs },
      },
    ];
  },
  testWorld: {
    items: [
      {
        item_code: "XC10AAA090A001010100001",
        item_name: "阿托伐他汀钙片",
        category: "DRUG",
        quantities: [1, 46],
      },
    ],
  },
  // 45 units 30 days before a visit of 45 (just outside its window), then a third visit within the
  // window of the second: 46 units or more (a finding on it) or exactly 45 (90 in all: none).
  scheme(kit) {
    if (kit.lastDay - kit.firstDay < 62) return undefined;
    kit.person({ minAge: 30, maxAge: 75 });
    const drug = kit.drug();
    const t = kit.rng.int(kit.firstDay + 31, kit.lastDay - 30);
    const type = () => (kit.rng.chance(0.5) ? "PHARMACY" : "OUTPATIENT") as "PHARMACY" | "OUTPATIENT";
    const over = kit.rng.chance(0.6);
    kit.visit({ role: "outside", type: type(), day: t - 30, lines: [{ item: drug, quantity: 45 }] });
    kit.visit({ role: "first", type: type(), day: t, lines: [{ item: drug, quantity: 45 }] });
    kit.visit({
      role: "suspect",
      type: type(),
      day: t + kit.rng.int(1, 29),
      lines: [{ item: drug, quantity: over ? kit.rng.int(46, 60) : 45 }],
      findings: over ? [{ rule: "excessive_dispensing", related: ["first"] }] : [],
      mayReverse: true,
    });
    return over ? "over_in_window" : "at_limit";
  },
});
