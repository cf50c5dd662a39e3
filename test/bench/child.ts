// One measured phase in a fresh process, so timings and peak memory are not polluted by the runner.
//   child.ts floor|detect SETTLEMENTS DEATHS [REFERENCE_DIR]
import { getHeapStatistics } from "node:v8";
// @ts-expect-error plain JS module of the executable, no types
import { distIsFresh } from "../../bin/build-info.js";
import { readLineBatches } from "../../services/ingest/lines.ts";

// detect as it ships: the compiled build (the bench builds it first). tsx's transform names every
// closure it creates (esbuild's keepNames), which costs the detectors' hot loops up to a fifth.
const build = distIsFresh() ? "dist" : "tsx";
const { runDetect } = (
  build === "dist"
    ? await import("../../dist/services/cli/detect.js" as string)
    : await import("../../services/cli/detect.ts")
) as typeof import("../../services/cli/detect.ts");

const [mode, settlements, deaths, reference] = process.argv.slice(2) as [string, string, string, string?];
const t0 = performance.now();
let events = 0;
let extra: Record<string, unknown> = {};
if (mode === "floor") {
  // The floor: read both files and JSON-parse every line, nothing else.
  for (const file of [settlements, deaths]) {
    for await (const batch of readLineBatches(file)) {
      for (const line of batch.lines) {
        if (typeof line === "string" && line.length > 0) {
          JSON.parse(line);
          events++;
        }
      }
    }
  }
} else {
  const { summary } = await runDetect({ settlements, deaths, reference }, () => undefined);
  events = summary.events;
  extra = { suspects: summary.suspects, byRule: summary.byRule, engine: summary.engine };
}
const seconds = (performance.now() - t0) / 1000;
process.stdout.write(
  `${JSON.stringify({
    mode,
    build,
    events,
    seconds,
    eventsPerSecond: events / seconds,
    // Process-wide peak: detect's engines live in worker threads, whose heaps the main thread's figures miss.
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    heapLimitBytes: getHeapStatistics().heap_size_limit,
    ...extra,
  })}\n`,
);
