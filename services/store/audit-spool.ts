// Audit rows of CLI actions taken while another process holds the embedded store (chdb allows
// one process per data directory, e.g. `users add` while `start` serves): each row waits as
// its own 0600 file under <data dir>/audit-spool/ (written whole, then renamed into place, so
// a reader never sees half a row) until the process holding the store imports it. Rows carry
// an id, so an import interrupted between its INSERT and the file's removal is not doubled.
import { existsSync, readdirSync, readFileSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { ensurePrivateDir, writePrivateFile } from "../config/private-fs.ts";
import type { AuditEntry, Store } from "./store.ts";

const spoolDir = (dataDir: string): string => join(dataDir, "audit-spool");

export function spoolAudit(dataDir: string, entry: AuditEntry & { id: string }): void {
  const dir = spoolDir(dataDir);
  ensurePrivateDir(dir);
  writePrivateFile(join(dir, `${entry.id}.json`), JSON.stringify(entry));
}

/** Moves spooled rows into `audit_log`; returns how many were new. A file that is not a row is left for a person to look at. */
export async function importAuditSpool(store: Store, dataDir: string): Promise<number> {
  const dir = spoolDir(dataDir);
  if (!existsSync(dir)) return 0;
  const files = readdirSync(dir).filter((f) => f.endsWith(".json"));
  if (files.length === 0) return 0;
  const rows: { file: string; entry: AuditEntry & { id: string } }[] = [];
  for (const f of files) {
    try {
      const entry = JSON.parse(readFileSync(join(dir, f), "utf8")) as AuditEntry & { id: string };
      if (typeof entry.id === "string" && typeof entry.who === "string") rows.push({ file: f, entry });
    } catch {
      // Unreadable: kept as it is.
    }
  }
  if (rows.length === 0) return 0;
  const present = new Set(
    (
      await store.query<{ id: string }>("SELECT id FROM audit_log WHERE id IN {ids:Array(String)}", {
        ids: rows.map((r) => r.entry.id),
      })
    ).map((r) => r.id),
  );
  const fresh = rows.filter((r) => !present.has(r.entry.id)).map((r) => r.entry);
  if (fresh.length > 0) await store.appendAudit(fresh);
  for (const r of rows) unlinkSync(join(dir, r.file));
  return fresh.length;
}
