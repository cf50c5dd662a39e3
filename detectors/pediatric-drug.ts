import { z } from "zod";
import { ageOn } from "./dates.ts";
import { defineDetector, type Finding } from "./sdk.ts";

interface PediatricLine {
  line_no: number;
  item_code: string;
  item_name: string;
  generic_name: string;
  catalog_prefix: string;
  /** null: the catalog leaves it to the configured default. */
  catalog_age_limit: number | null;
  service_date: string;
  age_at_service: number;
  amount_fen: number;
}

export const pediatricDrug = defineDetector({
  id: "pediatric_drug",
  version: "1.0.0",
  description: "药品限儿童使用: a drug restricted to children billed for an older patient.",
  rules: {
    pediatric_drug: {
      severity: "WARN",
      title: "Pediatric-only drug for an older patient",
      titleZh: "限儿童药品超龄使用",
    },
  },
  labels: {
    lines: { zh: "费用明细", en: "Lines" },
    generic_name: { zh: "通用名", en: "Generic name" },
    catalog_prefix: { zh: "目录编码", en: "Catalog prefix" },
    catalog_age_limit: { zh: "目录年龄上限", en: "Catalog age limit" },
    age_limit: { zh: "年龄上限", en: "Age limit" },
    age_at_service: { zh: "就诊时年龄", en: "Age at service" },
  },
  config: z.object({
    /** Age (completed years) at which a catalog row with an empty age_limit starts to bite. */
    defaultAgeLimit: z.number().int().min(1).max(150).default(18),
  }),
  // Catalog matches are kept with the age; the limit is applied at evaluation so a config change applies to retained state.
  extract(s, { catalogs }): PediatricLine[] | undefined {
    const lines: PediatricLine[] = [];
    for (const item of s.items) {
      if (item.category !== "DRUG") continue;
      const entry = catalogs.pediatricDrugs.longest(item.item_code);
      if (!entry) continue;
      lines.push({
        line_no: item.line_no,
        item_code: item.item_code,
        item_name: item.item_name,
        generic_name: entry.generic_name,
        catalog_prefix: entry.code_prefix,
        catalog_age_limit: entry.age_limit,
        service_date: item.service_date,
        age_at_service: ageOn(s.birth_date, item.service_date),
        amount_fen: item.amount_fen,
      });
    }
    return lines.length > 0 ? lines : undefined;
  },
  // Its own settlement only.
  reachDays: () => 0,
  evaluate(subject, _person, { config, facts }): Finding[] {
    const candidates = facts(subject);
    if (!candidates) return [];
    const offending = candidates
      .map((l) => ({ ...l, age_limit: l.catalog_age_limit ?? config.defaultAgeLimit }))
      .filter((l) => l.age_at_service >= l.age_limit);
    if (offending.length === 0) return [];
    return [
      {
        rule: "pediatric_drug",
        related: [],
        amountAtRiskFen: offending.reduce((sum, l) => sum + l.amount_fen, 0),
        evidence: { birth_date: subject.birthDate, lines: offending },
      },
    ];
  },
});
