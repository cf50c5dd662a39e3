import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { peekString } from "../../services/ingest/peek.ts";

describe("peekString", () => {
  it("reads a plain top-level string field", () => {
    expect(peekString('{"a":1,"person_id":"P1","t":"x"}', "person_id", true)).toBe("P1");
    expect(peekString('{ "person_id" : "P1" }', "person_id", true)).toBe("P1");
  });

  it("declines what it cannot read exactly, so the caller parses the line", () => {
    for (const line of [
      '{"person_id":"P\\u0031"}', // an escape in the value
      '{"person_id":"X","person_id":"P1"}', // the key twice: JSON.parse keeps the last
      '{"items":[{"person_id":"X"}],"person_id":"P1"}', // nested and top-level
      '{"note":"person_id","x":1}', // the name as a value
      '{"person_id":42}', // not a string
      '{"person_id":"P1', // unterminated
      "",
    ]) {
      expect(peekString(line, "person_id", true), line).toBeUndefined();
    }
  });

  it("without `unique`, takes the first occurrence", () => {
    expect(peekString('{"person_id":"X","person_id":"P1"}', "person_id", false)).toBe("X");
  });

  it("never disagrees with JSON.parse on a top-level field of any JSON object", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), fc.string(), (obj, id) => {
        const line = JSON.stringify({ ...obj, person_id: id });
        const peeked = peekString(line, "person_id", true);
        if (peeked !== undefined) expect(peeked).toBe(id);
      }),
      { numRuns: 2_000 },
    );
  });
});
