// The CLI as users run it: bin/fundguard.js with the V8 flags of its shebang (`#!/usr/bin/env -S node …`).
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** node's arguments before the CLI's own: the shebang's flags, then the script. */
export function cliArgs(root: string): string[] {
  const bin = join(root, "bin/fundguard.js");
  const words = (readFileSync(bin, "utf8").split("\n", 1)[0] ?? "").split(/\s+/);
  return [...words.slice(words.indexOf("node") + 1).filter((w) => w.startsWith("--")), bin];
}
