// The detector registry: adding a detector is one file and one line here.
import { deceasedActivity } from "./deceased-activity.ts";
import { duplicateBilling } from "./duplicate-billing.ts";
import { excessiveDispensing } from "./excessive-dispensing.ts";
import { frequentAdmission } from "./frequent-admission.ts";
import { genderMismatch } from "./gender-mismatch.ts";
import { highOutOfPocket } from "./high-out-of-pocket.ts";
import { pediatricDrug } from "./pediatric-drug.ts";
import { ruleTables } from "./rule-tables.ts";
import type { AnyDetector } from "./sdk.ts";

export const DETECTORS: readonly AnyDetector[] = [
  pediatricDrug,
  genderMismatch,
  frequentAdmission,
  duplicateBilling,
  deceasedActivity,
  highOutOfPocket,
  excessiveDispensing,
  ruleTables,
];

export { type Catalogs, loadCatalogs } from "./catalog.ts";
export type * from "./scheme-kit.ts";
export * from "./sdk.ts";
