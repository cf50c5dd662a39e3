// Users and tokens of the investigator API. Users live in a JSON (or YAML) file named by
// FUNDGUARD_USERS_FILE; a token is never stored, only its SHA-256. Tokens are 256 random
// bits, so a fast hash is the right one (scrypt/bcrypt exist for low-entropy passwords),
// and the lookup is one hash and one map probe per request. Tokens expire (see expiresAt).
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { z } from "zod";
import { ACCESS_DEFAULTS } from "../config/env.ts";
import { ensurePrivateDir, writePrivateFile } from "../config/private-fs.ts";

/**
 * People: admin, investigator, auditor. Machines: `metrics` reads /metrics only (a scraper's
 * token), `his` (a hospital information system) calls /check only, `ingest` /ingest only.
 */
export const ROLES = ["admin", "investigator", "auditor", "metrics", "his", "ingest"] as const;
export type Role = (typeof ROLES)[number];

/** The API routes ("METHOD pattern") a machine role may call; people's roles are checked per route. */
const MACHINE_ROUTES: Partial<Record<Role, readonly string[]>> = {
  metrics: [],
  his: ["POST /api/v1/check"],
  ingest: ["POST /api/v1/ingest/settlements", "POST /api/v1/ingest/deaths"],
};

export function mayCall(role: Role, route: string): boolean {
  const only = MACHINE_ROUTES[role];
  return only === undefined || only.includes(route);
}

/** An authenticated caller, as the routes see it. */
export interface User {
  readonly name: string;
  readonly role: Role;
  /** Region codes the user may see; null means every region. */
  readonly regions: readonly string[] | null;
  /** Personal fields (person_id, birth dates) are shown unmasked. */
  readonly unmask: boolean;
  /** The label of the token the caller presented ("" when it has none). */
  readonly tokenLabel?: string;
}

export type Lookup = { user: User } | { user: null; reason: "unknown" | "expired" };

export interface UserDirectory {
  /** The user holding `token`, or why there is none (unknown, disabled, malformed or expired). */
  lookup(token: string, now?: number): Lookup;
}

const NAME_RE = /^[A-Za-z0-9_.@-]{1,64}$/;
const REGION_RE = /^\d{6}$/;
const SHA256_RE = /^[0-9a-f]{64}$/;

const isoTime = z.string().refine((v) => !Number.isNaN(Date.parse(v)), "an ISO-8601 date-time");

const tokenEntry = z.strictObject({
  sha256: z.string().regex(SHA256_RE, "64 lower-case hex digits"),
  created_at: z.string().optional(),
  expires_at: isoTime.optional(),
  label: z.string().max(200).optional(),
});

const userEntry = z.strictObject({
  name: z.string().regex(NAME_RE, "letters, digits, '_', '.', '@', '-' (1 to 64)"),
  role: z.enum(ROLES),
  regions: z.array(z.string().regex(REGION_RE, "6-digit region code")).max(10_000).optional(),
  unmask: z.boolean().optional(),
  disabled: z.boolean().optional(),
  tokens: z.array(tokenEntry).max(100).default([]),
});

export const usersFileSchema = z.strictObject({
  version: z.literal(1).default(1),
  users: z.array(userEntry).default([]),
});

export type UsersFile = z.infer<typeof usersFileSchema>;
export type UserEntry = z.infer<typeof userEntry>;
export type TokenEntry = z.infer<typeof tokenEntry>;

const DAY_MS = 86_400_000;

/**
 * When a token stops working: its `expires_at`; else TTL after its `created_at` (files written
 * before tokens expired); else TTL after `loadedAt`, when this process first read it.
 */
export function expiresAt(t: TokenEntry, ttlDays: number, loadedAt: number): number {
  if (t.expires_at) return Date.parse(t.expires_at);
  const created = t.created_at ? Date.parse(t.created_at) : Number.NaN;
  return (Number.isNaN(created) ? loadedAt : created) + ttlDays * DAY_MS;
}

export const TOKEN_PREFIX = "fg_";

export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

export function newToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString("base64url");
}

/**
 * Role rules: an investigator sees only the regions granted (none granted: nothing);
 * an auditor sees every region unless regions are listed; an admin sees everything.
 */
export function userOf(e: UserEntry): User {
  const regions =
    e.role === "admin"
      ? null
      : e.role === "investigator" || e.role in MACHINE_ROUTES
        ? [...(e.regions ?? [])]
        : (e.regions ?? null);
  return { name: e.name, role: e.role, regions, unmask: e.role === "admin" || e.unmask === true };
}

interface Grant {
  user: User;
  entry: TokenEntry;
}

function indexUsers(file: UsersFile): Map<string, Grant> {
  const byHash = new Map<string, Grant>();
  const names = new Set<string>();
  for (const e of file.users) {
    if (names.has(e.name)) throw new Error(`user ${e.name} is listed twice`);
    names.add(e.name);
    if (e.disabled) continue;
    const user = userOf(e);
    for (const t of e.tokens) {
      if (byHash.has(t.sha256)) throw new Error(`a token hash is listed for two users (${e.name})`);
      byHash.set(t.sha256, { user: { ...user, tokenLabel: t.label ?? "" }, entry: t });
    }
  }
  return byHash;
}

