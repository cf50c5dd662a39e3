// CLI actions that change or read data (`users …`, `config set|reset`, `runs drop`, `export`)
// are audited into the same `audit_log` as API calls, before they act: an action whose row
// cannot be written does not run. The row names FUNDGUARD_USER, else the OS user, as `who`,
// `CLI <command>` as the route and `cli@<host>` as the address. When the embedded store is
// held by another process (chdb allows one), the row waits in the data directory's audit
// spool, which that process imports within a second.
import { randomUUID } from "node:crypto";
import { hostname, userInfo } from "node:os";
import { auditEntry } from "../api/audit.ts";
import { loadEnv } from "../config/env.ts";
import { spoolAudit } from "../store/audit-spool.ts";
import { openStore, type Store, StoreLockedError, storeConfigFromEnv } from "../store/index.ts";

function osUser(): string {
  try {
    return userInfo().username;
  } catch {
    // A container user without a passwd entry.
    return `uid:${process.getuid?.() ?? "?"}`;
  }
}

export interface CliAudit {
  /** Command as typed after `fundguard`, e.g. "users add". */
  command: string;
  /** Its arguments worth keeping (never a token: secret-named values are redacted anyway). */
  details: Record<string, unknown>;
  /** Rows read or changed, when known (an export's end row). */
  rows?: number;
}

/** Writes the audit row of a CLI action, into `store` when given, else the environment's store. */
export async function auditCli(a: CliAudit, store?: Store): Promise<void> {
  const env = loadEnv();
  const entry = {
    ...auditEntry({
      who: env.FUNDGUARD_USER ?? osUser(),
      route: `CLI ${a.command}`,
      filters: a.details,
      rows: a.rows ?? 0,
      at: Date.now(),
      address: `cli@${hostname()}`,
      userAgent: `fundguard-cli node/${process.version}`,
      tokenLabel: "",
      regions: null,
    }),
    id: randomUUID(),
  };
  if (store) return store.appendAudit(entry);
  const config = storeConfigFromEnv();
  let own: Store;
  try {
    own = await openStore(config);
  } catch (err) {
    if (err instanceof StoreLockedError && config.kind === "chdb") return spoolAudit(config.dataDir, entry);
    throw new Error(`the audit log cannot be written, so nothing was done: ${(err as Error).message}`);
  }
  try {
    await own.appendAudit(entry);
  } finally {
    await own.close();
  }
}
