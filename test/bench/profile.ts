// Summaries of a V8 .cpuprofile (`node --cpu-prof`): the top self-time entries and the inclusive share
// of a few groups of code, for the bench report.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileEntry {
  function: string;
  /** `url:line` (1-based), or "" for V8's own entries such as "(idle)". */
  at: string;
  selfMs: number;
  share: number;
}
export interface ProfileSummary {
  totalMs: number;
  samples: number;
  top: ProfileEntry[];
  /** Share of the samples whose stack has a frame of the group anywhere (so groups may overlap). */
  groups: Record<string, number>;
  /** V8's own entries, whether or not they made the top. */
  runtime: Record<(typeof RUNTIME)[number], number>;
}

const RUNTIME = ["(idle)", "(garbage collector)", "(program)"] as const;

/** The groups the report names, by script url. */
export const PROFILE_GROUPS: Record<string, RegExp> = {
  kafkajs: /\/node_modules\/kafkajs\//,
  avsc: /\/node_modules\/avsc\//,
  zod: /\/node_modules\/zod\//,
  "clickhouse client + chdb": /\/node_modules\/(@clickhouse\/[^/]+|chdb)\//,
  "engine + detectors": /\/(services\/engine|detectors)\//,
  "store rows": /\/services\/store\/rows\.[jt]s$/,
};

const short = (url: string) =>
  url.replace(/^file:\/\//, "").replace(/^.*?\/(node_modules|services|detectors|schemas)\//, "$1/");

export function summarizeProfile(
  profile: CpuProfile,
  opts: { top?: number; groups?: Record<string, RegExp> } = {},
): ProfileSummary {
  const groups = opts.groups ?? PROFILE_GROUPS;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  // A sample stands for the time until the next one (as DevTools counts it); the last one for the mean.
  const { samples, timeDeltas } = profile;
  const totalUs = profile.endTime - profile.startTime;
  const meanUs = samples.length > 0 ? totalUs / samples.length : 0;
  const duration = (i: number) => (i + 1 < samples.length ? (timeDeltas[i + 1] as number) : meanUs);

  const self = new Map<string, { frame: CallFrame; us: number }>();
  const groupUs = Object.fromEntries(Object.keys(groups).map((g) => [g, 0]));
  let sampledUs = 0;
  for (let i = 0; i < samples.length; i++) {
    const us = Math.max(0, duration(i));
    sampledUs += us;
    const leaf = byId.get(samples[i] as number);
    if (!leaf)
      throw new Error(`cpuprofile: sample ${i} names node ${samples[i]}, which is not in the profile`);
    const f = leaf.callFrame;
    const key = `${f.functionName}\u0000${f.url}\u0000${f.lineNumber}`;
    const entry = self.get(key) ?? { frame: f, us: 0 };
    entry.us += us;
    self.set(key, entry);
    const hit = new Set<string>();
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const url = byId.get(id)?.callFrame.url ?? "";
      for (const [g, re] of Object.entries(groups)) if (re.test(url)) hit.add(g);
    }
    for (const g of hit) groupUs[g] = (groupUs[g] as number) + us;
  }
  const share = (us: number) => (sampledUs > 0 ? us / sampledUs : 0);
  const runtime = Object.fromEntries(
    RUNTIME.map((name) => {
      const us = [...self.values()].filter((e) => e.frame.functionName === name && !e.frame.url);
      return [name, Math.round(share(us.reduce((t, e) => t + e.us, 0)) * 1000) / 1000];
    }),
  ) as ProfileSummary["runtime"];
  const top = [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, opts.top ?? 15)
    .map(({ frame, us }) => ({
      function: frame.functionName || "(anonymous)",
      at: frame.url ? `${short(frame.url)}:${frame.lineNumber + 1}` : "",
      selfMs: Math.round(us / 100) / 10,
      share: Math.round(share(us) * 1000) / 1000,
    }));
  return {
    totalMs: Math.round(sampledUs / 1000),
    samples: samples.length,
    top,
    groups: Object.fromEntries(
      Object.entries(groupUs).map(([g, us]) => [g, Math.round(share(us) * 1000) / 1000]),
    ),
    runtime,
  };
}

/**
 * The main thread's profile among those `--cpu-prof-dir` holds (named CPU.<date>.<time>.<pid>.<thread>.<seq>,
 * thread 0 being the main thread); throws unless there is exactly one.
 */
export function mainThreadProfile(dir: string): { file: string; profile: CpuProfile } {
  const files = readdirSync(dir).filter((f) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f));
  if (files.length !== 1)
    throw new Error(`${dir}: expected one main-thread .cpuprofile, found ${files.length}`);
  const file = join(dir, files[0] as string);
  return { file, profile: JSON.parse(readFileSync(file, "utf8")) as CpuProfile };
}

/** The other threads' profiles in `dir` (a worker's lanes), by file name. */
export function threadProfiles(dir: string): { file: string; profile: CpuProfile }[] {
  return readdirSync(dir)
    .filter((f) => /^CPU\.\d+\.\d+\.\d+\.[1-9]\d*\.\d+\.cpuprofile$/.test(f))
    .sort()
    .map((f) => ({
      file: join(dir, f),
      profile: JSON.parse(readFileSync(join(dir, f), "utf8")) as CpuProfile,
    }));
}
