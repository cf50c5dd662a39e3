#!/usr/bin/env node
// `npm run build` (and `prepare`, so `npm install` runs it): compiles the TypeScript into dist/ with tsc,
// copies the assets the modules read beside them, and stamps the inputs it was built from.
import { execFileSync } from "node:child_process";
import { cpSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { ASSET_DIRS, buildInputs, ROOT, writeStamp } from "./build-info.js";

let tsc;
try {
  tsc = join(dirname(createRequire(import.meta.url).resolve("typescript/package.json")), "bin/tsc");
} catch {
  // An install without dev dependencies has no compiler: the CLI then runs the sources through tsx.
  console.error("fundguard build: typescript is not installed; skipped (the CLI runs the sources)");
  process.exit(0);
}
const inputs = buildInputs();
rmSync(join(ROOT, "dist"), { recursive: true, force: true });
execFileSync(process.execPath, [tsc, "-p", join(ROOT, "tsconfig.build.json")], { stdio: "inherit" });
for (const dir of ASSET_DIRS) cpSync(join(ROOT, dir), join(ROOT, "dist", dir), { recursive: true });
writeStamp(inputs);
