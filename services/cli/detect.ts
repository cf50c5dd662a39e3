// `fundguard detect`: every detector over NDJSON files in one process, no Kafka or ClickHouse.

import { once } from "node:events";
import { createWriteStream } from "node:fs";
import type { Writable } from "node:stream";
import { DETECTORS } from "../../detectors/index.ts";
import type { Suspect } from "../../schemas/index.ts";
import { limitsOf, loadEnv } from "../config/env.ts";
import { detectSharded, type ShardedOptions } from "../detect/sharded.ts";
import { effectiveConfigs, readConfigFile } from "../dynamic-config/validate.ts";
import type { EngineStats } from "../engine/engine.ts";
import type { BadLine } from "../ingest/ndjson-source.ts";

export interface DetectOptions extends ShardedOptions {
  out?: string;
  /** `--config FILE.json`: detector id → config, checked as `replay --run --config` checks it. */
  configFile?: string;
}

export interface DetectSummary {
  events: number;
  badLines: number;
  seconds: number;
  eventsPerSecond: number;
  engine: EngineStats;
  suspects: number;
  byDetector: Record<string, number>;
  byRule: Record<string, number>;
}

/** Final, non-retracted suspects in a stable order (event time, then id). */
function sortSuspects(suspects: Suspect[]): Suspect[] {
  return suspects.sort((a, b) =>
    a.event_time === b.event_time
      ? a.suspect_id.localeCompare(b.suspect_id)
      : Date.parse(a.event_time) - Date.parse(b.event_time) || a.event_time.localeCompare(b.event_time),
  );
}

export async function runDetect(
  opts: DetectOptions,
  onBad: (b: BadLine) => void,
): Promise<{ suspects: Suspect[]; summary: DetectSummary }> {
  const started = performance.now();
  let badLines = 0;
  const result = await detectSharded(opts, (b) => {
    badLines++;
    onBad(b);
  });
  const events = result.events;
  const suspects = sortSuspects(result.suspects);
  const seconds = (performance.now() - started) / 1000;
  // Every detector and rule, zeros included: a detector that found nothing is shown as such.
  const byDetector: Record<string, number> = {};
  const byRule: Record<string, number> = {};
  for (const d of DETECTORS) {
    byDetector[d.id] = 0;
    for (const rule of Object.keys(d.rules)) byRule[`${d.id}/${rule}`] = 0;
  }
  for (const s of suspects) {
    byDetector[s.detector] = (byDetector[s.detector] ?? 0) + 1;
    byRule[`${s.detector}/${s.rule}`] = (byRule[`${s.detector}/${s.rule}`] ?? 0) + 1;
  }
  return {
    suspects,
    summary: {
      events,
      badLines,
      seconds,
      eventsPerSecond: events / Math.max(seconds, 1e-9),
      engine: result.stats,
      suspects: suspects.length,
      byDetector,
      byRule,
    },
  };
}

export async function writeNdjson(rows: Iterable<unknown>, out: Writable): Promise<void> {
  for (const row of rows) {
    if (!out.write(`${JSON.stringify(row)}\n`)) await once(out, "drain");
  }
}

export function formatSummary(s: DetectSummary): string {
  const n = (x: number) => x.toLocaleString("en-US");
  const lines = [
    `fundguard detect: ${n(s.events)} events in ${s.seconds.toFixed(2)} s (${n(Math.round(s.eventsPerSecond))} events/s)`,
    `  settlements ${n(s.engine.settlements)}, reversals ${n(s.engine.reversals)}, death records ${n(s.engine.deaths)}`,
    `  bad lines ${n(s.badLines)}, duplicates ignored ${n(s.engine.duplicates)}, too late ${n(s.engine.tooLate)}`,
    `  suspects ${n(s.suspects)}`,
    ...Object.entries(s.byRule)
      .sort()
      .map(([rule, count]) => `    ${rule.padEnd(44)} ${n(count).padStart(9)}`),
  ];
  return `${lines.join("\n")}\n`;
}

export async function detectCommand(opts: DetectOptions): Promise<void> {
  const configs = opts.configFile ? effectiveConfigs(readConfigFile(opts.configFile)) : {};
  const { suspects, summary } = await runDetect({ limits: limitsOf(loadEnv()), configs, ...opts }, (b) =>
    process.stderr.write(`${b.file}:${b.line}: skipped: ${b.reason}\n`),
  );
  const out = opts.out ? createWriteStream(opts.out) : process.stdout;
  await writeNdjson(suspects, out);
  if (opts.out) {
    out.end();
    await once(out, "finish");
  }
  process.stderr.write(formatSummary(summary));
}
