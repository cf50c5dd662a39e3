import { z } from "zod";
import type { SexRestriction } from "./catalog.ts";
import { defineDetector, type Finding } from "./sdk.ts";

interface Offence {
  kind: "DIAGNOSIS" | "ITEM";
  code: string;
  name: string;
  /** Diagnosis: primary or not; item: its line number. */
  primary?: boolean;
  line_no?: number;
  amount_fen?: number;
  allowed_sex: "M" | "F";
  catalog_prefix: string;
  description: string;
}

const offence = (r: SexRestriction) => ({
  allowed_sex: r.allowed_sex,
  catalog_prefix: r.code_prefix,
  description: r.description,
});

export const genderMismatch = defineDetector({
  id: "gender_mismatch",
  version: "1.0.0",
  description: "男病女治 / 女病男治: a diagnosis or item restricted to the other sex.",
  rules: {
    gender_mismatch: {
      severity: "WARN",
      title: "Sex-restricted code on the other sex",
      titleZh: "男病女治/女病男治",
    },
  },
  labels: {
    offending: { zh: "违规项", en: "Offending codes" },
    kind: { zh: "类型", en: "Kind" },
    allowed_sex: { zh: "限定性别", en: "Allowed sex" },
    catalog_prefix: { zh: "目录编码", en: "Catalog prefix" },
    description: { zh: "说明", en: "Description" },
  },
  config: z.object({}),
  extract(s, { catalogs }): Offence[] | undefined {
    const found: Offence[] = [];
    for (const d of s.diagnoses) {
      const r = catalogs.sexDiagnoses.longest(d.code);
      if (r && r.allowed_sex !== s.gender) {
        found.push({ kind: "DIAGNOSIS", code: d.code, name: d.name, primary: d.primary, ...offence(r) });
      }
    }
    for (const item of s.items) {
      const r = catalogs.sexItems.longest(item.item_code);
      if (r && r.allowed_sex !== s.gender) {
        found.push({
          kind: "ITEM",
          code: item.item_code,
          name: item.item_name,
          line_no: item.line_no,
          amount_fen: item.amount_fen,
          ...offence(r),
        });
      }
    }
    return found.length > 0 ? found : undefined;
  },
  // Its own settlement only.
  reachDays: () => 0,
  evaluate(subject, _person, { facts }): Finding[] {
    const found = facts(subject);
    if (!found) return [];
    // A wrong-sex diagnosis puts the whole fund payment in doubt; a wrong-sex item only its own lines.
    const amount = found.some((o) => o.kind === "DIAGNOSIS")
      ? subject.fundPaidFen
      : found.reduce((sum, o) => sum + (o.amount_fen ?? 0), 0);
    return [
      {
        rule: "gender_mismatch",
        related: [],
        amountAtRiskFen: amount,
        evidence: { gender: subject.gender, offending: found },
      },
    ];
  },
});
