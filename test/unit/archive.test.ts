// The raw archive's pure parts: which errors are data errors, how NDJSON lines are kept, how
// bodies are cut, and how paths and URLs become SQL literals.
import { describe, expect, it } from "vitest";
import { clickhouseCode, cutBodies, isDataError, ndjsonArchiveBytes } from "../../services/store/archive.ts";
import { sqlString } from "../../services/store/backend.ts";

describe("raw archive", () => {
  it("keeps a line as it is, and re-writes one whose integer fields ClickHouse would refuse", () => {
    const line = '{"settlement_id":"S1","total_fen":100,"quantity":1.5}';
    expect(ndjsonArchiveBytes(line, { ignored: true }).toString()).toBe(`${line}\n`);
    expect(ndjsonArchiveBytes(`${line}\r`, {}).toString()).toBe(`${line}\r\n`);
    const value = { settlement_id: "S1", total_fen: 100, items: [{ line_no: 1 }] };
    for (const odd of ['"total_fen":100.0', '"total_fen" : 1e2', '"line_no":1E0', '"amount_fen":-5.']) {
      expect(ndjsonArchiveBytes(`{${odd}}`, value).toString()).toBe(`${JSON.stringify(value)}\n`);
    }
    // A string that merely mentions such a field is kept.
    const quoted = '{"item_name":"\\"total_fen\\":1.0"}';
    expect(ndjsonArchiveBytes(quoted, {}).toString()).toBe(`${quoted}\n`);
  });

  it("tells parse errors from outages, in either client's error shape", () => {
    const chdb = Object.assign(new Error("Code: 27. DB::Exception: Cannot parse input"), {
      clickhouseCode: 27,
    });
    const http = Object.assign(new Error("Cannot parse input"), { code: "117" });
    const wrapped = new Error("insert failed", { cause: new Error("Code: 6. DB::Exception: Cannot parse") });
    const denied = new Error(
      "Code: 1001. DB::Exception: std::exception. filesystem error: Permission denied",
    );
    expect([chdb, http, wrapped].map(clickhouseCode)).toEqual([27, 117, 6]);
    expect([chdb, http, wrapped].every(isDataError)).toBe(true);
    expect(isDataError(denied)).toBe(false);
    expect(isDataError(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }))).toBe(
      false,
    );
  });

  it("cuts bodies at record boundaries under the byte budget", () => {
    const c = (n: number) => new Uint8Array(n);
    const runs = cutBodies([c(4), c(4), c(3), c(9), c(1)], 8);
    expect(runs.map((r) => r.map((x) => x.length))).toEqual([[4, 4], [3], [9], [1]]);
    expect(cutBodies([])).toEqual([]);
  });

  it("writes paths and URLs as single SQL string literals", () => {
    expect(sqlString("/data/it's\\here")).toBe("'/data/it\\'s\\\\here'");
    expect(sqlString("http://r:8081/apis/ccompat/v7")).toBe("'http://r:8081/apis/ccompat/v7'");
  });
});
