#!/usr/bin/env -S node --max-semi-space-size=64
// Runs the compiled CLI in dist/ (built by `npm install`'s prepare step) when it was built from the
// sources as they are now; otherwise the sources themselves through tsx, so an edit is never run stale.
// A larger young generation (shebang flag) lets the short-lived parsed events die young: about 12% faster
// `detect` and a quarter less memory (measured on 400k settlements).
import { distIsFresh } from "./build-info.js";

if (distIsFresh()) {
  await import("../dist/services/cli/main.js");
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import("../services/cli/main.ts");
}
