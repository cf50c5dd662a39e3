// Tokens expire, can be rotated and revoked, and the users file lives in a private directory.
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  addUser,
  hashToken,
  listUsers,
  revokeTokens,
  rotateToken,
  UsersFileDirectory,
} from "../../services/api/auth.ts";

const DAY = 86_400_000;
const dir = () => mkdtempSync(join(tmpdir(), "fg-tokens-"));
const mode = (path: string) => statSync(path).mode & 0o777;

describe("token expiry", () => {
  it("a new token carries its expiry and stops working then, with the reason", async () => {
    const file = join(dir(), "users.json");
    const before = Date.now();
    const { token } = await addUser(file, { name: "wang", role: "auditor", ttlDays: 30 });
    const [entry] = (await listUsers(file))[0]?.tokens ?? [];
    const expires = Date.parse(entry?.expires_at ?? "");
    expect(expires - before).toBeGreaterThanOrEqual(30 * DAY);
    expect(expires - Date.now()).toBeLessThanOrEqual(30 * DAY);
    const users = await UsersFileDirectory.open(file);
    expect(users.lookup(token, expires - 1).user?.name).toBe("wang");
    expect(users.lookup(token, expires)).toEqual({ user: null, reason: "expired" });
    expect(users.lookup(`${token}x`, before)).toEqual({ user: null, reason: "unknown" });
  });

  it("tokens of older files expire TTL after created_at, or TTL after the server first loads them", async () => {
    const file = join(dir(), "users.json");
    const created = "2026-01-05T08:00:00.000Z";
    writeFileSync(
      file,
      JSON.stringify({
        version: 1,
        users: [
          {
            name: "old",
            role: "admin",
            tokens: [{ sha256: hashToken("fg_old_token_dated"), created_at: created }],
          },
          { name: "bare", role: "admin", tokens: [{ sha256: hashToken("fg_old_token_bare") }] },
        ],
      }),
    );
    const loaded = Date.now();
    const users = await UsersFileDirectory.open(file, undefined, { ttlDays: 10 });
    const dated = Date.parse(created) + 10 * DAY;
    expect(users.lookup("fg_old_token_dated", dated - 1).user?.name).toBe("old");
    expect(users.lookup("fg_old_token_dated", dated).user).toBeNull();
    expect(users.lookup("fg_old_token_bare", loaded + 10 * DAY - 1000).user?.name).toBe("bare");
    expect(users.lookup("fg_old_token_bare", Date.now() + 10 * DAY)).toEqual({
      user: null,
      reason: "expired",
    });
  });
});

describe("rotate and revoke", () => {
  it("rotate issues a new token with the old label and revokes the old one", async () => {
    const file = join(dir(), "users.json");
    const { token: old } = await addUser(file, {
      name: "li",
      role: "investigator",
      regions: ["341502"],
      label: "laptop",
    });
    const { token, revoked } = await rotateToken(file, { name: "li" });
    expect(revoked).toBe(1);
    const users = await UsersFileDirectory.open(file);
    expect(users.lookup(old).user).toBeNull();
    expect(users.lookup(token).user).toMatchObject({ name: "li", tokenLabel: "laptop", regions: ["341502"] });
    expect(readFileSync(file, "utf8")).not.toContain(token);
  });

  it("with several tokens, --label picks the one to rotate or revoke; the others keep working", async () => {
    const file = join(dir(), "users.json");
    const { token: laptop } = await addUser(file, { name: "li", role: "auditor", label: "laptop" });
    const { token: phone } = await addUser(file, {
      name: "li",
      role: "auditor",
      label: "phone",
      addToken: true,
    });
    const { token: laptop2 } = await rotateToken(file, { name: "li", label: "laptop" });
    let users = await UsersFileDirectory.open(file);
    expect([laptop, phone, laptop2].map((t) => users.lookup(t).user?.tokenLabel ?? null)).toEqual([
      null,
      "phone",
      "laptop",
    ]);
    expect(await revokeTokens(file, { name: "li", label: "phone" })).toBe(1);
    users = await UsersFileDirectory.open(file);
    expect([phone, laptop2].map((t) => users.lookup(t).user?.name ?? null)).toEqual([null, "li"]);
    await expect(revokeTokens(file, { name: "li", label: "tablet" })).rejects.toThrow(
      /no token labelled "tablet"/,
    );
    await expect(rotateToken(file, { name: "nobody" })).rejects.toThrow(/no user nobody/);
    expect(await revokeTokens(file, { name: "li" })).toBe(1);
    users = await UsersFileDirectory.open(file);
    expect(users.lookup(laptop2).user).toBeNull();
    expect((await listUsers(file)).map((u) => [u.name, u.tokens.length])).toEqual([["li", 0]]);
  });
});

describe("private files", () => {
  it("the users file's directory is created 0700 and the file is 0600", async () => {
    const base = dir();
    const file = join(base, "a", "b", "users.json");
    await addUser(file, { name: "root", role: "admin" });
    expect([mode(join(base, "a")), mode(join(base, "a", "b")), mode(file)]).toEqual([0o700, 0o700, 0o600]);
  });
});

describe("run checkpoints", () => {
  it("are written 0600 in a 0700 directory, compacted copies included", async () => {
    const { Checkpoint, checkpointDir } = await import("../../services/runs/checkpoint.ts");
    const cp = checkpointDir(join(dir(), "data"), "r1");
    const c = await Checkpoint.create(cp, "r1", { source: "test" }, { minCompactBytes: 1 });
    const record = {
      position: 1,
      events: 1,
      badEvents: 0,
      stats: {},
      maxVersion: 1,
      at: new Date().toISOString(),
    };
    for (let i = 0; i < 3; i++) await c.commit([{ engine: 0, key: "k", value: i }], record);
    expect([mode(cp), ...["meta.json", "state.log", "lock"].map((f) => mode(join(cp, f)))]).toEqual([
      0o700, 0o600, 0o600, 0o600,
    ]);
    await c.close();
  });
});
