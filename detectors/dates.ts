// Calendar arithmetic on the contract's YYYY-MM-DD strings, all in China Standard Time.
import { remembered } from "./sdk.ts";

const CST_OFFSET_MS = 8 * 3_600_000;

/** Days since 1970-01-01 of a YYYY-MM-DD date (H. Hinnant's days_from_civil; Date.UTC would read 0050 as 1950). */
function civilDayNumber(date: string): number {
  const m = Number(date.slice(5, 7));
  const y = Number(date.slice(0, 4)) - (m <= 2 ? 1 : 0);
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5) + Number(date.slice(8, 10)) - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

const pad2 = (n: number) => (n < 10 ? `0${n}` : `${n}`);

/**
 * The YYYY-MM-DD date of a day number (years 0000–9999), by H. Hinnant's civil_from_days: window
 * detectors call it per line, where a Date and its toISOString cost a few percent of a lane.
 */
function civilDate(day: number): string {
  const z = day + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  const y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  return `${String(y).padStart(4, "0")}-${pad2(m)}-${pad2(d)}`;
}

// Window detectors work dates out per line, and a stream holds a few hundred distinct ones.
export const dayNumber = remembered(civilDayNumber);
export const dateOfDay = remembered(civilDate);

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
