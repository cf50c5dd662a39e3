import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadCatalogs, PrefixIndex } from "../../detectors/catalog.ts";

describe("catalogs", () => {
  it("bundles the reference rows with their provenance", () => {
    const c = loadCatalogs();
    // 319 and 1,118 rows; a few generic names repeat a prefix under another product name.
    expect(c.pediatricDrugs.size).toBe(316);
    expect(c.sexDiagnoses.size + c.sexItems.size).toBe(1114);
    expect(c.pediatricDrugs.longest("ZA06CAE0020010101748")?.source).toMatch(/NHSA/);
  });

  it("looks up the longest matching prefix", () => {
    const idx = new PrefixIndex<string>();
    idx.add("N4", "short");
    idx.add("N40", "long");
    idx.add("N40.x00Z", "too long");
    expect(idx.longest("N40.x00")).toBe("long");
    expect(idx.longest("N41.000")).toBe("short");
    expect(idx.longest("M40")).toBeUndefined();
  });

  it("rejects a missing or malformed catalog, naming the file and row", () => {
    expect(() => loadCatalogs("/nonexistent")).toThrow(/ENOENT/);
    const dir = mkdtempSync(join(tmpdir(), "fg-cat-"));
    writeFileSync(
      join(dir, "pediatric-drugs.csv"),
      "code_prefix,generic_name,age_limit,restriction,source\nX1,a,twelve,儿童,t\n",
    );
    writeFileSync(join(dir, "sex-restricted-codes.csv"), "code_prefix,kind,allowed_sex,description,source\n");
    expect(() => loadCatalogs(dir)).toThrow(/pediatric-drugs.csv: row 2: age_limit/);
    writeFileSync(
      join(dir, "pediatric-drugs.csv"),
      "code_prefix,generic_name,age_limit,restriction,source\nX1,a,12,儿童,t\nX1,b,6,儿童,t\n",
    );
    expect(() => loadCatalogs(dir)).toThrow(/X1 is listed twice/);
  });
});