/** Token lookup with expiry; remembers when it first saw each token that carries no date. */
class TokenIndex {
  private byHash = new Map<string, Grant>();
  private readonly firstSeen = new Map<string, number>();

  constructor(private readonly ttlDays: number) {}

  get userCount(): number {
    return new Set([...this.byHash.values()].map((g) => g.user.name)).size;
  }

  replace(byHash: Map<string, Grant>, now = Date.now()): void {
    for (const hash of byHash.keys()) if (!this.firstSeen.has(hash)) this.firstSeen.set(hash, now);
    for (const hash of this.firstSeen.keys()) if (!byHash.has(hash)) this.firstSeen.delete(hash);
    this.byHash = byHash;
  }

  lookup(token: string, now: number): Lookup {
    if (typeof token !== "string" || token.length < 8 || token.length > 512)
      return { user: null, reason: "unknown" };
    const hash = hashToken(token);
    const grant = this.byHash.get(hash);
    if (!grant) return { user: null, reason: "unknown" };
    if (now >= expiresAt(grant.entry, this.ttlDays, this.firstSeen.get(hash) ?? now))
      return { user: null, reason: "expired" };
    return { user: grant.user };
  }
}

type YamlModule = { parse(text: string): unknown; stringify(value: unknown): string };

async function loadYaml(): Promise<YamlModule> {
  try {
    return (await import("yaml")) as YamlModule;
  } catch {
    throw new Error("a YAML users file needs the 'yaml' package; use a .json users file instead");
  }
}

/** Parses a users file's text: JSON, or YAML when a YAML module is given. */
export function parseUsersFile(text: string, yaml?: YamlModule): UsersFile {
  const raw: unknown = yaml ? yaml.parse(text) : JSON.parse(text);
  const r = usersFileSchema.safeParse(raw ?? {});
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new Error(`invalid users file:\n${lines.join("\n")}`);
  }
  indexUsers(r.data);
  return r.data;
}

const isYaml = (path: string) => /\.ya?ml$/i.test(path);

/** The users file named by FUNDGUARD_USERS_FILE, else `users.json` in FUNDGUARD_DATA_DIR (default ./data). */
export function usersFilePath(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.FUNDGUARD_USERS_FILE?.trim();
  if (explicit) return resolve(explicit);
  return resolve(join(env.FUNDGUARD_DATA_DIR?.trim() || "./data", "users.json"));
}

/**
 * A users file, re-read when it changes (checked at most once a second), so users added
 * with `fundguard users add` work without a restart. A file that becomes invalid keeps the
 * last valid users and reports the error through `onError`.
 */
export class UsersFileDirectory implements UserDirectory {
  private readonly index: TokenIndex;
  private mtimeMs = -1;
  private size = -1;
  private checkedAt = 0;

  private constructor(
    readonly path: string,
    private readonly yaml: YamlModule | undefined,
    private readonly onError: (err: Error) => void,
    ttlDays: number,
  ) {
    this.index = new TokenIndex(ttlDays);
  }

  static async open(
    path: string,
    onError: (err: Error) => void = () => {},
    o: { ttlDays?: number } = {},
  ): Promise<UsersFileDirectory> {
    const abs = resolve(path);
    const ttl = o.ttlDays ?? ACCESS_DEFAULTS.tokenTtlDays;
    const dir = new UsersFileDirectory(abs, isYaml(abs) ? await loadYaml() : undefined, onError, ttl);
    dir.reload(true);
    return dir;
  }

  get userCount(): number {
    return this.index.userCount;
  }

  lookup(token: string, now = Date.now()): Lookup {
    if (now - this.checkedAt > 1000) {
      this.checkedAt = now;
      this.reload(false);
    }
    return this.index.lookup(token, now);
  }

  authenticate(token: string): User | null {
    return this.lookup(token).user;
  }

  /** Re-reads the file if it changed (a stat per second at most); `strict` throws instead of keeping the last users. */
  reload(strict: boolean): void {
    try {
      if (!existsSync(this.path)) {
        this.index.replace(new Map());
        this.mtimeMs = -1;
        this.size = -1;
        return;
      }
      const st = statSync(this.path);
      if (st.mtimeMs === this.mtimeMs && st.size === this.size) return;
      const file = parseUsersFile(readFileSync(this.path, "utf8"), this.yaml);
      this.index.replace(indexUsers(file));
      this.mtimeMs = st.mtimeMs;
      this.size = st.size;
    } catch (err) {
      const e = new Error(`users file ${this.path}: ${(err as Error).message}`);
      if (strict) throw e;
      this.onError(e);
    }
  }
}

