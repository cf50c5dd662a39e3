// The `state` section: one engine holding a generated population's 180 days of history, once with
// its persons in the heap and once in the LMDB store behind a bounded cache under a 1 GiB heap
// (the issue's --max-old-space-size=1024), same file, one run, each in a fresh process.
import { spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generate } from "../../services/generate/generate.ts";

/** Settlements per person in 180 days: a prefecture's 7·10⁶ over 5·10⁶ persons. */
const PER_PERSON = 1.4;

function child(root: string, heapMb: number, args: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const p = spawn(
      process.execPath,
      [
        `--max-old-space-size=${heapMb}`,
        "--expose-gc",
        "--import",
        "tsx",
        join(root, "test/bench/state.ts"),
        ...args,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    p.stdout.setEncoding("utf8");
    p.stdout.on("data", (d) => {
      out += d;
    });
    p.on("close", (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`state bench exited ${code}`)),
    );
  });
}

export async function benchState(root: string, o: { persons: number; cachePersons: number }) {
  const settlements = Math.round(o.persons * PER_PERSON);
  const dir = join(root, ".cache/bench", `state-${o.persons}-persons-180d-seed1`);
  const files = { settlements: join(dir, "settlements.ndjson"), deaths: join(dir, "deaths.ndjson") };
  if (!existsSync(join(dir, "done"))) {
    process.stderr.write(`bench: generating ${o.persons} persons' 180 days into ${dir}\n`);
    await generate({ outDir: dir, settlements, persons: o.persons, days: 180, seed: 1 });
    writeFileSync(join(dir, "done"), "");
  }
  const heap = await child(root, 12_288, ["heap", files.settlements, files.deaths, "0"]);
  const lmdb = await child(root, 1_024, ["lmdb", files.settlements, files.deaths, String(o.cachePersons)]);
  return {
    population: { persons: o.persons, days: 180, settlements },
    heap,
    lmdb,
    throughputRatio: (lmdb.eventsPerSecond as number) / (heap.eventsPerSecond as number),
    targets:
      "V8 heap ≤ 1 GiB, RSS ≤ 2 GiB, restore from the local store ≤ 10 s, throughput within 20% of the heap store",
  };
}
