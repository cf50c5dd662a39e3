// Calendar arithmetic for the generator: days are whole days since 1970-01-01 (CST calendar),
// times are seconds after CST midnight. Written independently of detectors/dates.ts so the
// labels do not inherit a detector's mistakes.
export const DAY_MS = 86_400_000;
const CST_OFFSET_MS = 8 * 3_600_000;

export function parseDay(date: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!m) throw new Error(`expected a date YYYY-MM-DD, got ${JSON.stringify(date)}`);
  const t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  const back = new Date(t);
  if (
    back.getUTCFullYear() !== Number(m[1]) ||
    back.getUTCMonth() !== Number(m[2]) - 1 ||
    back.getUTCDate() !== Number(m[3])
  ) {
    throw new Error(`not a calendar date: ${date}`);
  }
  return t / DAY_MS;
}

/** [year, month (1-12), day of month] of a day number (proleptic Gregorian, days since 1970-01-01). */
export function ymd(day: number): [number, number, number] {
  // H. Hinnant's civil_from_days: pure integer arithmetic, much cheaper than Date.
  const z = day + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d];
}

const dateCache = new Map<number, string>();

export function dateOf(day: number): string {
  let s = dateCache.get(day);
  if (s === undefined) {
    const [y, m, d] = ymd(day);
    s = `${String(y).padStart(4, "0")}-${m < 10 ? "0" : ""}${m}-${d < 10 ? "0" : ""}${d}`;
    if (dateCache.size < 100_000) dateCache.set(day, s);
  }
  return s;
}

export function yearOf(day: number): number {
  return ymd(day)[0];
}

export function dayOfYmd(y: number, m: number, d: number): number {
  return Date.UTC(y, m - 1, d) / DAY_MS;
}

export function isLeapYear(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

/**
 * Age in completed years on `on`: the years since birth, less one while the (month, day)
 * of `on` is before the birthday's. So someone born on 29 February turns a year older on
 * 1 March in common years.
 */
export function ageOn(birthDay: number, on: number): number {
  const [by, bm, bd] = ymd(birthDay);
  const [y, m, d] = ymd(on);
  return y - by - (m < bm || (m === bm && d < bd) ? 1 : 0);
}

/** The first day on which someone born on `birthDay` is `age` years old. */
export function birthdayAt(birthDay: number, age: number): number {
  const [by, bm, bd] = ymd(birthDay);
  const y = by + age;
  if (bm === 2 && bd === 29 && !isLeapYear(y)) return dayOfYmd(y, 3, 1);
  return dayOfYmd(y, bm, bd);
}

/** Epoch milliseconds of `sec` seconds after CST midnight of `day`. */
export function msOf(day: number, sec: number): number {
  return day * DAY_MS - CST_OFFSET_MS + sec * 1000;
}

/** CST day of an instant. */
export function dayOfMs(ms: number): number {
  return Math.floor((ms + CST_OFFSET_MS) / DAY_MS);
}

const two = (n: number) => (n < 10 ? `0${n}` : String(n));

/** ISO-8601 with the +08:00 offset, e.g. 2025-03-01T09:30:05+08:00. */
export function isoCst(ms: number): string {
  const day = dayOfMs(ms);
  const sec = Math.floor((ms - msOf(day, 0)) / 1000);
  return `${dateOf(day)}T${two(Math.floor(sec / 3600))}:${two(Math.floor(sec / 60) % 60)}:${two(sec % 60)}+08:00`;
}
