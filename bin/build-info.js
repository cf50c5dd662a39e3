// Whether dist/ was compiled from the sources as they are now: the CLI runs the compiled code only then,
// so an edit in a checkout is never run stale (it runs the sources through tsx instead).
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../", import.meta.url));
/** Source trees compiled into dist/, and the asset folders copied beside their modules. */
export const SOURCE_DIRS = ["schemas", "detectors", "services"];
export const ASSET_DIRS = ["services/api/ui", "services/store/migrations", "detectors/reference"];
const CONFIG_FILES = ["tsconfig.json", "tsconfig.build.json"];
const stampOf = (root) => join(root, "dist", "build.json");

/** Every input of a build with its modification time, sorted by path. */
export function buildInputs(root = ROOT) {
  const inputs = [];
  for (const dir of SOURCE_DIRS) {
    for (const entry of readdirSync(join(root, dir), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || entry.name.endsWith(".md")) continue;
      const path = join(entry.parentPath ?? entry.path, entry.name);
      inputs.push([relative(root, path), statSync(path).mtimeMs]);
    }
  }
  for (const file of CONFIG_FILES) inputs.push([file, statSync(join(root, file)).mtimeMs]);
  return inputs.sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

/** Records the inputs a build was made from (taken before compiling, so an edit during the build counts). */
export function writeStamp(inputs, root = ROOT) {
  writeFileSync(stampOf(root), `${JSON.stringify({ inputs })}\n`);
}

/** True when dist/ holds a build of exactly these inputs: the same files, none modified since. */
export function distIsFresh(root = ROOT) {
  let stamp;
  try {
    stamp = JSON.parse(readFileSync(stampOf(root), "utf8"));
  } catch {
    return false;
  }
  const now = buildInputs(root);
  return (
    now.length === stamp.inputs.length &&
    now.every(([path, mtime], i) => path === stamp.inputs[i][0] && mtime === stamp.inputs[i][1])
  );
}
