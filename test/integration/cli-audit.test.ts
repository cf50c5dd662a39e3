// CLI actions that change or read data are audited into the same audit_log as API calls,
// naming FUNDGUARD_USER (else the OS user); while another process holds the embedded store the
// row waits in the spool and that process imports it; an action whose row cannot be written
// does not run.
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Suspect } from "../../schemas/index.ts";
import { chdbConfig, openStore, type Store } from "../../services/store/index.ts";
import { cli, killStrays, pipelineEnv, sleep, spawnCli, tempDir } from "./harness.ts";

interface Row {
  who: string;
  route: string;
  filters: string;
  rows: string;
  address: string;
  user_agent: string;
}
const rowsOf = (store: Store) =>
  store.query<Row>(
    "SELECT who, route, filters, toString(rows) AS rows, address, user_agent FROM audit_log WHERE route LIKE 'CLI %' ORDER BY at",
  );

async function withStore<T>(dataDir: string, f: (s: Store) => Promise<T>): Promise<T> {
  const store = await openStore(chdbConfig(dataDir));
  try {
    return await f(store);
  } finally {
    await store.close();
  }
}

afterEach(killStrays);

describe("CLI audit", () => {
  it("users add / list / rotate / revoke / remove are audited with FUNDGUARD_USER, never a token", async () => {
    const base = tempDir("cli-audit-users");
    const env = { FUNDGUARD_DATA_DIR: join(base, "data"), FUNDGUARD_USER: "ops.alice", LOG_LEVEL: "warn" };
    const added = await cli(
      [
        "users",
        "add",
        "--name",
        "wang",
        "--role",
        "investigator",
        "--regions",
        "341502",
        "--label",
        "laptop",
      ],
      env,
    );
    await cli(["users", "list"], env);
    const rotated = await cli(["users", "rotate", "--name", "wang"], env);
    await cli(["users", "revoke", "--name", "wang", "--label", "laptop"], env);
    await cli(["users", "remove", "--name", "wang"], { ...env, FUNDGUARD_USER: "" });
    const rows = await withStore(env.FUNDGUARD_DATA_DIR, rowsOf);
    expect(rows.map((r) => [r.who, r.route])).toEqual([
      ["ops.alice", "CLI users add"],
      ["ops.alice", "CLI users list"],
      ["ops.alice", "CLI users rotate"],
      ["ops.alice", "CLI users revoke"],
      [userInfo().username, "CLI users remove"],
    ]);
    expect(JSON.parse(rows[0]?.filters ?? "{}")).toMatchObject({
      name: "wang",
      role: "investigator",
      regions: ["341502"],
      label: "laptop",
      ttlDays: 90,
    });
    expect(rows.every((r) => r.address.startsWith("cli@") && r.user_agent.startsWith("fundguard-cli"))).toBe(
      true,
    );
    const text = JSON.stringify(rows);
    for (const t of [added.stdout.trim(), rotated.stdout.trim()]) {
      expect(t).toMatch(/^fg_/);
      expect(text).not.toContain(t);
    }
  });

  it("while another process holds the embedded store, the row is spooled and that process imports it", async () => {
    const dataDir = join(tempDir("cli-audit-held"), "data");
    const env = { FUNDGUARD_DATA_DIR: dataDir, FUNDGUARD_USER: "ops.bob", LOG_LEVEL: "warn" };
    await withStore(dataDir, async (store) => {
      const r = await cli(["users", "add", "--name", "li", "--role", "admin"], env);
      expect(r.stdout.trim()).toMatch(/^fg_/);
      let rows: Row[] = [];
      for (let i = 0; i < 50 && rows.length === 0; i++) {
        await sleep(100);
        rows = await rowsOf(store);
      }
      expect(rows.map((x) => [x.who, x.route])).toEqual([["ops.bob", "CLI users add"]]);
      expect(readdirSync(join(dataDir, "audit-spool")).filter((f) => f.endsWith(".json"))).toEqual([]);
      // Imported once, however often the spool is looked at again.
      await sleep(1500);
      expect((await rowsOf(store)).length).toBe(1);
    });
  });

  it("export and runs drop are audited; an export before its first suspect and again with its count", async () => {
    const dataDir = join(tempDir("cli-audit-export"), "data");
    const env = { FUNDGUARD_DATA_DIR: dataDir, FUNDGUARD_USER: "ops.carol", LOG_LEVEL: "warn" };
    const suspect = (i: number): Suspect => ({
      suspect_id: `cliaudit${i}`,
      detector: "deceased_activity",
      rule: "deceased_activity",
      severity: "BLOCK",
      person_id: `P${i}`,
      settlement_ids: [`S${i}`],
      institution_id: "H34150200123",
      region_code: "341502",
      amount_at_risk_fen: 100 + i,
      event_time: "2025-05-01T10:00:00+08:00",
      detected_at: "2026-01-01T00:00:00.000Z",
      detector_version: "1.0.0",
      evidence: {},
    });
    await withStore(dataDir, async (store) => {
      for (const runId of ["live", "r1"])
        await store.writeChanges(
          [0, 1, 2].map((i) => ({ op: "upsert" as const, suspect: suspect(i) })),
          { runId, versionOf: (_c, i) => BigInt(i + 1) },
        );
    });
    const out = join(dataDir, "..", "export.ndjson");
    await cli(["export", "--out", out], env);
    expect(readFileSync(out, "utf8").trim().split("\n")).toHaveLength(3);
    await cli(["runs", "drop", "r1"], env);
    const rows = await withStore(dataDir, rowsOf);
    expect(rows.map((r) => [r.who, r.route, JSON.parse(r.filters).phase ?? null, Number(r.rows)])).toEqual([
      ["ops.carol", "CLI export", "start", 0],
      ["ops.carol", "CLI export", "end", 3],
      ["ops.carol", "CLI runs drop", null, 0],
    ]);
    expect(JSON.parse(rows[2]?.filters ?? "{}")).toMatchObject({ run: "r1" });
  });

  it("config set is audited", async () => {
    const env: Record<string, string> = { ...pipelineEnv("cli-audit-config"), FUNDGUARD_USER: "ops.dan" };
    await cli(["config", "set", "frequent_admission", "--json", '{"readmissionMaxDays":5}'], env);
    const rows = await withStore(env.FUNDGUARD_DATA_DIR as string, rowsOf);
    expect(rows.map((r) => [r.who, r.route])).toEqual([["ops.dan", "CLI config set"]]);
    expect(JSON.parse(rows[0]?.filters ?? "{}")).toMatchObject({
      detector: "frequent_admission",
      json: '{"readmissionMaxDays":5}',
    });
  });

  it("an action whose audit row cannot be written does not run", async () => {
    const base = tempDir("cli-audit-broken");
    const notADir = join(base, "data");
    writeFileSync(notADir, "a file where the data directory should be");
    const usersFile = join(base, "users.json");
    const r = await spawnCli(["users", "add", "--name", "x", "--role", "admin", "--file", usersFile], {
      FUNDGUARD_DATA_DIR: notADir,
      LOG_LEVEL: "warn",
    }).result;
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("the audit log cannot be written, so nothing was done");
    expect(r.stdout).toBe("");
    expect(existsSync(usersFile)).toBe(false);
  });
});
