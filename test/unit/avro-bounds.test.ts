import avro from "avsc";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AvroBoundsError, avroBounds } from "../../schemas/avro-bounds.ts";
import { avroType, DEFAULT_LIMITS, fieldLimits, settlementSchema } from "../../schemas/index.ts";
import { line, settlement } from "../fixtures/events.ts";
import { varint } from "../fixtures/hostile.ts";

const type = avroType(settlementSchema);
const limits = fieldLimits("settlement", DEFAULT_LIMITS);
const bounds = avroBounds(type, limits);

/** A settlement body whose diagnoses array is the given bytes (its last four fields are empty or zero). */
function withDiagnoses(bytes: Buffer): Buffer {
  const body = type.toBuffer(settlement({ diagnoses: [], items: [], total_fen: 0, fund_paid_fen: 0 }));
  return Buffer.concat([body.subarray(0, body.length - 4), bytes, Buffer.from([0, 0, 0])]);
}

const refusal = (body: Buffer, check = bounds) => {
  try {
    check(body);
    return undefined;
  } catch (e) {
    expect(e).toBeInstanceOf(AvroBoundsError);
    return e as AvroBoundsError;
  }
};

describe("Avro bounds", () => {
  const good = type.toBuffer(
    settlement({
      items: [line(), line({ line_no: 2, item_name: "床位费" })],
      diagnoses: [{ code: "N40.x00", name: "前列腺增生", primary: true }],
    }),
  );

  it("pass a valid body, which then decodes as before", () => {
    expect(refusal(good)).toBeUndefined();
    expect(type.fromBuffer(good)).toEqual(type.fromBuffer(Buffer.from(good)));
  });

  it.each([
    ["3·10⁸", 3e8],
    ["2⁴⁰", 2 ** 40],
    ["2⁶²", 2 ** 62],
  ])("refuse an array count of %s in a small body at once, allocating nothing", (_name, n) => {
    const body = withDiagnoses(varint(n));
    expect(body.length).toBeLessThan(140);
    const heap = process.memoryUsage().heapUsed;
    const t0 = performance.now();
    const e = refusal(body);
    expect(performance.now() - t0).toBeLessThan(50);
    expect(process.memoryUsage().heapUsed - heap).toBeLessThan(8 << 20);
    expect(e?.message).toMatch(/^diagnoses: a block of \d+ entries cannot fit in the \d+ bytes left$/);
    expect(e?.overLimit).toBe(false);
  });

  it("refuse a negative block count whose block size exceeds the body", () => {
    expect(refusal(withDiagnoses(Buffer.concat([varint(-5), varint(2 ** 40)])))?.message).toMatch(
      /diagnoses: block size \d+ exceeds the \d+ bytes left/,
    );
  });

  it("accept a negative block count with the right block size, and refuse a wrong one", () => {
    // One diagnosis (code "A", name "b", primary) in a block that states its size, 5 bytes.
    const entry = Buffer.from([2, 0x41, 2, 0x62, 1]);
    const sized = withDiagnoses(Buffer.concat([varint(-1), varint(5), entry, varint(0)]));
    expect(refusal(sized)).toBeUndefined();
    expect(type.fromBuffer(sized).diagnoses).toEqual([{ code: "A", name: "b", primary: true }]);
    expect(refusal(withDiagnoses(Buffer.concat([varint(-1), varint(4), entry, varint(0)])))?.message).toMatch(
      /block size/,
    );
  });

  it("refuse every truncation of a valid body", () => {
    for (let k = 0; k < good.length; k++) {
      expect(refusal(good.subarray(0, k)), `first ${k} bytes`).toBeDefined();
    }
  });

  it("refuse trailing bytes", () => {
    expect(refusal(Buffer.concat([good, Buffer.from([0])]))?.message).toBe(
      "1 trailing bytes after the record",
    );
  });

  it("refuse a string length beyond the bytes left, and a negative one", () => {
    const body = Buffer.concat([varint(2 ** 40), Buffer.from("S1")]);
    expect(refusal(body)?.message).toMatch(/^settlement_id: string length \d+ exceeds the 2 bytes left$/);
    expect(refusal(Buffer.concat([varint(-3), good]))?.message).toMatch(
      /settlement_id: negative string length/,
    );
  });

  it("refuse strings, diagnoses and items beyond the limits, as over the limit", () => {
    const small = avroBounds(type, { maxStringLength: 32, maxEntries: { diagnoses: 1, items: 2 } });
    const over = (s: ReturnType<typeof settlement>) => refusal(type.toBuffer(s), small);
    expect(over(settlement({ items: [line(), line()] }))).toBeUndefined();
    const items = over(settlement({ items: [line(), line(), line()] }));
    expect([items?.message, items?.overLimit]).toEqual(["items: more than the limit of 2 entries", true]);
    const d = { code: "A", name: "b", primary: true };
    expect(over(settlement({ diagnoses: [d, d] }))?.message).toBe(
      "diagnoses: more than the limit of 1 entries",
    );
    const name = over(settlement({ items: [line({ item_name: "x".repeat(33) })] }));
    expect([name?.message, name?.overLimit]).toEqual([
      "items[].item_name: string of 33 bytes is longer than the limit of 32 bytes",
      true,
    ]);
  });

  it("refuse out-of-range enum and union indexes", () => {
    // settlement_id "S", event_type index 7
    expect(refusal(Buffer.concat([varint(1), Buffer.from("S"), varint(7)]))?.message).toBe(
      "event_type: enum index 7 out of range",
    );
    expect(refusal(Buffer.concat([varint(1), Buffer.from("S"), varint(0), varint(2)]))?.message).toBe(
      "original_settlement_id: union index 2 out of range",
    );
  });

  it("bound entries of zero bytes (arrays of nulls, nested) by the body's size", () => {
    const nulls = avro.Type.forSchema({
      type: "record",
      name: "Nulls",
      fields: [{ name: "xs", type: { type: "array", items: { type: "array", items: "null" } } }],
    });
    const check = avroBounds(nulls, limits);
    expect(refusal(nulls.toBuffer({ xs: [[null, null], []] }), check)).toBeUndefined();
    // 40 inner arrays, each claiming 40 nulls: 1,600 entries in ~120 bytes.
    const inner = Buffer.concat([varint(40), varint(0)]);
    const body = Buffer.concat([varint(40), ...Array.from({ length: 40 }, () => inner), varint(0)]);
    expect(refusal(body, check)?.message).toMatch(/more entries than the \d+-byte body could hold/);
  });

  it("hold map keys and values to the limits", () => {
    const m = avro.Type.forSchema({
      type: "record",
      name: "M",
      fields: [{ name: "m", type: { type: "map", values: "string" } }],
    });
    const check = avroBounds(m, { maxStringLength: 4, maxEntries: {} });
    expect(refusal(m.toBuffer({ m: { ab: "cd" } }), check)).toBeUndefined();
    expect(refusal(m.toBuffer({ m: { abcde: "cd" } }), check)?.message).toMatch(/^m\{\}: string of 5 bytes/);
    expect(refusal(Buffer.concat([varint(3e8), varint(0)]), check)?.message).toMatch(
      /m: a block of 300000000/,
    );
  });

  it("refuse a recursive writer schema nested beyond the depth limit", () => {
    const tree = avro.Type.forSchema({
      type: "record",
      name: "Node",
      fields: [{ name: "next", type: ["null", "Node"] }],
    });
    const check = avroBounds(tree, limits);
    const nest = (depth: number) =>
      Buffer.concat([...Array.from({ length: depth }, () => varint(1)), varint(0)]);
    expect(refusal(nest(10), check)).toBeUndefined();
    expect(refusal(nest(1_000), check)?.message).toMatch(/nested deeper than 64 levels/);
  });

  it("refuse a long beyond what a JavaScript number holds exactly, as avsc would", () => {
    const check = avroBounds(avro.Type.forSchema("long"), limits);
    // 2^54 as a zig-zag varint (2^53 once decoded): the counterexample fast-check found.
    const big = Uint8Array.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
    expect(refusal(Buffer.from(big), check)?.message).toMatch(/long beyond/);
    expect(refusal(Buffer.from(big.with(7, 0x1f)), check)).toBeUndefined();
  });

  it("let avsc read within the body whatever they pass (random bodies)", () => {
    const resolver = type.createResolver(type);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.nat(good.length), (noise, at) => {
        // Valid bytes with noise spliced in reach deeper than pure noise.
        const body = Buffer.concat([good.subarray(0, at), Buffer.from(noise)]);
        if (refusal(body) === undefined) expect(() => type.fromBuffer(body, resolver, false)).not.toThrow();
      }),
      { numRuns: 3_000 },
    );
  });
});
