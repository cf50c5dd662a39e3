// Files fundguard keeps in its data directory hold personal data or credentials (the chdb
// store, the users file, run checkpoints, the CLI audit spool): the directories it creates are
// 0700 and the files it writes 0600, whatever the umask. chdb's own files inherit the
// directory's protection. An existing directory keeps the mode its owner gave it.
import { chmodSync, mkdirSync, renameSync, writeFileSync } from "node:fs";

export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

/** Writes `path` atomically (a temporary file renamed over it), readable by the owner only. */
export function writePrivateFile(path: string, data: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}
