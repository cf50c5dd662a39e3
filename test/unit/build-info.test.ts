import { cpSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
// @ts-expect-error plain JS module of the executable, no types
import { buildInputs, distIsFresh, writeStamp } from "../../bin/build-info.js";

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

/** A checkout-shaped tree with a stamped dist/. */
function stampedTree(): string {
  const root = mkdtempSync(join(tmpdir(), "fg-build-"));
  roots.push(root);
  for (const dir of ["schemas", "detectors/reference", "services/cli", "dist"])
    mkdirSync(join(root, dir), { recursive: true });
  for (const file of [
    "schemas/a.ts",
    "detectors/reference/x.csv",
    "services/cli/main.ts",
    "tsconfig.json",
    "tsconfig.build.json",
  ])
    writeFileSync(join(root, file), "x");
  writeStamp(buildInputs(root), root);
  return root;
}

describe("the executable's dist/ freshness", () => {
  it("is fresh right after a build and stale without one", () => {
    const root = stampedTree();
    expect(distIsFresh(root)).toBe(true);
    rmSync(join(root, "dist"), { recursive: true });
    expect(distIsFresh(root)).toBe(false);
  });

  it("is stale once a source, an asset or the compiler config changes", () => {
    for (const file of ["services/cli/main.ts", "detectors/reference/x.csv", "tsconfig.build.json"]) {
      const root = stampedTree();
      const later = new Date(Date.now() + 5_000);
      utimesSync(join(root, file), later, later);
      expect(distIsFresh(root), file).toBe(false);
    }
  });

  it("is stale once a source is added or removed, and ignores documentation", () => {
    const added = stampedTree();
    writeFileSync(join(added, "services/cli/new.ts"), "x");
    expect(distIsFresh(added)).toBe(false);
    const removed = stampedTree();
    rmSync(join(removed, "schemas/a.ts"));
    expect(distIsFresh(removed)).toBe(false);
    const docs = stampedTree();
    writeFileSync(join(docs, "services/README.md"), "x");
    expect(distIsFresh(docs)).toBe(true);
  });

  it("holds for this checkout's own tree shape", () => {
    const root = mkdtempSync(join(tmpdir(), "fg-build-"));
    roots.push(root);
    for (const dir of ["schemas", "detectors", "services"])
      cpSync(join(process.cwd(), dir), join(root, dir), { recursive: true });
    for (const file of ["tsconfig.json", "tsconfig.build.json"])
      cpSync(join(process.cwd(), file), join(root, file));
    mkdirSync(join(root, "dist"));
    writeStamp(buildInputs(root), root);
    expect(distIsFresh(root)).toBe(true);
  });
});
