// The embedded mode (npm start): the in-process log and the same engine into chdb give exactly
// the suspects of `detect`, and the started server answers with the printed token.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Suspect } from "../../schemas/index.ts";
import { runDetect } from "../../services/cli/detect.ts";
import { ingest } from "../../services/embedded/start.ts";
import { generate } from "../../services/generate/generate.ts";
import { chdbConfig, openStore } from "../../services/store/index.ts";
import { benchBatchSql } from "../bench/batch-sql.ts";
import { canonical } from "../fixtures/run.ts";
import { killStrays, sleep, spawnCli, tempDir } from "./harness.ts";

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
});
