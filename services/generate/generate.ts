// `generate`: a realistic synthetic stream (settlements, death records) plus the labels of the
// findings injected into it. Deterministic for a seed; memory is O(population + pending window),
// never O(settlements), so it streams 10M settlements to disk.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { BUNDLED_REFERENCE_DIR, loadCatalogs } from "../../detectors/catalog.ts";
import { DAY_MS, dateOf, isoCst, msOf, parseDay } from "./calendar.ts";
import { DETECTOR_SCHEMES } from "./detector-schemes.ts";
import { CallbackOutput, type LineOutput, NdjsonWriter, WriteQueue } from "./output.ts";
import { buildPools } from "./pools.ts";
import { Rng } from "./prng.ts";
import { SCHEME_CYCLE, SCHEMES } from "./schemes.ts";
import {
  type IdCounters,
  type Label,
  MAX_DAYS,
  secondOfDayAt,
  TAIL_DAYS,
  World,
  type WorldStats,
} from "./world.ts";

/** Receives the generated lines instead of files (e.g. to feed an in-process log). */
export interface GenerateEmitter {
  /** settlements.ndjson lines, in file order. */
  settlement(line: string): void;
  /** deaths.ndjson lines, in reported_at order. */
  death(line: string): void;
  label(line: string): void;
}

export interface GenerateOptions {
  /** Folder for the three files; required unless `emit` is given. */
  outDir?: string;
  /** Deliver the lines to these functions instead of writing files. */
  emit?: GenerateEmitter;
  /** Events in settlements.ndjson (SETTLE and REVERSAL lines); default 100,000. */
  settlements?: number;
  /** Insured persons; default settlements / 9. */
  persons?: number;
  seed?: number | string;
  /** Share of persons given an injected scheme; default 0.02. */
  schemeRate?: number;
  /** First service day, YYYY-MM-DD; default 2025-01-01. */
  start?: string;
  /** Service days; default 365, at most 366 (late events follow for up to 30 more days). */
  days?: number;
  gzip?: boolean;
  /** Folder with the catalogs (pediatric-drugs.csv, sex-restricted-codes.csv); default the bundled ones. */
  reference?: string;
  /**
   * Person numbers and settlement / visit sequence numbers already used by the stream this one
   * continues (its summary's `ids`): the new stream's ids then never repeat the earlier ones.
   */
  idsAfter?: IdCounters;
  /** Called about 200 times during the run, and once at the end. */
  onProgress?: (p: GenerateProgress) => void;
}

export interface GenerateProgress {
  events: number;
  target: number;
  day: string;
  heapUsed: number;
}

export interface GenerateSummary {
  outDir: string;
  /** Paths of the files written (empty strings with `emit`). */
  files: { settlements: string; deaths: string; labels: string };
  seed: string;
  start: string;
  days: number;
  persons: number;
  /** Lines in the settlements file (SETTLE + REVERSAL). */
  events: number;
  settlements: number;
  reversals: number;
  resubmissions: number;
  stays: number;
  deathRecords: number;
  inHospitalDeaths: number;
  lateWritten: number;
  reversalsBeforeSettlement: number;
  labels: number;
  labelsByRule: Record<string, number>;
  schemes: Record<string, number>;
  retractedSchemes: number;
  resubmittedSchemes: number;
  firstEventAt: string;
  lastEventAt: string;
  spanDays: number;
  bytes: number;
  seconds: number;
  settlementsPerSecond: number;
  peakHeapBytes: number;
  /** The last numbers used, for a stream that continues this one (`idsAfter`). */
  ids: IdCounters;
}

export const DEFAULTS = {
  settlements: 100_000,
  seed: 1,
  schemeRate: 0.02,
  start: "2025-01-01",
  days: 365,
} as const;

/** Relative volume of a service day: fewer visits at weekends, more in winter. */
function dayWeight(day: number): number {
  const weekday = new Date(day * DAY_MS).getUTCDay();
  const week = weekday === 0 ? 0.55 : weekday === 6 ? 0.7 : 1;
  const doy = (day - Date.UTC(new Date(day * DAY_MS).getUTCFullYear(), 0, 1) / DAY_MS) / 365;
  return week * (1 + 0.15 * Math.cos(2 * Math.PI * (doy - 0.04)));
}

