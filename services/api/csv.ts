// CSV for spreadsheet users (RFC 4180, CRLF, UTF-8 with a BOM so Excel reads Chinese text).
// Text cells that a spreadsheet would run as a formula (=, +, -, @, tab, CR first) get a
// leading apostrophe (OWASP "CSV injection").

export const BOM = "\uFEFF";

export function csvCell(v: unknown, text = true): string {
  if (v === null || v === undefined) return "";
  let s = typeof v === "string" ? v : typeof v === "object" ? JSON.stringify(v) : String(v);
  if (text && typeof v === "string" && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export interface CsvColumn<T> {
  en: string;
  zh: string;
  value: (row: T) => unknown;
  /** Numbers and booleans are written as they are, never apostrophe-escaped. */
  numeric?: boolean;
}

export function csvHeader<T>(columns: readonly CsvColumn<T>[], lang: "en" | "zh"): string {
  return `${columns.map((c) => csvCell(lang === "zh" ? c.zh : c.en, false)).join(",")}\r\n`;
}

export function csvRow<T>(columns: readonly CsvColumn<T>[], row: T): string {
  return `${columns.map((c) => csvCell(c.value(row), !c.numeric)).join(",")}\r\n`;
}
