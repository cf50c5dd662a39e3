import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PrefixIndex } from "../../detectors/prefix-index.ts";

// Codes over a small alphabet, so prefixes share, split and extend each other often.
const code = fc.string({ unit: fc.constantFrom("A", "B", "1", "2"), minLength: 1, maxLength: 6 });

describe("PrefixIndex", () => {
  it("answers every query as a scan over its prefixes would", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(code, fc.nat()), { maxLength: 30 }),
        fc.array(code, { maxLength: 20 }),
        (entries, queries) => {
          const idx = new PrefixIndex<number>();
          const byPrefix = new Map<string, number>();
          for (const [p, v] of entries) {
            idx.add(p, v);
            byPrefix.set(p, v);
          }
          expect(idx.size).toBe(byPrefix.size);
          const sorted = [...byPrefix].sort((a, b) => a[0].length - b[0].length);
          for (const q of queries.concat(entries.map(([p]) => p))) {
            const prefixesOfQ = sorted.filter(([p]) => q.startsWith(p)).map(([, v]) => v);
            expect(idx.get(q)).toBe(byPrefix.get(q));
            expect(idx.longest(q)).toBe(prefixesOfQ.at(-1));
            const seen: number[] = [];
            idx.eachPrefix(q, (v) => seen.push(v));
            expect(seen).toEqual(prefixesOfQ);
            const overlaps = sorted.filter(([p]) => q.startsWith(p) || p.startsWith(q)).map(([, v]) => v);
            const o = idx.overlapping(q);
            if (overlaps.length === 0) expect(o).toBeUndefined();
            else expect(overlaps).toContain(o);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
