// One measured phase in a fresh process, so timings and peak heap are not polluted by the runner.
//   child.ts floor|detect SETTLEMENTS DEATHS
import { getHeapStatistics } from "node:v8";
import { runDetect } from "../../services/cli/detect.ts";
import { readLineBatches } from "../../services/ingest/lines.ts";

const [mode, settlements, deaths] = process.argv.slice(2) as [string, string, string];
let peakHeap = 0;
const sampler = setInterval(() => {
  peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
}, 20);

const t0 = performance.now();
let events = 0;
let extra: Record<string, unknown> = {};
if (mode === "floor") {
  // The floor: read both files and JSON-parse every line, nothing else.
  for (const file of [settlements, deaths]) {
    for await (const batch of readLineBatches(file)) {
      for (const line of batch.lines) {
        if (line.length > 0) {
          JSON.parse(line);
          events++;
        }
      }
    }
  }
} else {
  const { summary } = await runDetect({ settlements, deaths }, () => undefined);
  events = summary.events;
  extra = { suspects: summary.suspects, byRule: summary.byRule, engine: summary.engine };
}
const seconds = (performance.now() - t0) / 1000;
clearInterval(sampler);
peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
process.stdout.write(
  `${JSON.stringify({
    mode,
    events,
    seconds,
    eventsPerSecond: events / seconds,
    peakHeapBytes: peakHeap,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    heapLimitBytes: getHeapStatistics().heap_size_limit,
    ...extra,
  })}\n`,
);
