// The embedded mode (npm start): the in-process log and the same engine into chdb give exactly
// the suspects of `detect`; the started server answers with the printed token, /ingest feeds the
// in-process log, and the live trickle keeps suspects coming with event time moving forward.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Suspect } from "../../schemas/index.ts";
import { runDetect } from "../../services/cli/detect.ts";
import { EmbeddedPipeline } from "../../services/embedded/pipeline.ts";
import { ingest, startPipeline } from "../../services/embedded/start.ts";
import { generate } from "../../services/generate/generate.ts";
import { mergedEvents } from "../../services/ingest/ndjson-source.ts";
import { chdbConfig, openStore } from "../../services/store/index.ts";
import { benchBatchSql } from "../bench/batch-sql.ts";
import { death, settlement, stay } from "../fixtures/events.ts";
import { canonical } from "../fixtures/run.ts";
import { killStrays, type RunningCli, sleep, spawnCli, tempDir } from "./harness.ts";

/** `fundguard start` with these arguments, once it printed its URL and token. */
async function started(
  args: string[],
  dataDir = tempDir("start"),
): Promise<{ child: RunningCli; url: string; token: string }> {
  const child = spawnCli(["start", ...args], {
    FUNDGUARD_DATA_DIR: dataDir,
    PORT: "0",
    LOG_LEVEL: "warn",
  });
  let url: string | undefined;
  let token: string | undefined;
  for (let i = 0; i < 900 && !(url && token); i++) {
    if (child.exitCode !== null) break;
    await sleep(100);
    url = /investigator UI: (\S+)/.exec(child.stdoutAndErr())?.[1];
    token = /admin token[^:]*: (\S+)/.exec(child.stdoutAndErr())?.[1];
  }
  if (!url || !token) throw new Error(`start did not come up:\n${child.stdoutAndErr()}`);
  return { child, url, token };
}

async function stopped(child: RunningCli): Promise<void> {
  child.kill("SIGTERM");
  await child.result;
  killStrays();
}

