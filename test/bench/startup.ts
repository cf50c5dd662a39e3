// Start-up of the `fundguard` executable: `detect` on a 100-line file, compiled (dist/, as after
// `npm install`) against the sources through tsx, alternating runs in one process so both see the same load.
import { execFileSync, spawnSync } from "node:child_process";
import { join } from "node:path";

export interface StartupReport {
  file: string;
  runs: number;
  compiledSeconds: { median: number; max: number };
  tsxSeconds: { median: number; max: number };
  ratio: number;
  target: string;
}

const summary = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)] as number, max: sorted.at(-1) as number };
};

export function benchStartup(
  root: string,
  files: { settlements: string; deaths: string },
  runs = 9,
): StartupReport {
  execFileSync("node", [join(root, "bin/build.js")], { stdio: "inherit" });
  const args = ["detect", "--settlements", files.settlements, "--deaths", files.deaths];
  const time = (argv: string[]) => {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, ["--max-semi-space-size=64", ...argv], { stdio: "ignore" });
    if (r.status !== 0) throw new Error(`${argv.join(" ")} exited ${r.status}`);
    return (performance.now() - t0) / 1000;
  };
  const compiled: number[] = [];
  const tsx: number[] = [];
  for (let i = 0; i < runs; i++) {
    compiled.push(time([join(root, "bin/fundguard.js"), ...args]));
    tsx.push(time(["--import", "tsx", join(root, "services/cli/main.ts"), ...args]));
  }
  const c = summary(compiled);
  const t = summary(tsx);
  return {
    file: files.settlements,
    runs,
    compiledSeconds: c,
    tsxSeconds: t,
    ratio: c.median / t.median,
    target: "compiled detect on a 100-line file under 0.5 s",
  };
}
