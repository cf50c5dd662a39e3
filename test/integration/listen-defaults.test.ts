// Safe defaults of the running commands: `serve` and `start` listen on 127.0.0.1 unless HOST
// says otherwise, and the data directory they create is 0700 with fundguard's files 0600.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { killStrays, type RunningCli, sleep, spawnCli, tempDir } from "./harness.ts";

const mode = (path: string) => statSync(path).mode & 0o777;

afterEach(killStrays);

async function waitFor<T>(child: RunningCli, find: () => T | undefined): Promise<T> {
  for (let i = 0; i < 600; i++) {
    const v = find();
    if (v !== undefined) return v;
    if (child.exitCode !== null) break;
    await sleep(100);
  }
  throw new Error(`not seen; output:\n${child.stdoutAndErr()}`);
}

async function serving(env: Record<string, string>): Promise<{ host: string; port: number }> {
  const child = spawnCli(["serve"], { PORT: "0", LOG_LEVEL: "info", ...env });
  try {
    return await waitFor(child, () => {
      const line = child
        .stdoutAndErr()
        .split("\n")
        .find((l) => l.includes('"msg":"serving"'));
      return line ? (JSON.parse(line) as { host: string; port: number }) : undefined;
    });
  } finally {
    child.kill("SIGTERM");
    await child.result;
  }
}

describe("listening address", () => {
  it("`fundguard serve` listens on 127.0.0.1 by default and on HOST when set; its data directory is 0700", async () => {
    const base = tempDir("serve-defaults");
    const dataDir = join(base, "new", "data");
    const byDefault = await serving({ FUNDGUARD_DATA_DIR: dataDir });
    expect(byDefault.host).toBe("127.0.0.1");
    expect(byDefault.port).toBeGreaterThan(0);
    expect([mode(join(base, "new")), mode(dataDir)]).toEqual([0o700, 0o700]);
    expect((await serving({ FUNDGUARD_DATA_DIR: dataDir, HOST: "127.0.0.2" })).host).toBe("127.0.0.2");
  });

  it("`fundguard start` serves on 127.0.0.1; its data directory is 0700 and the files it writes there 0600", async () => {
    const dataDir = join(tempDir("start-defaults"), "data");
    const child = spawnCli(["start", "--sample", "300"], {
      FUNDGUARD_DATA_DIR: dataDir,
      PORT: "0",
      LOG_LEVEL: "warn",
    });
    try {
      // The URL and the token are two lines: either may arrive without the other.
      const [url, token] = await waitFor(child, () => {
        const out = child.stdoutAndErr();
        const u = /investigator UI: (\S+)/.exec(out)?.[1];
        const t = /admin token[^:]*: (\S+)/.exec(out)?.[1];
        return u && t ? [u, t] : undefined;
      });
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      const me = await fetch(`${url}api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
      expect(me.status).toBe(200);
      expect(mode(dataDir)).toBe(0o700);
      expect(mode(join(dataDir, "users.json"))).toBe(0o600);
      const sample = join(dataDir, "sample");
      const files = readdirSync(sample);
      expect(files.length).toBeGreaterThan(0);
      for (const f of files) expect(mode(join(sample, f)), f).toBe(0o600);
    } finally {
      child.kill("SIGTERM");
      await child.result;
    }
  });
});