/** Users given in code with plain tokens (tests, embedded callers). Tokens are hashed at once. */
export function usersFromList(
  list: readonly {
    name: string;
    role: Role;
    token: string;
    regions?: string[];
    unmask?: boolean;
  }[],
): UserDirectory {
  const file = usersFileSchema.parse({
    users: list.map((u) => ({
      name: u.name,
      role: u.role,
      ...(u.regions ? { regions: u.regions } : {}),
      ...(u.unmask !== undefined ? { unmask: u.unmask } : {}),
      tokens: [{ sha256: hashToken(u.token) }],
    })),
  });
  const index = new TokenIndex(ACCESS_DEFAULTS.tokenTtlDays);
  index.replace(indexUsers(file));
  return { lookup: (token, now = Date.now()) => index.lookup(token, now) };
}

async function readUsersFile(path: string): Promise<UsersFile> {
  if (!existsSync(path)) return usersFileSchema.parse({});
  return parseUsersFile(readFileSync(path, "utf8"), isYaml(path) ? await loadYaml() : undefined);
}

async function writeUsersFile(path: string, file: UsersFile): Promise<void> {
  let text: string;
  if (isYaml(path)) {
    text = (await loadYaml()).stringify(file);
  } else {
    text = `${JSON.stringify(file, null, 2)}\n`;
  }
  ensurePrivateDir(dirname(path));
  writePrivateFile(path, text);
}

export interface AddUserOptions {
  name: string;
  role: Role;
  regions?: string[];
  unmask?: boolean;
  label?: string;
  /** Add a token to an existing user instead of failing. */
  addToken?: boolean;
  /** Days the new token is valid (default FUNDGUARD_TOKEN_TTL_DAYS's default). */
  ttlDays?: number;
}

function issueToken(label: string | undefined, ttlDays = ACCESS_DEFAULTS.tokenTtlDays) {
  const token = newToken();
  const now = Date.now();
  const entry: TokenEntry = {
    sha256: hashToken(token),
    created_at: new Date(now).toISOString(),
    expires_at: new Date(now + ttlDays * DAY_MS).toISOString(),
    ...(label ? { label } : {}),
  };
  return { token, entry };
}

/** Adds a user (or a token to one) to the users file and returns the new token, shown only this once. */
export async function addUser(path: string, o: AddUserOptions): Promise<{ token: string; file: string }> {
  const file = await readUsersFile(path);
  const { token, entry } = issueToken(o.label, o.ttlDays);
  const existing = file.users.find((u) => u.name === o.name);
  if (existing) {
    if (!o.addToken) throw new Error(`user ${o.name} exists (use --add-token to give it another token)`);
    existing.tokens.push(entry);
  } else {
    const candidate = userEntry.parse({
      name: o.name,
      role: o.role,
      ...(o.regions && o.regions.length > 0 ? { regions: o.regions } : {}),
      ...(o.unmask ? { unmask: true } : {}),
      tokens: [entry],
    });
    if (candidate.role === "investigator" && (candidate.regions ?? []).length === 0) {
      throw new Error("an investigator needs at least one region (--regions 341502,341503)");
    }
    file.users.push(candidate);
  }
  await writeUsersFile(path, file);
  return { token, file: path };
}

export async function removeUser(path: string, name: string): Promise<boolean> {
  const file = await readUsersFile(path);
  const before = file.users.length;
  file.users = file.users.filter((u) => u.name !== name);
  if (file.users.length === before) return false;
  await writeUsersFile(path, file);
  return true;
}

/** The tokens of `name` a rotate or revoke acts on: those labelled `label`, or all of them. */
function pickTokens(file: UsersFile, name: string, label: string | undefined) {
  const user = file.users.find((u) => u.name === name);
  if (!user) throw new Error(`no user ${name}`);
  const picked = user.tokens.filter((t) => label === undefined || (t.label ?? "") === label);
  if (picked.length === 0)
    throw new Error(
      `user ${name} has no token${label === undefined ? "" : ` labelled ${JSON.stringify(label)}`}`,
    );
  return { user, picked };
}

/**
 * Revokes the user's token labelled `label` (every token without one) and issues a new token
 * with that label (or the old one's, when exactly one was replaced), shown only this once.
 */
export async function rotateToken(
  path: string,
  o: { name: string; label?: string; ttlDays?: number },
): Promise<{ token: string; revoked: number }> {
  const file = await readUsersFile(path);
  const { user, picked } = pickTokens(file, o.name, o.label);
  const label = o.label ?? (picked.length === 1 ? picked[0]?.label : undefined);
  const { token, entry } = issueToken(label, o.ttlDays);
  user.tokens = [...user.tokens.filter((t) => !picked.includes(t)), entry];
  await writeUsersFile(path, file);
  return { token, revoked: picked.length };
}

/** Removes the user's token labelled `label` (every token without one); the user stays. */
export async function revokeTokens(path: string, o: { name: string; label?: string }): Promise<number> {
  const file = await readUsersFile(path);
  const { user, picked } = pickTokens(file, o.name, o.label);
  user.tokens = user.tokens.filter((t) => !picked.includes(t));
  await writeUsersFile(path, file);
  return picked.length;
}

export async function listUsers(path: string): Promise<UserEntry[]> {
  return (await readUsersFile(path)).users;
}
