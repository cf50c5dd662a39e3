import { z } from "zod";
import { cstYear } from "./dates.ts";
import { bySettledAt, defineDetector, type Finding, type SettlementRecord } from "./sdk.ts";

/** The calendar year (CST) of settlement, kept per settlement so windows need no date maths. */
type Year = number;
const year = (s: SettlementRecord) => s.facts.high_out_of_pocket as Year;
const outOfPocket = (s: SettlementRecord) => s.totalFen - s.fundPaidFen;

export const highOutOfPocket = defineDetector({
  id: "high_out_of_pocket",
  version: "1.0.0",
  description:
    "防返贫监测: a person's out-of-pocket spending in a calendar year reaches a monitoring threshold.",
  rules: {
    high_out_of_pocket: {
      severity: "REMIND",
      title: "High out-of-pocket spending (poverty-relapse watch)",
      titleZh: "个人自付费用过高 (防返贫监测)",
    },
  },
  labels: {
    year: { zh: "年度", en: "Year" },
    out_of_pocket_fen: { zh: "个人自付", en: "Out of pocket" },
    cumulative_before_fen: { zh: "此前累计", en: "Cumulative before" },
    cumulative_after_fen: { zh: "累计", en: "Cumulative after" },
    thresholds_reached_fen: { zh: "达到阈值", en: "Thresholds reached" },
  },
  config: z.object({
    thresholdsYuan: z.array(z.number().positive()).min(1).default([15_000, 30_000]),
  }),
  extract(s): Year {
    return cstYear(Date.parse(s.settled_at));
  },
  // Loops rather than filters: these run for every settlement, and most find nothing.
  affected(changed, person) {
    const y = year(changed);
    const later: SettlementRecord[] = [];
    for (const s of person.settlements) if (year(s) === y && bySettledAt(changed, s) < 0) later.push(s);
    return later;
  },
  evaluate(subject, person, { config }): Finding[] {
    const y = year(subject);
    let before = 0;
    for (const s of person.settlements)
      if (year(s) === y && bySettledAt(s, subject) < 0) before += outOfPocket(s);
    const after = before + outOfPocket(subject);
    const reached: number[] = [];
    for (const yuan of config.thresholdsYuan) {
      const t = yuan * 100;
      if (before < t && after >= t) reached.push(t);
    }
    if (reached.length === 0) return [];
    return [
      {
        rule: "high_out_of_pocket",
        related: [],
        // A monitoring signal, not a loss to the fund.
        amountAtRiskFen: 0,
        evidence: {
          year: year(subject),
          out_of_pocket_fen: outOfPocket(subject),
          cumulative_before_fen: before,
          cumulative_after_fen: after,
          thresholds_reached_fen: reached,
        },
      },
    ];
  },
});
