// The web UI in a real browser (Debian's Chromium, see browser.ts) on redacted data: an
// investigator of region A opens cases whose related stays lie in region B and sees the
// markers, the kept dates and the timeline, nothing of B and no script error; a raw person id
// typed into the filter shows the API's explanation; the pseudonym link still finds the person.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Suspect } from "../../schemas/index.ts";
import { buildServer, usersFromList } from "../../services/api/index.ts";
import { createLogger } from "../../services/log.ts";
import { chdbConfig, openStore, type Store } from "../../services/store/index.ts";
import { A, loadCrossRegion, SECRETS_B } from "../fixtures/cross-region.ts";
import { launchChromium } from "./browser.ts";

const INV_A = "fg_ui_privacy_inv_a_0123456";

const dir = mkdtempSync(join(tmpdir(), "fundguard-ui-privacy-"));
let store: Store;
let app: Awaited<ReturnType<typeof buildServer>>;
let browser: Browser | undefined;
let base = "";
let live: Suspect[] = [];
const problems: string[] = [];

beforeAll(async () => {
  browser = await launchChromium();
  store = await openStore(chdbConfig(join(dir, "data")));
  live = await loadCrossRegion(store);
  app = await buildServer({
    store,
    users: usersFromList([{ name: "inv-a", role: "investigator", regions: [A], token: INV_A }]),
    log: createLogger("ui-privacy-test", "silent"),
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const addr = app.server.address();
  if (!addr || typeof addr === "string") throw new Error("no listening address");
  base = `http://127.0.0.1:${addr.port}`;
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function loggedIn(): Promise<Page> {
  if (!browser) throw new Error("no browser");
  const page = await (await browser.newContext()).newPage();
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error" && !/400/.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  await page.goto(`${base}/`);
  await page.locator("#token").fill(INV_A);
  await page.getByRole("button", { name: /登录 Log in/ }).click();
  await page.locator("#suspects tbody tr").first().waitFor();
  return page;
}

describe("web UI on redacted evidence", () => {
  it("renders every case of region A with markers and kept dates, nothing of region B", async () => {
    const page = await loggedIn();
    const mine = live.filter((s) => s.region_code === A);
    expect(mine).toHaveLength(4);
    for (const s of mine) {
      await page.evaluate(`location.hash = '#/case/${s.suspect_id}'`);
      await page.locator("#evidence").waitFor();
      await expect.poll(() => page.locator("#case-title").textContent()).toBeTruthy();
      const text = (await page.locator("#view").textContent()) as string;
      expect(text, s.rule).toContain("(outside your regions #1)");
      for (const secret of SECRETS_B) expect(text, `${s.rule}: ${secret}`).not.toContain(secret);
      expect(await page.locator("#timeline svg").count(), s.rule).toBe(1);
    }
    const overlap = mine.find((s) => s.rule === "overlapping_stays") as Suspect;
    await page.evaluate(`location.hash = '#/case/${overlap.suspect_id}'`);
    await expect.poll(() => page.locator("#evidence").textContent()).toContain("2025-07-10");
    expect(await page.locator("#evidence").textContent()).toContain("(outside your regions)");
    await page.context().close();
    expect(problems).toEqual([]);
  });

  it("a raw person id in the filter shows why; the pseudonym link of a case lists its suspects", async () => {
    const page = await loggedIn();
    expect(await page.locator("input[name=person]").getAttribute("placeholder")).toContain("pseudonym");
    await page.locator("input[name=person]").fill("P-OVERLAP");
    await page.locator("#search").click();
    await expect.poll(() => page.locator("#results [role=alert]").textContent()).toContain("pseudonym");
    const overlap = live.find((s) => s.rule === "overlapping_stays") as Suspect;
    await page.evaluate(`location.hash = '#/case/${overlap.suspect_id}'`);
    await page.getByText("该人员的全部线索 All suspects of this person").click();
    await expect.poll(() => page.locator("#suspects tbody tr").count()).toBe(1);
    await page.context().close();
    expect(problems).toEqual([]);
  });
});
