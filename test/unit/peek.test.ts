import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { keyNeedle, peekValue } from "../../services/ingest/peek.ts";

const PERSON = keyNeedle("person_id");
const peek = (line: string, unique = true) => {
  const bytes = Buffer.from(line, "utf8");
  const at = peekValue(bytes, PERSON, unique);
  return at && bytes.toString("utf8", at[0], at[1]);
};

describe("peekValue", () => {
  it("finds a plain top-level string field in the raw bytes", () => {
    expect(peek('{"a":"天","person_id":"P1","t":"x"}')).toBe("P1");
    expect(peek('{ "person_id" : "P1" }')).toBe("P1");
  });

  it("declines what it cannot read exactly, so the caller parses the line", () => {
    for (const line of [
      '{"person_id":"P\\u0031"}', // an escape in the value
      '{"person_id":"张三"}', // non-ASCII: left to the decoder
      '{"person_id":"X","person_id":"P1"}', // the key twice: JSON.parse keeps the last
      '{"items":[{"person_id":"X"}],"person_id":"P1"}', // nested and top-level
      '{"note":"person_id","x":1}', // the name as a value
      '{"person_id":42}', // not a string
      '{"person_id":"P1', // unterminated
      "",
    ]) {
      expect(peek(line), line).toBeUndefined();
    }
  });

  it("without `unique`, takes the first occurrence", () => {
    expect(peek('{"person_id":"X","person_id":"P1"}', false)).toBe("X");
  });

  it("never disagrees with JSON.parse on a top-level field of any JSON object", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), fc.string(), (obj, id) => {
        const peeked = peek(JSON.stringify({ ...obj, person_id: id }));
        if (peeked !== undefined) expect(peeked).toBe(id);
      }),
      { numRuns: 2_000 },
    );
  });
});
