// What a detector's generator scheme may do: plan a few settlements of one person, saying which of
// them its rules must find. `generate` (services/generate/detector-schemes.ts) implements the kit;
// the detector stays pure and never sees the generator's internals.
import type { Settlement } from "../schemas/index.ts";

/** An item the generator bills in the background (its codes pass every catalog check). */
export interface SchemeItem {
  readonly code: string;
  readonly name: string;
  readonly category: Settlement["items"][number]["category"];
  /** Unit price in fen. */
  readonly priceFen: number;
}

export interface SchemeVisit {
  /** Name of this settlement within the scheme, for `related`. */
  readonly role: string;
  readonly type: "OUTPATIENT" | "PHARMACY";
  /** Service (and settlement) day, as a day number (`dayNumber` in dates.ts). */
  readonly day: number;
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
  /** The generator's seeded randomness: the same seed gives the same scheme. */
  readonly rng: {
    int(min: number, max: number): number;
    chance(p: number): boolean;
    pick<T>(items: readonly T[]): T;
  };
  /** First and last service day the scheme may use, as day numbers. */
  readonly firstDay: number;
  readonly lastDay: number;
  /**
   * Makes the scheme's person: the given sex (random when absent) and age in years on firstDay.
   * The background then bills them nothing, so the scheme's settlements are all they have.
   */
  person(o: { sex?: "M" | "F"; minAge: number; maxAge: number }): void;
  /** A drug of the background pools, chosen at random. */
  drug(): SchemeItem;
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
