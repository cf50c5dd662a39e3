// The browser test (test/e2e/ui.test.ts) checks the machine first: a missing Chromium or CJK font
// is a failure that names the Debian packages to install, not a launch error later on.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { missingBrowserRequirements } from "../e2e/browser.ts";

const dir = mkdtempSync(join(tmpdir(), "fundguard-browser-"));
// A fontconfig setup with no font folders: what a machine without fonts looks like to Chromium.
const noFonts = join(dir, "fonts.conf");
writeFileSync(noFonts, '<?xml version="1.0"?>\n<fontconfig></fontconfig>\n');
const withoutFonts = { ...process.env, FONTCONFIG_FILE: noFonts };
const withoutFontconfig = { ...process.env, PATH: dir };

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("browser test requirements", () => {
  const install = "apt-get update && apt-get install -y chromium fonts-wqy-zenhei";

  it("names Chromium and the packages when there is no Chromium", () => {
    const why = missingBrowserRequirements(join(dir, "no-chromium"));
    expect(why).toContain(`Chromium (nothing at ${join(dir, "no-chromium")})`);
    expect(why).toContain(install);
  });

  it("names the CJK font when fontconfig finds none, or is not installed", () => {
    for (const env of [withoutFonts, withoutFontconfig]) {
      const why = missingBrowserRequirements(process.execPath, env);
      expect(why).toContain("a CJK font");
      expect(why).not.toContain("Chromium (");
      expect(why).toContain(install);
    }
  });

  it("names both when both are missing", () => {
    expect(missingBrowserRequirements(join(dir, "no-chromium"), withoutFonts)).toMatch(
      /needs Chromium .* and a CJK font .*: install them with `apt-get/,
    );
  });
});
