// `fundguard detect`: every detector over NDJSON files in one process, no Kafka or ClickHouse.

import { once } from "node:events";
import { createWriteStream } from "node:fs";
import type { Writable } from "node:stream";
import { DETECTORS, loadCatalogs } from "../../detectors/index.ts";
import type { Suspect } from "../../schemas/index.ts";
import { activate, Engine, type EngineStats } from "../engine/engine.ts";
import { type BadLine, mergedEvents } from "../ingest/ndjson-source.ts";

export interface DetectOptions {
  settlements: string;
  deaths?: string;
  out?: string;
  reference?: string;
  retentionDays?: number;
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
export function finalSuspects(engine: Engine): Suspect[] {
  return [...engine.activeSuspects()].sort((a, b) =>
    a.event_time === b.event_time
      ? a.suspect_id.localeCompare(b.suspect_id)
      : Date.parse(a.event_time) - Date.parse(b.event_time) || a.event_time.localeCompare(b.event_time),
  );
}

export async function runDetect(
  opts: DetectOptions,
  onBad: (b: BadLine) => void,
): Promise<{ suspects: Suspect[]; summary: DetectSummary }> {
  const catalogs = loadCatalogs(opts.reference);
  const engine = new Engine({ detectors: activate(DETECTORS, catalogs), retentionDays: opts.retentionDays });
  const started = performance.now();
  let events = 0;
  let badLines = 0;
  for await (const { event } of mergedEvents(opts.settlements, opts.deaths, (b) => {
    badLines++;
    onBad(b);
  })) {
    engine.process(event);
    events++;
  }
  const suspects = finalSuspects(engine);
  const seconds = (performance.now() - started) / 1000;
  const byDetector: Record<string, number> = {};
  const byRule: Record<string, number> = {};
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
      engine: { ...engine.stats },
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
  const { suspects, summary } = await runDetect(opts, (b) =>
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
