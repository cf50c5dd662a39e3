import { z } from "zod";
import { daysBetween } from "./dates.ts";
import { defineDetector, type Finding } from "./sdk.ts";

/** The latest service date on the settlement's lines, the only line fact this rule needs. */
type LastServiceDate = string;

export const deceasedActivity = defineDetector({
  id: "deceased_activity",
  version: "1.0.0",
  description: "死亡人员医保结算: services billed after the person's death date.",
  rules: {
    deceased_activity: {
      severity: "BLOCK",
      title: "Services after the date of death",
      titleZh: "死亡人员医保结算",
    },
  },
  labels: {
    death_date: { zh: "死亡日期", en: "Death date" },
    death_source: { zh: "死亡信息来源", en: "Death source" },
    death_reported_at: { zh: "死亡信息上报时间", en: "Reported at" },
    last_service_date: { zh: "最后服务日期", en: "Last service date" },
    fields_after_death: { zh: "死亡后发生的字段", en: "Fields after death" },
    days_after_death: { zh: "死亡后天数", en: "Days after death" },
  },
  config: z.object({}),
  usesDeath: true,
  extract(s): LastServiceDate | undefined {
    let last: string | undefined;
    for (const i of s.items) if (last === undefined || i.service_date > last) last = i.service_date;
    return last;
  },
  evaluate(subject, person, { facts }): Finding[] {
    const death = person.death;
    if (!death) return [];
    const d = death.death_date;
    const lastLine = facts(subject);
    // Settling after the death for services before it, or a stay ending in death on that day, is legitimate.
    const after: string[] = [];
    if (subject.admission > d) after.push("admission_date");
    if (subject.visitType === "INPATIENT" && subject.discharge > d) after.push("discharge_date");
    if (lastLine !== undefined && lastLine > d) after.push("service_date");
    if (after.length === 0) return [];
    const latest = [subject.admission, subject.discharge, lastLine ?? subject.admission]
      .sort()
      .at(-1) as string;
    return [
      {
        rule: "deceased_activity",
        related: [],
        amountAtRiskFen: subject.fundPaidFen,
        evidence: {
          death_date: d,
          death_source: death.source,
          death_reported_at: death.reported_at,
          visit_type: subject.visitType,
          admission_date: subject.admission,
          discharge_date: subject.discharge,
          discharge_reason: subject.dischargeReason,
          last_service_date: lastLine ?? null,
          fields_after_death: after,
          days_after_death: daysBetween(d, latest),
        },
      },
    ];
  },
});
