// The web UI in a real browser: Debian's Chromium driven by playwright-core against a real
// listener over embedded chdb. Log in, filter, open a case, change its status, export CSV,
// look at the charts; suspects stored after the page opened announce themselves (/stream).
// Screenshots are kept under test-results/ui/ as artifacts.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeathRecord, Settlement, Suspect } from "../../schemas/index.ts";
import { buildServer, usersFromList } from "../../services/api/index.ts";
import { EmbeddedPipeline } from "../../services/embedded/pipeline.ts";
import { createLogger } from "../../services/log.ts";
import { chdbConfig, openStore, type Store } from "../../services/store/index.ts";
import { death, line, settlement, stay } from "../fixtures/events.ts";
import { storeEvents } from "../fixtures/run.ts";
import { launchChromium } from "./browser.ts";

const SHOTS = join(process.cwd(), "test-results", "ui");
const ADMIN = "fg_ui_admin_token_0123456789";
const INV_A = "fg_ui_investigator_a_012345";

const inA = { region_code: "341502", institution_id: "H34150200123", institution_name: "六安市人民医院" };
const inB = { region_code: "341503", institution_id: "H34150300456", institution_name: "裕安区人民医院" };
const events: (Settlement | DeathRecord)[] = [
  stay("2025-03-01", "2025-03-05", { settlement_id: "UA1", person_id: "P-READMIT", ...inA }),
  stay("2025-03-10", "2025-03-15", { settlement_id: "UA2", person_id: "P-READMIT", ...inA }),
  settlement({
    settlement_id: "UA3",
    person_id: "P-PEDIATRIC",
    admission_date: "2025-04-02",
    items: [
      line({
        item_code: "ZZ01AAD0305010",
        item_name: "丁桂儿脐贴",
        category: "DRUG",
        service_date: "2025-04-02",
      }),
    ],
    ...inA,
  }),
  // Holter and routine ECG on one day: the bundled rule table's row E0001 (互斥).
  settlement({
    settlement_id: "UC1",
    person_id: "P-RULES",
    admission_date: "2025-05-06",
    items: [
      line({ line_no: 1, item_code: "310701022", item_name: "动态心电图", service_date: "2025-05-06" }),
      line({ line_no: 2, item_code: "310701021", item_name: "常规心电图", service_date: "2025-05-06" }),
    ],
    ...inB,
  }),
  death("2025-02-01", { person_id: "P-DECEASED" }),
  settlement({ settlement_id: "UB1", person_id: "P-DECEASED", admission_date: "2025-06-01", ...inB }),
];

