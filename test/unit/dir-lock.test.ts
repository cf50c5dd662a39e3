import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { lockStateDir } from "../../services/state/dir-lock.ts";

describe("state directory lock", () => {
  it("refuses a directory a live process holds, takes over one whose holder is gone, and releases", () => {
    const dir = mkdtempSync(join(tmpdir(), "fundguard-lock-"));
    const file = join(dir, ".lock");
    writeFileSync(file, String(process.ppid));
    expect(() => lockStateDir(dir)).toThrow(`is the state directory of process ${process.ppid}`);

    const gone = spawnSync(process.execPath, [
      "-e",
      "process.stdout.write(String(process.pid))",
    ]).stdout.toString();
    writeFileSync(file, gone);
    const release = lockStateDir(dir);
    expect(readFileSync(file, "utf8")).toBe(String(process.pid));
    release();
    expect(existsSync(file)).toBe(false);
  });
});
