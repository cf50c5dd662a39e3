// Calendar arithmetic on the contract's YYYY-MM-DD strings, all in China Standard Time.
const DAY_MS = 86_400_000;
const CST_OFFSET_MS = 8 * 3_600_000;

/** Days since 1970-01-01 of a YYYY-MM-DD date. */
export function dayNumber(date: string): number {
  return Date.UTC(Number(date.slice(0, 4)), Number(date.slice(5, 7)) - 1, Number(date.slice(8, 10))) / DAY_MS;
}

export function dateOfDay(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}

export function addDays(date: string, days: number): string {
  return dateOfDay(dayNumber(date) + days);
}

export function daysBetween(from: string, to: string): number {
  return dayNumber(to) - dayNumber(from);
}

/** The CST calendar date of an instant given in epoch milliseconds. */
export function cstDate(epochMs: number): string {
  return new Date(epochMs + CST_OFFSET_MS).toISOString().slice(0, 10);
}

/** Age in completed years on `on`; a 29 February birthday falls on 1 March in common years. */
export function ageOn(birthDate: string, on: string): number {
  const years = Number(on.slice(0, 4)) - Number(birthDate.slice(0, 4));
  return on.slice(5) < birthDate.slice(5) ? years - 1 : years;
}

/** The CST year cstYear last computed, as epoch milliseconds [from, to): events come in time order, so most share it. */
let yearFromMs = 0;
let yearToMs = 0;
let cachedYear = 0;

/** The CST calendar year of an instant, as read from cstDate. */
export function cstYear(epochMs: number): number {
  if (epochMs >= yearFromMs && epochMs < yearToMs) return cachedYear;
  const year = Number(cstDate(epochMs).slice(0, 4));
  // Only four-digit years are remembered: outside them cstDate's text (so the year read from it) has another shape.
  if (year >= 1000 && year <= 9998) {
    yearFromMs = Date.UTC(year, 0, 1) - CST_OFFSET_MS;
    yearToMs = Date.UTC(year + 1, 0, 1) - CST_OFFSET_MS;
    cachedYear = year;
  }
  return year;
}
