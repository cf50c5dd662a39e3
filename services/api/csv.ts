// CSV for spreadsheet users (RFC 4180, CRLF, UTF-8 with a BOM so Excel reads Chinese text).
// Text that a spreadsheet could run as a formula gets an apostrophe in front (OWASP "CSV
// injection"): a cell starting with a tab, CR or LF, and the start of the cell or of any line
// in it when, after blanks (spreadsheets trim them), an ASCII or full-width = + - @ follows
// (East Asian Excel reads ＝ as =; an importer that splits lines sees each line as a cell).

export const BOM = "\uFEFF";

const FORMULA_START = "=+\\-@\uFF1D\uFF0B\uFF0D\uFF20";
const RISKY = new RegExp(`^(?=[\\t\\r\\n])|(^|\\r\\n|\\r|\\n)(?=[^\\S\\r\\n]*[${FORMULA_START}])`, "g");

export function csvCell(v: unknown, text = true): string {
  if (v === null || v === undefined) return "";
  let s = typeof v === "string" ? v : typeof v === "object" ? JSON.stringify(v) : String(v);
  if (text && typeof v === "string") s = s.replace(RISKY, "$1'");
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