export function validateOptions(
  o: GenerateOptions,
): Required<Omit<GenerateOptions, "onProgress" | "reference" | "emit" | "idsAfter">> {
  const settlements = o.settlements ?? DEFAULTS.settlements;
  const days = o.days ?? DEFAULTS.days;
  const schemeRate = o.schemeRate ?? DEFAULTS.schemeRate;
  const start = o.start ?? DEFAULTS.start;
  if (!o.outDir && !o.emit) throw new Error("an output folder (outDir) or an emitter is required");
  if (!Number.isInteger(settlements) || settlements < 1)
    throw new Error("settlements must be a positive whole number");
  if (!Number.isInteger(days) || days < 7 || days > MAX_DAYS) {
    throw new Error(
      `days must be a whole number from 7 to ${MAX_DAYS} (events then span at most ${MAX_DAYS + TAIL_DAYS} days, inside the 400-day retention)`,
    );
  }
  if (!(schemeRate >= 0 && schemeRate <= 0.5)) throw new Error("scheme rate must be between 0 and 0.5");
  parseDay(start);
  for (const [k, n] of Object.entries(o.idsAfter ?? {}))
    if (!Number.isInteger(n) || n < 0) throw new Error(`idsAfter.${k} must be a whole number ≥ 0`);
  const persons = o.persons ?? Math.max(200, Math.round(settlements / 9));
  if (!Number.isInteger(persons) || persons < 1) throw new Error("persons must be a positive whole number");
  return {
    outDir: o.outDir ?? "",
    settlements,
    persons,
    seed: o.seed ?? DEFAULTS.seed,
    schemeRate,
    start,
    days,
    gzip: o.gzip ?? false,
  };
}

