// Users and tokens of the investigator API. Users live in a JSON (or YAML) file named by
// FUNDGUARD_USERS_FILE; a token is never stored, only its SHA-256. Tokens are 256 random
// bits, so a fast hash is the right one (scrypt/bcrypt exist for low-entropy passwords),
// and the lookup is one hash and one map probe per request.
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { z } from "zod";

export const ROLES = ["admin", "investigator", "auditor"] as const;
export type Role = (typeof ROLES)[number];

/** An authenticated caller, as the routes see it. */
export interface User {
  readonly name: string;
  readonly role: Role;
  /** Region codes the user may see; null means every region. */
  readonly regions: readonly string[] | null;
  /** Personal fields (person_id, birth dates) are shown unmasked. */
  readonly unmask: boolean;
}

export interface UserDirectory {
  /** The user holding `token`, or null (unknown, disabled or malformed). */
  authenticate(token: string): User | null;
}

const NAME_RE = /^[A-Za-z0-9_.@-]{1,64}$/;
const REGION_RE = /^\d{6}$/;
const SHA256_RE = /^[0-9a-f]{64}$/;

const tokenEntry = z.strictObject({
  sha256: z.string().regex(SHA256_RE, "64 lower-case hex digits"),
  created_at: z.string().optional(),
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
    e.role === "admin" ? null : e.role === "investigator" ? [...(e.regions ?? [])] : (e.regions ?? null);
  return { name: e.name, role: e.role, regions, unmask: e.role === "admin" || e.unmask === true };
}

function indexUsers(file: UsersFile): Map<string, User> {
  const byHash = new Map<string, User>();
  const names = new Set<string>();
  for (const e of file.users) {
    if (names.has(e.name)) throw new Error(`user ${e.name} is listed twice`);
    names.add(e.name);
    if (e.disabled) continue;
    const user = userOf(e);
    for (const t of e.tokens) {
      if (byHash.has(t.sha256)) throw new Error(`a token hash is listed for two users (${e.name})`);
      byHash.set(t.sha256, user);
    }
  }
  return byHash;
}

function authenticateIn(byHash: Map<string, User>, token: string): User | null {
  if (typeof token !== "string" || token.length < 8 || token.length > 512) return null;
  return byHash.get(hashToken(token)) ?? null;
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
  private byHash = new Map<string, User>();
  private mtimeMs = -1;
  private size = -1;
  private checkedAt = 0;

  private constructor(
    readonly path: string,
    private readonly yaml: YamlModule | undefined,
    private readonly onError: (err: Error) => void,
  ) {}

  static async open(path: string, onError: (err: Error) => void = () => {}): Promise<UsersFileDirectory> {
    const abs = resolve(path);
    const dir = new UsersFileDirectory(abs, isYaml(abs) ? await loadYaml() : undefined, onError);
    dir.reload(true);
    return dir;
  }

  get userCount(): number {
    return new Set(this.byHash.values()).size;
  }

  authenticate(token: string): User | null {
    const now = Date.now();
    if (now - this.checkedAt > 1000) {
      this.checkedAt = now;
      this.reload(false);
    }
    return authenticateIn(this.byHash, token);
  }

  /** Re-reads the file if it changed (a stat per second at most); `strict` throws instead of keeping the last users. */
  reload(strict: boolean): void {
    try {
      if (!existsSync(this.path)) {
        this.byHash = new Map();
        this.mtimeMs = -1;
        this.size = -1;
        return;
      }
      const st = statSync(this.path);
      if (st.mtimeMs === this.mtimeMs && st.size === this.size) return;
      const file = parseUsersFile(readFileSync(this.path, "utf8"), this.yaml);
      this.byHash = indexUsers(file);
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
  const byHash = indexUsers(file);
  return { authenticate: (token) => authenticateIn(byHash, token) };
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
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

export interface AddUserOptions {
  name: string;
  role: Role;
  regions?: string[];
  unmask?: boolean;
  label?: string;
  /** Add a token to an existing user instead of failing. */
  addToken?: boolean;
}

/** Adds a user (or a token to one) to the users file and returns the new token, shown only this once. */
export async function addUser(path: string, o: AddUserOptions): Promise<{ token: string; file: string }> {
  const file = await readUsersFile(path);
  const token = newToken();
  const entry = {
    sha256: hashToken(token),
    created_at: new Date().toISOString(),
    ...(o.label ? { label: o.label } : {}),
  };
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

export async function listUsers(path: string): Promise<UserEntry[]> {
  return (await readUsersFile(path)).users;
}
