import { z } from "zod";
import { cstDate } from "./dates.ts";
import { bySettledAt, defineDetector, type Finding, type PersonView, type SettlementRecord } from "./sdk.ts";

/** The calendar year (CST) of settlement, kept per settlement so windows need no date maths. */
type Year = number;
const year = (s: SettlementRecord) => s.facts.high_out_of_pocket as Year;
const outOfPocket = (s: SettlementRecord) => s.totalFen - s.fundPaidFen;
const sameYear = (person: PersonView, s: SettlementRecord) => {
  const y = year(s);
  return person.settlements.filter((t) => year(t) === y);
};

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
  config: z.object({
    thresholdsYuan: z.array(z.number().positive()).min(1).default([15_000, 30_000]),
  }),
  extract(s): Year {
    return Number(cstDate(Date.parse(s.settled_at)).slice(0, 4));
  },
  affected(changed, person) {
    return sameYear(person, changed).filter((s) => bySettledAt(changed, s) < 0);
  },
  evaluate(subject, person, { config }): Finding[] {
    let before = 0;
    for (const s of sameYear(person, subject)) if (bySettledAt(s, subject) < 0) before += outOfPocket(s);
    const after = before + outOfPocket(subject);
    const reached = config.thresholdsYuan.map((y) => y * 100).filter((t) => before < t && after >= t);
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
