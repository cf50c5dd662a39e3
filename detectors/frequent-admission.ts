import { z } from "zod";
import { daysBetween } from "./dates.ts";
import {
  defineDetector,
  type Finding,
  isStay,
  type SettlementRecord,
  STAY_LABELS,
  stayEvidence,
} from "./sdk.ts";

/** The rule's order of stays: (admission_date, discharge_date, settled_at, settlement_id). */
function byStayOrder(a: SettlementRecord, b: SettlementRecord): number {
  if (a.admission !== b.admission) return a.admission < b.admission ? -1 : 1;
  if (a.discharge !== b.discharge) return a.discharge < b.discharge ? -1 : 1;
  return a.settledAtMs - b.settledAtMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

export const frequentAdmission = defineDetector({
  id: "frequent_admission",
  version: "1.0.0",
  description: "分解住院 (split stays) and 高频次住院 (unusually frequent stays).",
  rules: {
    readmission: {
      severity: "WARN",
      title: "Readmission soon after discharge (split stay)",
      titleZh: "分解住院",
    },
    high_frequency: {
      severity: "REMIND",
      title: "Unusually frequent inpatient stays",
      titleZh: "高频次住院",
    },
  },
  labels: {
    ...STAY_LABELS,
    previous_stay: { zh: "上次住院", en: "Previous stay" },
    days_since_previous_discharge: { zh: "距上次出院天数", en: "Days since discharge" },
    max_days: { zh: "间隔上限(天)", en: "Max days" },
    window_days: { zh: "统计窗口(天)", en: "Window days" },
    stays_in_window: { zh: "窗口内住院次数", en: "Stays in window" },
    threshold: { zh: "阈值", en: "Threshold" },
  },
  config: z.object({
    readmissionMaxDays: z.number().int().min(0).default(15),
    highFrequencyStays: z.number().int().min(2).default(4),
    highFrequencyWindowDays: z.number().int().min(1).default(180),
  }),
  affected(changed, person, { config }) {
    if (!isStay(changed)) return [];
    return person.settlements.filter((s) => {
      if (!isStay(s) || s.id === changed.id) return false;
      const sinceDischarge = daysBetween(changed.discharge, s.admission);
      const sinceAdmission = daysBetween(changed.admission, s.admission);
      return (
        (s.institutionId === changed.institutionId &&
          sinceDischarge >= 0 &&
          sinceDischarge <= config.readmissionMaxDays) ||
        (sinceAdmission >= 0 && sinceAdmission < config.highFrequencyWindowDays)
      );
    });
  },
  // A readmission looks back to the previous discharge, high frequency over its window of admissions.
  reachDays: ({ config }) => Math.max(config.readmissionMaxDays, config.highFrequencyWindowDays),
  evaluate(subject, person, { config }): Finding[] {
    if (!isStay(subject)) return [];
    const findings: Finding[] = [];

    let previous: SettlementRecord | undefined;
    for (const p of person.settlements) {
      if (!isStay(p) || p.id === subject.id || p.institutionId !== subject.institutionId) continue;
      if (p.discharge > subject.admission || byStayOrder(p, subject) >= 0) continue;
      if (
        !previous ||
        p.discharge > previous.discharge ||
        (p.discharge === previous.discharge && byStayOrder(p, previous) > 0)
      ) {
        previous = p;
      }
    }
    if (previous) {
      const gap = daysBetween(previous.discharge, subject.admission);
      if (gap <= config.readmissionMaxDays) {
        findings.push({
          rule: "readmission",
          related: [previous.id],
          amountAtRiskFen: subject.fundPaidFen,
          evidence: {
            stay: stayEvidence(subject),
            previous_stay: stayEvidence(previous),
            days_since_previous_discharge: gap,
            max_days: config.readmissionMaxDays,
          },
        });
      }
    }

    const window = person.settlements
      .filter((s) => {
        if (!isStay(s)) return false;
        const before = daysBetween(s.admission, subject.admission);
        return before >= 0 && before < config.highFrequencyWindowDays;
      })
      .sort(byStayOrder);
    if (window.length >= config.highFrequencyStays) {
      findings.push({
        rule: "high_frequency",
        related: window.filter((s) => s.id !== subject.id).map((s) => s.id),
        amountAtRiskFen: subject.fundPaidFen,
        evidence: {
          window_days: config.highFrequencyWindowDays,
          stays_in_window: window.length,
          threshold: config.highFrequencyStays,
          stays: window.map(stayEvidence),
        },
      });
    }
    return findings;
  },
});
