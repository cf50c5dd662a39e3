// CSV cells a spreadsheet could run as a formula get an apostrophe in front, whatever variant
// hides the formula character: leading blanks, full-width forms, or a line break inside the cell.
import { describe, expect, it } from "vitest";
import { csvCell, csvRow } from "../../services/api/csv.ts";

/** Each line a line-splitting importer would see as a cell, quotes undone. */
const linesOf = (cell: string) =>
  (cell.startsWith('"') ? cell.slice(1, -1).replaceAll('""', '"') : cell).split(/\r\n|\r|\n/);
const FORMULA = /^[^\S\r\n]*[=+\-@＝＋－＠]/;

const HOSTILE: [name: string, input: string, expected: string][] = [
  ["ASCII =", '=HYPERLINK("http://x")', '"\'=HYPERLINK(""http://x"")"'],
  ["ASCII +", "+1+2", "'+1+2"],
  ["ASCII -", "-2+3", "'-2+3"],
  ["ASCII @", "@SUM(A1)", "'@SUM(A1)"],
  ["leading tab", "\tabc", "'\tabc"],
  ["leading CR", "\rabc", '"\'\rabc"'],
  ["leading LF", "\nabc", '"\'\nabc"'],
  ["space then =", " =1+1", "' =1+1"],
  ["spaces then +", "   +1", "'   +1"],
  ["tab then =", "\t=1+1", "'\t=1+1"],
  ["space and tab then @", " \t@x", "' \t@x"],
  ["no-break space then =", "\u00a0=1", "'\u00a0=1"],
  ["ideographic space then =", "\u3000=1", "'\u3000=1"],
  ["full-width ＝", "＝1+1", "'＝1+1"],
  ["full-width ＋", "＋1", "'＋1"],
  ["full-width －", "－1", "'－1"],
  ["full-width ＠", "＠SUM(A1)", "'＠SUM(A1)"],
  ["space then full-width ＝", " ＝1", "' ＝1"],
  ["LF then =", "name\n=cmd|' /C calc'!A0", "\"name\n'=cmd|' /C calc'!A0\""],
  ["CR then +", "name\r+1", '"name\r\'+1"'],
  ["CRLF then -", "name\r\n-1", '"name\r\n\'-1"'],
  ["CRLF, space, then @", "name\r\n @x", '"name\r\n\' @x"'],
  ["LF then full-width ＝", "name\n＝1", '"name\n\'＝1"'],
  ["two lines, both formulas", "=a\n=b", "\"'=a\n'=b\""],
  ["blank lines then =", "a\n\n\n=b", '"a\n\n\n\'=b"'],
];

const BENIGN: string[] = [
  "H34150200123",
  "六安市人民医院",
  "2025-03-01",
  "a-b+c=d@e",
  "x = 1",
  "name\nsecond line",
  "丁桂儿脐贴 10mg×2",
  "",
];

describe("csvCell: formula variants", () => {
  it.each(HOSTILE)("neutralises %s", (_name, input, expected) => {
    const out = csvCell(input);
    expect(out).toBe(expected);
    for (const l of linesOf(out)) expect(l).not.toMatch(FORMULA);
  });

  it.each(BENIGN.map((b) => [JSON.stringify(b), b]))("leaves %s as it is", (_name, input) => {
    const out = csvCell(input);
    expect(linesOf(out).join("\n")).toBe(input.replace(/\r\n|\r/g, "\n"));
  });

  it("numeric columns and headers are never escaped; non-strings are written as they are", () => {
    expect(csvCell(-5, false)).toBe("-5");
    expect(csvCell("-5", false)).toBe("-5");
    expect(csvCell(-5)).toBe("-5");
    expect(csvCell(null)).toBe("");
    expect(csvCell({ a: "=x" })).toBe('"{""a"":""=x""}"');
  });

  it("rows escape every text cell", () => {
    const cols = [
      { en: "a", zh: "a", value: (r: string[]) => r[0] },
      { en: "b", zh: "b", value: (r: string[]) => r[1] },
    ];
    expect(csvRow(cols, [" =1", "ok\n＠x"])).toBe("' =1,\"ok\n'＠x\"\r\n");
  });
});