export async function generate(options: GenerateOptions): Promise<GenerateSummary> {
  const started = performance.now();
  const o = validateOptions(options);
  const reference = options.reference ?? BUNDLED_REFERENCE_DIR;
  const catalogs = loadCatalogs(reference);
  const pools = buildPools(catalogs, reference);
  const rng = new Rng(o.seed);
  const day0 = parseDay(o.start);

  const emit = options.emit;
  const ext = o.gzip ? ".ndjson.gz" : ".ndjson";
  const files = emit
    ? { settlements: "", deaths: "", labels: "" }
    : {
        settlements: join(o.outDir, `settlements${ext}`),
        deaths: join(o.outDir, `deaths${ext}`),
        labels: join(o.outDir, `labels${ext}`),
      };
  if (!emit) mkdirSync(o.outDir, { recursive: true });
  const output = (path: string, fn: ((line: string) => void) | undefined): LineOutput =>
    fn ? new CallbackOutput(fn) : new NdjsonWriter(path, o.gzip);
  const settlementsOut = output(files.settlements, emit && ((l) => emit.settlement(l)));
  const deathsOut = output(files.deaths, emit && ((l) => emit.death(l)));
  const labelsOut = output(files.labels, emit && ((l) => emit.label(l)));
  const queue = new WriteQueue();
  const labelsByRule: Record<string, number> = {};

  const world = new World({
    rng,
    pools,
    catalogs,
    persons: o.persons,
    day0,
    days: o.days,
    ...(options.idsAfter ? { idsAfter: options.idsAfter } : {}),
    sink: {
      settlement: (line, writeMs) => queue.push(writeMs, line),
      death: (line) => deathsOut.write(line),
      label: (l: Label) => {
        labelsByRule[`${l.detector}/${l.rule}`] = (labelsByRule[`${l.detector}/${l.rule}`] ?? 0) + 1;
        labelsOut.write(JSON.stringify(l));
      },
    },
  });

  // Population, with scheme persons shaped and planned as they are drawn; detectors' own schemes
  // follow the built-in cycle once per rule.
  const planners = { ...SCHEMES, ...DETECTOR_SCHEMES };
  const kinds = [...SCHEME_CYCLE, ...Object.keys(DETECTOR_SCHEMES)];
  const schemes: Record<string, number> = {};
  let cycle = 0;
  for (let p = 0; p < o.persons; p++) {
    world.randomPerson(p);
    if (o.schemeRate > 0 && rng.chance(o.schemeRate)) {
      for (let tries = 0; tries < kinds.length; tries++) {
        const kind = kinds[cycle++ % kinds.length] as string;
        if ((planners[kind] as (w: World, p: number) => boolean)(world, p)) {
          schemes[kind] = (schemes[kind] ?? 0) + 1;
          break;
        }
        world.randomPerson(p);
      }
    }
  }
  world.finishPopulation();

  // Background volume: whatever the plans leave of the target, spread over the service days.
  const weights = Array.from({ length: o.days }, (_, i) => dayWeight(day0 + i));
  const totalWeight = weights.reduce((a, b) => a + b, 0);
  const base = world.committed;
  const background = Math.max(0, o.settlements - base);
  let cumulative = 0;
  let peakHeap = 0;
  const progressEvery = Math.max(1, Math.floor((o.days + TAIL_DAYS) / 200));

  const flush = (beforeMs: number) => {
    for (const line of queue.due(beforeMs)) settlementsOut.write(line);
  };
  const drain = async () => {
    if (settlementsOut.needsDrain) await settlementsOut.drain();
    if (deathsOut.needsDrain) await deathsOut.drain();
    if (labelsOut.needsDrain) await labelsOut.drain();
  };

  for (let i = 0; i < o.days + TAIL_DAYS; i++) {
    const day = day0 + i;
    world.today = day;
    if (i % 7 === 0) world.sweep();
    const planned = world.takeDay(day);
    let slots = 0;
    if (i < o.days) {
      cumulative += weights[i] as number;
      const target = base + Math.round((background * cumulative) / totalWeight);
      slots = Math.max(0, Math.min(target, o.settlements) - world.committed);
    }
    let next = 0;
    for (let k = 0; k < slots; k++) {
      const sec = secondOfDayAt((k + rng.float()) / slots);
      while (next < planned.length && (planned[next] as { sec: number }).sec <= sec) {
        const e = planned[next++] as Parameters<World["runPlanned"]>[0];
        flush(msOf(day, e.sec));
        world.runPlanned(e, day);
      }
      const ms = msOf(day, sec);
      flush(ms);
      for (let attempt = 0; attempt < 40; attempt++) {
        if (world.background(world.drawPerson(), day, ms)) break;
      }
      if ((k & 255) === 0) await drain();
    }
    while (next < planned.length) {
      const e = planned[next++] as Parameters<World["runPlanned"]>[0];
      flush(msOf(day, e.sec));
      world.runPlanned(e, day);
    }
    flush(msOf(day + 1, 0));
    await drain();
    if (i % progressEvery === 0 || i === o.days + TAIL_DAYS - 1) {
      const heapUsed = process.memoryUsage().heapUsed;
      if (heapUsed > peakHeap) peakHeap = heapUsed;
      options.onProgress?.({
        events: settlementsOut.lines + queue.size,
        target: o.settlements,
        day: dateOf(day),
        heapUsed,
      });
    }
  }
  flush(Number.POSITIVE_INFINITY);
  if (world.pendingLabels !== 0)
    throw new Error(`internal error: ${world.pendingLabels} scheme labels never resolved`);
  await Promise.all([settlementsOut.close(), deathsOut.close(), labelsOut.close()]);

  const seconds = (performance.now() - started) / 1000;
  const s: WorldStats = world.stats;
  return {
    outDir: o.outDir,
    files,
    seed: String(o.seed),
    start: o.start,
    days: o.days,
    persons: o.persons,
    events: settlementsOut.lines,
    settlements: s.settlements,
    reversals: s.reversals,
    resubmissions: s.resubmissions,
    stays: s.stays,
    deathRecords: s.deaths,
    inHospitalDeaths: s.inHospitalDeaths,
    lateWritten: s.lateWritten,
    reversalsBeforeSettlement: s.reversalsBeforeSettlement,
    labels: labelsOut.lines,
    labelsByRule,
    schemes,
    retractedSchemes: s.retractedSchemes,
    resubmittedSchemes: s.resubmittedSchemes,
    firstEventAt: Number.isFinite(world.firstEventMs) ? isoCst(world.firstEventMs) : "",
    lastEventAt: Number.isFinite(world.lastEventMs) ? isoCst(world.lastEventMs) : "",
    spanDays: Number.isFinite(world.firstEventMs) ? (world.lastEventMs - world.firstEventMs) / DAY_MS : 0,
    bytes: settlementsOut.bytes + deathsOut.bytes + labelsOut.bytes,
    seconds,
    settlementsPerSecond: settlementsOut.lines / Math.max(seconds, 1e-9),
    peakHeapBytes: peakHeap,
    ids: world.idsUsed,
  };
}
