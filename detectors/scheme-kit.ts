// What a detector's generator scheme may do: plan a few settlements of one person, saying which of
// them its rules must find. `generate` (services/generate/detector-schemes.ts) implements the kit;
// the detector stays pure and never sees the generator's internals.
import type { Settlement } from "../schemas/index.ts";
import type { Catalogs } from "./catalog.ts";

/** An item the generator bills in the background (its codes pass every catalog check). */
export interface SchemeItem {
  readonly code: string;
  readonly name: string;
  readonly category: Settlement["items"][number]["category"];
  /** Unit price in fen. */
  readonly priceFen: number;
}

/** A place (institution) the generator picked, for visits that must share one or whose id matters. */
export interface SchemePlace {
  readonly id: string;
  readonly type: "OUTPATIENT" | "PHARMACY";
}

export interface SchemeDiagnosis {
  readonly code: string;
  readonly name: string;
  /** The only sex the generator bills it for (the sex catalog's), when restricted. */
  readonly sex?: "M" | "F";
}

export interface SchemeVisit {
  /** Name of this settlement within the scheme, for `related`. */
  readonly role: string;
  readonly type: "OUTPATIENT" | "PHARMACY";
  /** Service (and settlement) day, as a day number (`dayNumber` in dates.ts). */
  readonly day: number;
  /** Where (of this visit's type): a place from `kit.place`; absent, one the generator picks. */
  readonly place?: SchemePlace;
  /** The settlement's diagnoses, the first primary; absent, a common diagnosis the generator picks. */
  readonly diagnoses?: readonly SchemeDiagnosis[];
  /** The lines billed, all on `day` (an outpatient visit also bills its registration). */
  readonly lines: readonly { readonly item: SchemeItem; readonly quantity: number }[];
  /** The rules that must find this settlement, each with the roles of its related settlements in order. */
  readonly findings?: readonly { readonly rule: string; readonly related?: readonly string[] }[];
  /**
   * Let the generator reverse the settlement (its findings are then not expected) or reverse and
   * resubmit it (expected on the resubmission), as it does for a tenth of the other schemes.
   */
  readonly mayReverse?: boolean;
}

export interface SchemeKit {
  /**
   * The rule a case is asked for: `generate` calls a detector's scheme once per rule in each cycle
   * of its schemes, so a detector of five rules gets five cases where one of one rule gets one.
   */
  readonly rule: string;
  /** The generator's seeded randomness: the same seed gives the same scheme. */
  readonly rng: {
    int(min: number, max: number): number;
    chance(p: number): boolean;
    pick<T>(items: readonly T[]): T;
  };
  /** First and last service day the scheme may use, as day numbers. */
  readonly firstDay: number;
  readonly lastDay: number;
  /** The reference data `generate` runs with, as detectors see it in `ctx.catalogs`. */
  readonly catalogs: Catalogs;
  /**
   * Makes the scheme's person: the given sex (random when absent) and age in years on firstDay
   * (give or take a year: compute exact ages from the returned birth date). The background then
   * bills them nothing, so the scheme's settlements are all they have.
   */
  person(o: { sex?: "M" | "F"; minAge: number; maxAge: number }): { readonly birthDate: string };
  /** A drug of the background pools, chosen at random. */
  drug(): SchemeItem;
  /** An item of the scheme's own (a code its reference data names), billed at exactly `priceFen` a unit. */
  item(item: SchemeItem): SchemeItem;
  /** A diagnosis the background uses whose code starts with `prefix`; undefined when there is none. */
  diagnosis(prefix: string): SchemeDiagnosis | undefined;
  /** A place of the type for the person, as the generator would pick one for such a visit. */
  place(type: "OUTPATIENT" | "PHARMACY"): SchemePlace;
  /**
   * Plans one settlement of the person. Visits on one day at one place with the same lines would be
   * a duplicate_line finding: give each visit its own day.
   */
  visit(v: SchemeVisit): void;
}

/**
 * Plans one case with the kit and returns its variant's name (labels say `detector/variant`), or
 * undefined when it cannot (nothing planned is kept; the generator draws another person).
 */
export type DetectorScheme = (kit: SchemeKit) => string | undefined;