describe("embedded mode", () => {
  it("stores exactly the suspects detect finds, which batch SQL over the archive confirms", async () => {
    const dir = tempDir("embedded");
    const g = await generate({ outDir: join(dir, "in"), settlements: 20_000, seed: 5, schemeRate: 0.05 });
    const { suspects } = await runDetect(g.files, () => undefined);
    const store = await openStore(chdbConfig(join(dir, "data")));
    try {
      await ingest(store, { ...g.files, sample: 0 }, dir, () => undefined);
      const stored: Suspect[] = [];
      for await (const s of store.exportSuspects()) stored.push(s);
      expect(canonical(stored)).toEqual(canonical(suspects));
      expect(stored.length).toBeGreaterThan(50);

      // The nightly-batch formulation of the five contract rules, as SQL over the archive, agrees.
      const streamed = new Map<string, Set<string>>();
      for (const s of suspects) {
        const rule = `${s.detector}/${s.rule}`;
        streamed.set(rule, (streamed.get(rule) ?? new Set()).add(s.settlement_ids[0] as string));
      }
      const batch = await benchBatchSql(store, streamed);
      for (const [rule, r] of Object.entries(batch.rules) as [
        string,
        { batchFindings: number; inBoth: number; streamFindings: number },
      ][]) {
        expect(r.streamFindings, rule).toBeGreaterThan(0);
        expect([r.batchFindings, r.inBoth], rule).toEqual([r.streamFindings, r.streamFindings]);
      }
    } finally {
      await store.close();
    }
  });

  it.each([
    ["rebuilt from the archive", /engine state rebuilt from [\d,]+ archived events/, false],
    ["resumed from their local stores", /engine state resumed from its local stores/, true],
  ])(
    "a second `start` over the next month's files gives exactly what one run over both gives (engines %s)",
    async (_how, message, local) => {
      const dir = tempDir("embedded-months");
      const g = await generate({
        outDir: join(dir, "in"),
        settlements: 20_000,
        seed: 8,
        schemeRate: 0.05,
        days: 62,
      });
      const { suspects } = await runDetect(g.files, () => undefined);
      // January and February as two pairs of files, split by event time.
      const cut = Date.parse("2025-02-01T00:00:00+08:00");
      const january = new Set<string>();
      const split = (file: string, time: string, name: string) => {
        const months = { jan: [] as string[], feb: [] as string[] };
        for (const line of readFileSync(file, "utf8").split("\n")) {
          if (!line) continue;
          const v = JSON.parse(line) as Record<string, string>;
          const inJanuary = Date.parse(v[time] as string) < cut;
          if (inJanuary && v.settlement_id) january.add(v.settlement_id);
          months[inJanuary ? "jan" : "feb"].push(line);
        }
        for (const [m, lines] of Object.entries(months))
          writeFileSync(join(dir, `${m}-${name}`), lines.join("\n"));
        return { jan: join(dir, `jan-${name}`), feb: join(dir, `feb-${name}`) };
      };
      const s = split(g.files.settlements, "settled_at", "settlements.ndjson");
      const d = split(g.files.deaths, "reported_at", "deaths.ndjson");
      const store = await openStore(chdbConfig(join(dir, "data")));
      const state = local ? { state: { dir: join(dir, "engine-state"), cachePersons: 500 } } : {};
      const pipeline = () => startPipeline(store, state, () => undefined);
      try {
        const first = pipeline();
        await ingest(store, { settlements: s.jan, deaths: d.jan, sample: 0 }, dir, () => undefined, first);
        await first.close();
        // A new process's engines: empty until the archive is replayed into them, or from their stores.
        const said: string[] = [];
        const second = pipeline();
        await ingest(
          store,
          { settlements: s.feb, deaths: d.feb, sample: 0 },
          dir,
          (x) => said.push(x),
          second,
        );
        await second.close();
        expect(said.join("\n")).toMatch(message);
        const stored: Suspect[] = [];
        for await (const x of store.exportSuspects()) stored.push(x);
        expect(canonical(stored)).toEqual(canonical(suspects));
        // Findings that need January to be judged in February are among them.
        const across = stored.filter(
          (x) =>
            !january.has(x.settlement_ids[0] as string) && x.settlement_ids.some((id) => january.has(id)),
        );
        expect(across.length).toBeGreaterThan(5);
      } finally {
        await store.close();
      }
    },
  );

  it("rounds the store refused are written first on the next drain, its engines on a lane thread: the suspects are exact", async () => {
    const dir = tempDir("embedded-refused");
    const g = await generate({ outDir: join(dir, "in"), settlements: 5_000, seed: 6, schemeRate: 0.05 });
    const { suspects } = await runDetect(g.files, () => undefined);
    const store = await openStore(chdbConfig(join(dir, "data")));
    // The archive refuses its 2nd and 3rd writes, the suspects their 4th: while the lane runs ahead.
    const calls = { archive: 0, writeChanges: 0 };
    const failOn: Record<keyof typeof calls, number[]> = { archive: [2, 3], writeChanges: [4] };
    const flaky = new Proxy(store, {
      get(target, key) {
        const value = Reflect.get(target, key, target);
        if (typeof value !== "function") return value;
        if (key !== "archive" && key !== "writeChanges") return value.bind(target);
        return (...args: unknown[]) => {
          calls[key]++;
          if (failOn[key].includes(calls[key])) return Promise.reject(new Error(`${key} refused`));
          return value.apply(target, args);
        };
      },
    });
    const pipeline = new EmbeddedPipeline(flaky, {}, { lanes: 1 });
    try {
      for await (const { event, text } of mergedEvents(g.files.settlements, g.files.deaths, () => undefined))
        pipeline.publish(event, text);
      let refused = 0;
      for (;;) {
        try {
          await pipeline.drain(100);
          break;
        } catch {
          refused++;
        }
      }
      expect(refused).toBe(3);
      expect(pipeline.stats.events).toBe(pipeline.log.lag("nobody"));
      const stored: Suspect[] = [];
      for await (const s of store.exportSuspects()) stored.push(s);
      expect(canonical(stored)).toEqual(canonical(suspects));
      expect(stored.length).toBeGreaterThan(10);
    } finally {
      await pipeline.close();
      await store.close();
    }
  });

  it("`fundguard start` serves the UI and the API behind the printed admin token", async () => {
    const dir = tempDir("start");
    const child = spawnCli(["start", "--sample", "5000"], {
      FUNDGUARD_DATA_DIR: dir,
      PORT: "0",
      LOG_LEVEL: "warn",
    });
    try {
      let url: string | undefined;
      let token: string | undefined;
      for (let i = 0; i < 600 && !(url && token); i++) {
        await sleep(100);
        url = /investigator UI: (\S+)/.exec(child.stdoutAndErr())?.[1];
        token = /admin token[^:]*: (\S+)/.exec(child.stdoutAndErr())?.[1];
      }
      expect(url, child.stdoutAndErr()).toBeDefined();
      expect((await fetch(url as string)).status).toBe(200);
      expect((await fetch(`${url}api/v1/suspects`)).status).toBe(401);
      const list = await fetch(`${url}api/v1/suspects?limit=5`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(list.status).toBe(200);
    } finally {
      child.kill("SIGTERM");
      await child.result;
      killStrays();
    }
  });

  it("`start`'s /ingest writes to the in-process log: the embedded engine finds what was accepted", async () => {
    const { child, url, token } = await started(["--sample", "2000", "--live-rate", "0"]);
    try {
      const post = (path: string, body: string, type: string) =>
        fetch(`${url}api/v1/ingest/${path}`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": type },
          body,
        });
      const first = stay("2025-03-01", "2025-03-05", { settlement_id: "EI1", person_id: "P-EMB-INGEST" });
      const again = stay("2025-03-10", "2025-03-15", { settlement_id: "EI2", person_id: "P-EMB-INGEST" });
      const body = [
        JSON.stringify(first),
        "{not json",
        JSON.stringify({ ...again, gender: "X" }),
        JSON.stringify(again),
      ];
      const r = await post("settlements", body.join("\n"), "application/x-ndjson");
      expect(r.status).toBe(200);
      const answer = (await r.json()) as { accepted: number; rejected: { line: number; reason: string }[] };
      expect(answer.accepted).toBe(2);
      expect(answer.rejected.map((x) => x.line)).toEqual([2, 3]);
      expect(answer.rejected[1]?.reason).toMatch(/gender/);

      // Stored when the answer left: the readmission is found, the archive has both stays.
      const suspects = async (person: string) => {
        const res = await fetch(`${url}api/v1/suspects?person=${person}`, {
          headers: { authorization: `Bearer ${token}` },
        });
        expect(res.status).toBe(200);
        return ((await res.json()) as { items: { rule: string; settlement_ids: string[] }[] }).items;
      };
      expect((await suspects("P-EMB-INGEST")).map((x) => [x.rule, x.settlement_ids])).toEqual([
        ["readmission", ["EI2", "EI1"]],
      ]);

      // A death record as a JSON array, then a settlement after it: deceased_activity.
      const d = await post(
        "deaths",
        JSON.stringify([death("2025-02-01", { person_id: "P-EMB-DEAD" }), { person_id: "P-EMB-DEAD" }]),
        "application/json",
      );
      expect(await d.json()).toMatchObject({ accepted: 1, rejected: [{ line: 2 }] });
      const after = settlement({
        settlement_id: "ED1",
        person_id: "P-EMB-DEAD",
        admission_date: "2025-06-01",
      });
      expect(await (await post("settlements", JSON.stringify([after]), "application/json")).json()).toEqual({
        accepted: 1,
        rejected: [],
      });
      expect((await suspects("P-EMB-DEAD")).map((x) => x.rule)).toEqual(["deceased_activity"]);
    } finally {
      await stopped(child);
    }
  });

  it("the live trickle keeps generated suspects arriving after the sample, with event time moving forward", async () => {
    const { child, url, token } = await started(["--sample", "2000", "--live-rate", "400"]);
    try {
      // The trickle announces itself after the UI lines, once it has read its origin from the archive.
      let from: string | undefined;
      for (let i = 0; i < 300 && !from; i++) {
        from = /event time from (\d{4}-\d{2}-\d{2})/.exec(child.stdoutAndErr())?.[1];
        if (!from) await sleep(100);
      }
      expect(from, child.stdoutAndErr()).toBeDefined();
      const get = async (path: string) =>
        (await (await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}` } })).json()) as {
          total: number;
        };
      // Everything of the sample is before the trickle's first day; live suspects come after it.
      const live = async () => (await get(`api/v1/suspects/count?from=${from}`)).total;
      expect(await live()).toBe(0);
      const sample = (await get("api/v1/suspects/count")).total;
      let n = 0;
      for (let i = 0; i < 600 && n < 5; i++) {
        await sleep(100);
        n = await live();
      }
      expect(n, child.stdoutAndErr()).toBeGreaterThanOrEqual(5);
      expect((await get("api/v1/suspects/count")).total).toBeGreaterThan(sample);
    } finally {
      await stopped(child);
    }
  });

  it("a `start` killed after an ingest carries on from its engines' stores and the archive since their commit: a settlement ingested after it is judged with the history", async () => {
    const data = tempDir("restart");
    const ingestOne = async (url: string, token: string, s: ReturnType<typeof stay>) => {
      const r = await fetch(`${url}api/v1/ingest/settlements`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify([s]),
      });
      expect(await r.json()).toEqual({ accepted: 1, rejected: [] });
    };
    const first = await started(["--sample", "2000", "--live-rate", "0"], data);
    try {
      await ingestOne(
        first.url,
        first.token,
        stay("2025-03-01", "2025-03-05", { settlement_id: "ER1", person_id: "P-RESTART" }),
      );
    } finally {
      // Killed: the stores' last commit is the one after the sample, before ER1.
      first.child.kill("SIGKILL");
      await first.child.result;
      killStrays();
    }
    const second = await started(["--live-rate", "0"], data);
    try {
      expect(second.child.stdoutAndErr()).toMatch(
        /engine state resumed from its local stores, [1-9][\d,]* events archived since their last commit replayed/,
      );
      expect(second.child.stdoutAndErr()).not.toMatch(/generating a sample/);
      await ingestOne(
        second.url,
        second.token,
        stay("2025-03-10", "2025-03-15", { settlement_id: "ER2", person_id: "P-RESTART" }),
      );
      const res = await fetch(`${second.url}api/v1/suspects?person=P-RESTART`, {
        headers: { authorization: `Bearer ${second.token}` },
      });
      const items = ((await res.json()) as { items: { rule: string; settlement_ids: string[] }[] }).items;
      expect(items.map((x) => [x.rule, x.settlement_ids])).toEqual([["readmission", ["ER2", "ER1"]]]);
    } finally {
      await stopped(second.child);
    }
  });
});