const dir = mkdtempSync(join(tmpdir(), "fundguard-ui-"));
let store: Store;
let app: Awaited<ReturnType<typeof buildServer>>;
let browser: Browser | undefined;
let base = "";
let live: Suspect[] = [];
const problems: string[] = [];

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  store = await openStore(chdbConfig(join(dir, "data")));
  live = await storeEvents(store, events);
  app = await buildServer({
    store,
    users: usersFromList([
      { name: "admin", role: "admin", token: ADMIN },
      { name: "inv-a", role: "investigator", regions: ["341502"], token: INV_A },
    ]),
    log: createLogger("ui-test", "silent"),
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const addr = app.server.address();
  if (!addr || typeof addr === "string") throw new Error("no listening address");
  base = `http://127.0.0.1:${addr.port}`;
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function newPage(): Promise<Page> {
  if (!browser) throw new Error("no browser");
  const context = await browser.newContext({
    acceptDownloads: true,
    viewport: { width: 1400, height: 1000 },
  });
  const page = await context.newPage();
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error" && !/401|403|404/.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  // The UI must work offline: anything not from our own origin is a failure.
  await page.route("**/*", (route) =>
    route.request().url().startsWith(base)
      ? route.continue()
      : route.abort().then(() => problems.push(route.request().url())),
  );
  return page;
}

async function login(page: Page, token: string): Promise<void> {
  await page.goto(`${base}/`);
  await page.locator("#token").fill(token);
  await page.getByRole("button", { name: /登录 Log in/ }).click();
  await page.locator("#suspects tbody tr").first().waitFor();
}

const shot = (page: Page, name: string) =>
  page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

describe("web UI", () => {
  it("rejects a wrong token", async () => {
    const page = await newPage();
    await page.goto(`${base}/`);
    await page.locator("#token").fill("fg_wrong_token_123456");
    await page.getByRole("button", { name: /登录 Log in/ }).click();
    await expect.poll(() => page.locator("#login-error").textContent()).toContain("令牌无效");
    await shot(page, "01-login-rejected");
    await page.context().close();
  });

  it("log in, filter, open a case, change its status, export, charts", async () => {
    const page = await newPage();
    await login(page, ADMIN);
    expect(await page.locator("#total").textContent()).toBe(String(live.length));
    await shot(page, "02-list");

    // A full page: the rows come first, the total from /suspects/count right after.
    await page.evaluate("location.hash = '#/suspects?limit=3'");
    await expect.poll(() => page.locator("#suspects tbody tr").count()).toBe(3);
    await expect.poll(() => page.locator("#total").textContent()).toBe(String(live.length));
    expect(await page.locator(".pager").textContent()).toContain("1 / 2");
    await page.getByRole("button", { name: /下一页 Next/ }).click();
    await expect.poll(() => page.locator("#suspects tbody tr").count()).toBe(1);
    await page.evaluate("location.hash = '#/suspects'");
    await expect.poll(() => page.locator("#suspects tbody tr").count()).toBe(live.length);

    // Filter: 分解住院 / split admission.
    await page.locator("#f-detector").selectOption("frequent_admission");
    await page.locator("#f-rule").selectOption("readmission");
    await page.locator("#search").click();
    await expect.poll(() => page.locator("#total").textContent()).toBe("1");
    await expect.poll(() => page.locator("#suspects tbody tr").count()).toBe(1);
    expect(await page.locator("#suspects tbody tr").first().textContent()).toContain("分解住院");
    await shot(page, "03-filtered");

    // Case view: evidence, timeline, settlements.
    await page.locator("#suspects tbody tr").first().click();
    await page.locator("#case-title").waitFor();
    expect(await page.locator("#case-title").textContent()).toContain("分解住院");
    const evidence = await page.locator("#evidence").textContent();
    expect(evidence).toContain("上次住院 Previous stay");
    expect(evidence).toContain("UA1");
    expect(await page.locator("#timeline svg rect.stay").count()).toBe(2);
    expect(await page.locator("#timeline-table tbody tr").count()).toBe(2);
    await shot(page, "04-case");

    // Status change with a note; history shows it.
    await page.locator("#new-status").selectOption("confirmed");
    await page.locator("#note").fill("住院病历显示同一病程 same illness, split stay");
    await page.locator("#save-status").click();
    await expect.poll(() => page.locator("#case-status").textContent()).toContain("已确认 Confirmed");
    expect(await page.locator("#history").textContent()).toContain("same illness, split stay");
    await shot(page, "05-case-confirmed");

    // Back to the (still filtered) list: the status is shown there.
    await page.getByText("返回列表 Back to list").click();
    await expect.poll(() => page.locator("#suspects tbody tr").first().textContent()).toContain("已确认");

    // CSV export of the filtered list.
    const [download] = await Promise.all([page.waitForEvent("download"), page.locator("#export").click()]);
    const file = join(SHOTS, "export.csv");
    await download.saveAs(file);
    const csv = readFileSync(file);
    expect(csv.subarray(0, 3)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]));
    const lines = csv.toString("utf8").slice(1).trim().split("\r\n");
    expect(lines[0]?.startsWith("线索编号,检测器,规则")).toBe(true);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toContain("分解住院");
    expect(lines[1]).toContain("confirmed");

    // Charts.
    await page.locator("[data-nav=charts]").click();
    await page.locator("#chart-rule-count rect.bar").first().waitFor();
    expect(await page.locator("#chart-rule-count rect.bar").count()).toBe(live.length);
    expect(await page.locator("#chart-month rect.bar").count()).toBeGreaterThan(0);
    expect(await page.locator("#chart-institution").textContent()).toContain("六安市人民医院");
    await shot(page, "06-charts");

    // Audit log (admin).
    await page.locator("[data-nav=audit]").click();
    await page.locator("#audit tbody tr").first().waitFor();
    expect(await page.locator("#audit").textContent()).toContain("POST /api/v1/suspects/:id/status");
    await shot(page, "07-audit");
    await page.context().close();
    expect(problems).toEqual([]);
  });

  it("a rule-table case shows the row it broke: id, text in both languages, source, table version", async () => {
    const found = live.find((x) => x.detector === "rule_table");
    expect(found?.rule).toBe("exclusive_items");
    const page = await newPage();
    await login(page, ADMIN);
    await page.evaluate(`location.hash = '#/case/${found?.suspect_id}'`);
    await page.locator("#case-title").waitFor();
    expect(await page.locator("#case-title").textContent()).toContain("互斥项目");
    const evidence = await page.locator("#evidence").textContent();
    for (const text of [
      "规则库版本 Table version",
      "2025.2",
      "命中规则 Rows hit",
      "规则编号 Row",
      "E0001",
      "动态心电图与常规心电图同日互斥",
      "Holter and routine ECG on the same day",
      "互斥项目前缀 Exclusive with",
      "常规心电图",
    ])
      expect(evidence).toContain(text);
    await shot(page, "09-rule-table-case");
    await page.context().close();
    expect(problems).toEqual([]);
  });

  it("an investigator sees only the granted region, with personal fields masked", async () => {
    const page = await newPage();
    await login(page, INV_A);
    const regions = await page.locator("#suspects tbody tr td:nth-child(4)").allTextContents();
    expect(new Set(regions)).toEqual(new Set(["341502"]));
    const persons = await page.locator("#suspects tbody tr td:nth-child(6)").allTextContents();
    expect(persons.every((p) => /^~[0-9a-f]{16}$/.test(p))).toBe(true);
    expect(await page.locator("[data-nav=audit]").isHidden()).toBe(true);
    await shot(page, "08-investigator");
    await page.locator("#logout").click();
    await page.locator("#token").waitFor();
    expect(await page.evaluate("sessionStorage.getItem('fundguard.token')")).toBeNull();
    await page.context().close();
    expect(problems).toEqual([]);
  });

  it("a suspect stored after the page opened: a notice on the list for the filters that match it, loaded on click; chart counts move", async () => {
    // Written as the embedded pipeline writes (wall-clock versions), after the page was read.
    const pipeline = new EmbeddedPipeline(store);
    const readmit = async (person: string, where: typeof inA, month: string) => {
      for (const [a, d, id] of [
        [`2025-${month}-01`, `2025-${month}-05`, `${person}-1`],
        [`2025-${month}-10`, `2025-${month}-14`, `${person}-2`],
      ] as const) {
        const s = stay(a, d, { settlement_id: id, person_id: person, ...where });
        pipeline.publish({ kind: "settlement", value: s }, JSON.stringify(s));
      }
      await pipeline.process();
    };
    const page = await newPage();
    await login(page, INV_A);
    const before = await page.locator("#suspects tbody tr").count();
    // Filtered to another rule, the list hears of no new suspect; unfiltered, of the one in its region.
    await page.evaluate("location.hash = '#/suspects?detector=pediatric_drug'");
    await expect.poll(() => page.locator("#suspects tbody tr").count()).toBe(1);
    await readmit("P-LIVE-OTHER", inA, "07");
    await page.waitForTimeout(2500);
    expect(await page.locator("#new-suspects").isHidden()).toBe(true);
    await page.evaluate("location.hash = '#/suspects'");
    await expect.poll(() => page.locator("#suspects tbody tr").count()).toBe(before + 1);

    await readmit("P-LIVE-B", inB, "08");
    await readmit("P-LIVE-A", inA, "09");
    const notice = page.locator("#new-suspects");
    await notice.waitFor({ state: "visible", timeout: 15_000 });
    expect(await notice.textContent()).toContain("1 new suspect");
    await shot(page, "09-new-suspects");
    await notice.click();
    await expect.poll(() => page.locator("#suspects tbody tr").count()).toBe(before + 2);
    const first = await page.locator("#suspects tbody tr").first().textContent();
    expect(first).toContain("分解住院");
    expect(first).toContain("2025-09-14");
    expect(await page.locator("#new-suspects").isHidden()).toBe(true);

    // The charts page's counts follow what is stored, without a reload.
    await page.locator("[data-nav=charts]").click();
    await page.locator("#chart-total").waitFor();
    const total = Number(await page.locator("#chart-total").textContent());
    await readmit("P-LIVE-A2", inA, "10");
    await readmit("P-LIVE-B2", inB, "10");
    await expect
      .poll(() => page.locator("#chart-total").textContent(), { timeout: 15_000 })
      .toBe(String(total + 1));
    await shot(page, "10-charts-moved");
    await page.context().close();
    expect(problems).toEqual([]);
  });
});
