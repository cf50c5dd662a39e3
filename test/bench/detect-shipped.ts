// `detect` as users run it (the compiled executable, start-up included) against the JSON parse floor
// in a process of its own, alternating runs so both see the same load.
import { execFileSync, spawnSync } from "node:child_process";
import { join } from "node:path";

// No arrays in the report: JSON.stringify's layout of them is not the formatter's.
const summary = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return {
    median: sorted[Math.floor(sorted.length / 2)] as number,
    min: sorted[0] as number,
    max: sorted.at(-1) as number,
  };
};

export function benchDetectShipped(root: string, files: { settlements: string; deaths: string }, runs = 3) {
  execFileSync(process.execPath, [join(root, "bin/build.js")], { stdio: "inherit" });
  const time = (argv: string[]) => {
    const t0 = performance.now();
    // The shebang's flag (bin/fundguard.js), given to both.
    const r = spawnSync(process.execPath, ["--max-semi-space-size=64", ...argv], { stdio: "ignore" });
    if (r.status !== 0) throw new Error(`${argv.join(" ")} exited ${r.status}`);
    return (performance.now() - t0) / 1000;
  };
  const floor: number[] = [];
  const detect: number[] = [];
  for (let i = 0; i < runs; i++) {
    floor.push(time([join(root, "test/bench/floor.mjs"), files.settlements, files.deaths]));
    detect.push(
      time([
        join(root, "bin/fundguard.js"),
        "detect",
        "--settlements",
        files.settlements,
        "--deaths",
        files.deaths,
      ]),
    );
  }
  return {
    file: files.settlements,
    runs,
    floorSeconds: summary(floor),
    detectSeconds: summary(detect),
    ratioToFloor: summary(detect).median / summary(floor).median,
    target: "≤ 2× the floor, start-up included",
  };
}
