// A person's changelog entries of one flush reach the log together or not at all: a crash between
// two produce requests must never restore a settlement without the findings decided with it.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type OutMessage, produceRequests } from "../../services/kafka/produce.ts";
import { changelogGroup, changelogMessages } from "../../services/worker/changelog.ts";

const SEP = "\u0001";
const entry = (person: string, kind: string, id: string) => ({
  key: `${person}${SEP}${kind}${SEP}${id}`,
  value: { id },
});

/** Which request each group's messages went to. */
function requestsOfGroups(requests: { messages: OutMessage[] }[], groupOf: (m: OutMessage) => string) {
  const seen = new Map<string, Set<number>>();
  requests.forEach((r, i) => {
    for (const m of r.messages) seen.set(groupOf(m), (seen.get(groupOf(m)) ?? new Set()).add(i));
  });
  return seen;
}

describe("changelog messages", () => {
  it("keep each person's entries adjacent, persons in first-changed order, the watermark its own group", () => {
    const dirty = [
      entry("P1", "s", "a"),
      entry("P2", "s", "b"),
      entry("P1", "f", "a"),
      { key: `${SEP}watermark`, value: 5 },
      entry("P2", "f", "b"),
      entry("P1", "c", "x"),
    ];
    const messages = changelogMessages(3, dirty);
    expect(messages.map((m) => m.key?.toString())).toEqual([
      dirty[0]?.key,
      dirty[2]?.key,
      dirty[5]?.key,
      dirty[1]?.key,
      dirty[4]?.key,
      dirty[3]?.key,
    ]);
    expect(new Set(messages.map(changelogGroup))).toEqual(new Set(["3:P1", "3:P2", "3:"]));
    expect(messages.every((m) => m.partition === 3)).toBe(true);
  });

  it("carry each key and value as its exact UTF-8 bytes, deletions as null", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            person: fc.constantFrom("P1", "参保人-二", "P3"),
            id: fc.string({ unit: "grapheme", maxLength: 12 }),
            value: fc.option(fc.jsonValue(), { nil: null }),
          }),
          { maxLength: 40 },
        ),
        (entries) => {
          const dirty = entries.map((e) => ({ key: `${e.person}${SEP}s${SEP}${e.id}`, value: e.value }));
          const byKey = new Map(dirty.map((d) => [d.key, d.value]));
          const messages = changelogMessages(
            1,
            [...byKey].map(([key, value]) => ({ key, value })),
          );
          expect(messages.length).toBe(byKey.size);
          for (const m of messages) {
            const key = (m.key as Buffer).toString("utf8");
            expect(byKey.has(key), key).toBe(true);
            const value = byKey.get(key);
            if (value === null) expect(m.value).toBeNull();
            else expect((m.value as Buffer).toString("utf8")).toBe(JSON.stringify(value));
          }
        },
      ),
    );
  });

  it("go to the log with no person split across two produce requests", () => {
    // 3 persons of 300 entries in one partition: without groups the 500-message cap cuts the second.
    const dirty = ["A", "B", "C"].flatMap((p) =>
      Array.from({ length: 300 }, (_, i) => entry(p, "s", String(i))),
    );
    const messages = changelogMessages(0, dirty);
    const requests = produceRequests([{ topic: "cl", messages, groupOf: changelogGroup }]);
    expect(requests.length).toBeGreaterThan(1);
    for (const [group, at] of requestsOfGroups(requests, changelogGroup)) expect(at.size, group).toBe(1);
    expect(requests.flatMap((r) => r.messages)).toEqual(messages);
  });

  it("split a group only when it alone is over the byte budget, in order, each message once", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            partition: fc.integer({ min: 0, max: 2 }),
            sizes: fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 40 }),
          }),
          { minLength: 1, maxLength: 30 },
        ),
        fc.integer({ min: 500, max: 4_000 }),
        (groups, budget) => {
          const messages: OutMessage[] = groups.flatMap((g, gi) =>
            g.sizes.map((size, i) => ({
              key: `g${gi}${SEP}s${SEP}${i}`,
              partition: g.partition,
              value: "x".repeat(size),
            })),
          );
          const groupOf = (m: OutMessage) => String(m.key).split(SEP)[0] as string;
          const requests = produceRequests([{ topic: "cl", messages, maxBatchBytes: budget, groupOf }]);
          expect(requests.flatMap((r) => r.messages)).toEqual(messages);
          const at = requestsOfGroups(requests, groupOf);
          groups.forEach((g, gi) => {
            const bytes = g.sizes.reduce((n, s) => n + s + 64 + 10, 0);
            if (bytes <= budget) expect(at.get(`g${gi}`)?.size, `g${gi}`).toBe(1);
          });
        },
      ),
    );
  });
});
