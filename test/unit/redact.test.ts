// Redaction of related settlements outside the caller's regions, on evidence shapes the
// detectors write and on ones they might: nested stays, prefixed first copies, repeats.
import { describe, expect, it } from "vitest";
import type { User } from "../../services/api/auth.ts";
import { OUTSIDE_REGIONS as OUT, RelatedRedaction } from "../../services/api/redact.ts";

const scoped: User = { name: "inv", role: "investigator", regions: ["341502"], unmask: false };
const everyRegion: User = { name: "admin", role: "admin", regions: null, unmask: true };

describe("RelatedRedaction", () => {
  it("is off for users of every region, and when nothing related is hidden", () => {
    expect(RelatedRedaction.of(everyRegion, { settlement_ids: ["S", "R"] })).toBeNull();
    expect(RelatedRedaction.of(scoped, { settlement_ids: ["S", "R"], hidden_related: [] })).toBeNull();
    expect(RelatedRedaction.of(scoped, { settlement_ids: ["S"] })).toBeNull();
  });

  it("fails closed: related settlements not looked up are all hidden", () => {
    const r = RelatedRedaction.of(scoped, { settlement_ids: ["S", "R1", "R2"] });
    expect(r?.ids(["S", "R1", "R2"])).toEqual([
      "S",
      "(outside your regions #1)",
      "(outside your regions #2)",
    ]);
  });

  it("numbers hidden ids in settlement_ids order, once each; the suspect settlement is never hidden", () => {
    const r = RelatedRedaction.of(scoped, {
      settlement_ids: ["S", "B1", "A1", "B2", "B1"],
      hidden_related: ["B2", "B1", "S"],
    }) as RelatedRedaction;
    expect(r.ids(["S", "B1", "A1", "B2", "B1"])).toEqual([
      "S",
      "(outside your regions #1)",
      "A1",
      "(outside your regions #2)",
      "(outside your regions #1)",
    ]);
  });

  it("masks every fact of a hidden settlement but its dates, at any depth, by key prefix", () => {
    const r = RelatedRedaction.of(scoped, {
      settlement_ids: ["S", "B1"],
      hidden_related: ["B1"],
    }) as RelatedRedaction;
    const evidence = {
      stay: { settlement_id: "S", institution_id: "HA", admission_date: "2025-07-05" },
      nested: {
        stays: [
          {
            settlement_id: "B1",
            institution_id: "HB",
            institution_name: "裕安区人民医院",
            admission_date: "2025-07-01",
            discharge_date: "2025-07-10",
            discharge_reason: "TRANSFER",
            original_settlement_id: "B0",
            items: [{ item_code: "x" }],
          },
        ],
      },
      lines: [
        {
          line_no: 1,
          item_code: "250101001",
          first_settlement_id: "B1",
          first_line_no: 3,
          first_settled_at: "t",
        },
      ],
      mentions: ["B1", "S", 5, null, true],
      days: 12,
    };
    expect(r.evidence(evidence)).toEqual({
      stay: evidence.stay,
      nested: {
        stays: [
          {
            settlement_id: "(outside your regions #1)",
            institution_id: OUT,
            institution_name: OUT,
            admission_date: "2025-07-01",
            discharge_date: "2025-07-10",
            discharge_reason: OUT,
            original_settlement_id: OUT,
            items: OUT,
          },
        ],
      },
      lines: [
        {
          line_no: 1,
          item_code: "250101001",
          first_settlement_id: "(outside your regions #1)",
          first_line_no: OUT,
          first_settled_at: "t",
        },
      ],
      mentions: ["(outside your regions #1)", "S", 5, null, true],
      days: 12,
    });
  });
});
