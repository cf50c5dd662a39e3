// `npm run bench`: the performance figures of the README, measured in one run, written as JSON.
//   npm run bench -- [--settlements N] [--only detect,kafka,api,startup,transport,check,rules,state] [--profile] [--out FILE]
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { generate } from "../../services/generate/generate.ts";
import { chdbConfig, openStore } from "../../services/store/index.ts";
import { benchBatchJob, benchBatchSql } from "./batch-sql.ts";
import { benchDetectShipped } from "./detect-shipped.ts";
import { benchKafka } from "./kafka.ts";
import { ratios } from "./ratios.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

const opts = new Command()
  .option("--settlements <n>", "settlement events in the generated stream", (v) => Number(v), 1_000_000)
  .option(
    "--only <sections>",
    "comma-separated: detect,kafka (with latency and batch SQL),api,startup,transport,check,rules,state",
    "detect,kafka,api",
  )
  .option("--out <file>", "JSON report", join(ROOT, "test/bench/report.json"))
  .option("--profile", "run the worker end to end under node --cpu-prof (kafka.profile.after)")
  .option(
    "--state-persons <n>",
    "state: the generated population (180 days, 1.4 settlements each)",
    (v) => Number(v),
    500_000,
  )
  .option("--state-cache <n>", "state: persons the LMDB store keeps live", (v) => Number(v), 50_000)
  .parse()
  .opts<{
    settlements: number;
    only: string;
    out: string;
    profile?: boolean;
    statePersons: number;
    stateCache: number;
  }>();
const sections = new Set(opts.only.split(","));

function runChild(args: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "test/bench/child.ts"), ...args], {
      stdio: ["ignore", "pipe", "inherit"],
      // The flags the shipped executable runs with (bin/fundguard.js), and room for a big heap.
      env: { ...process.env, NODE_OPTIONS: "--max-old-space-size=12288 --max-semi-space-size=64" },
    });
    let out = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.on("close", (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`child exited ${code}`)),
    );
  });
}

/** Generated once per size and seed, then reused from the cache. */
async function dataset(settlements: number): Promise<{ settlements: string; deaths: string }> {
  const dir = join(ROOT, ".cache/bench", `stream-${settlements}-seed1`);
  const files = { settlements: join(dir, "settlements.ndjson"), deaths: join(dir, "deaths.ndjson") };
  if (!existsSync(join(dir, "done"))) {
    process.stderr.write(`bench: generating ${settlements} settlements into ${dir}\n`);
    await generate({ outDir: dir, settlements, seed: 1 });
    writeFileSync(join(dir, "done"), "");
  }
  return files;
}

const report: Record<string, unknown> = {
  command: `npm run bench -- --settlements ${opts.settlements} --only ${opts.only}${opts.profile ? " --profile" : ""}${sections.has("state") ? ` --state-persons ${opts.statePersons} --state-cache ${opts.stateCache}` : ""}`,
  at: new Date().toISOString(),
  machine: {
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
  },
};
/** A section's figures with this run's header, for sections reported apart from the run's own header. */
const stamped = (figures: object) => ({
  command: report.command,
  at: report.at,
  machine: report.machine,
  dataset: report.dataset,
  ...figures,
});

// The big stream only for the sections that read it (generating it takes minutes the first time).
const streamSize = ["detect", "kafka", "transport", "check", "rules"].some((s) => sections.has(s))
  ? opts.settlements
  : 100;
const files = await dataset(streamSize);
// The children measure the compiled build (test/bench/child.ts): make it fresh.
if (["detect", "rules"].some((s) => sections.has(s)))
  execFileSync(process.execPath, [join(ROOT, "bin/build.js")], { stdio: ["ignore", "ignore", "inherit"] });
report.dataset = { settlements: streamSize, seed: 1, bytes: readFileSync(files.settlements).length };

if (sections.has("detect")) {
  process.stderr.write("bench: detect vs read+JSON.parse floor\n");
  const floor = await runChild(["floor", files.settlements, files.deaths]);
  const detect = await runChild(["detect", files.settlements, files.deaths]);
  report.detect = stamped({
    floor,
    detect,
    ratioToFloor: (detect.seconds as number) / (floor.seconds as number),
    target: "≤ 2× the floor",
    shipped160k: benchDetectShipped(ROOT, await dataset(160_000)),
  });
}

if (sections.has("rules")) {
  process.stderr.write("bench: detect with a generated 56,500-row rule table vs with none\n");
  const { benchRuleTables } = await import("./rule-tables.ts");
  report.ruleTables = stamped(
    await benchRuleTables((reference) => runChild(["detect", files.settlements, files.deaths, reference])),
  );
}

if (sections.has("startup")) {
  process.stderr.write("bench: start-up of the executable (detect on 100 lines), compiled vs tsx\n");
  const { benchStartup } = await import("./startup.ts");
  report.startup = benchStartup(ROOT, await dataset(100));
}

if (sections.has("kafka")) {
  process.stderr.write("bench: Kafka pipeline\n");
  execFileSync("bash", [join(ROOT, "infra/up.sh")], { stdio: ["ignore", "inherit", "inherit"] });
  const { profile, ...kafka } = await benchKafka(files, ROOT, {
    profileDir: opts.profile ? mkdtempSync(join(tmpdir(), "fg-cpuprof-")) : undefined,
  });
  // The recorded profiles (the "before" of a change among them) stay unless this run profiles anew.
  const previous = existsSync(opts.out)
    ? JSON.parse(readFileSync(opts.out, "utf8")).kafka?.profile
    : undefined;
  report.kafka = {
    ...kafka,
    profile: profile ? { ...previous, after: { command: report.command, ...profile } } : previous,
  };
  process.stderr.write("bench: the same rules as nightly batch SQL over the archive the worker wrote\n");
  const store = await openStore(chdbConfig(kafka.dataDir));
  const streamed = new Map<string, Set<string>>();
  let batch: Awaited<ReturnType<typeof benchBatchSql>>;
  try {
    for await (const s of store.exportSuspects()) {
      const rule = `${s.detector}/${s.rule}`;
      streamed.set(rule, (streamed.get(rule) ?? new Set()).add(s.settlement_ids[0] as string));
    }
    batch = await benchBatchSql(store, streamed);
    report.batchSql = {
      ...batch,
      streamEndToEndSeconds: kafka.worker.seconds,
      note: "the batch job starts only once the day's data is in; the stream has each finding queryable within the latency above",
    };
  } finally {
    // chdb holds one data directory per process: the batch job's own store opens after this one closes.
    await store.close();
  }
  process.stderr.write(
    "bench: the batch job as a bureau runs it: load the NDJSON into an empty ClickHouse, then the rules\n",
  );
  const job = await benchBatchJob(files, streamed);
  report.batchJob = job;
  const detect = report.detect as { detect: { seconds: number } } | undefined;
  report.ratios = ratios({
    settlements: kafka.settlements,
    batchJobSeconds: job.jobSeconds,
    rulesOnlySeconds: batch.totalSeconds,
    stream: { detect: detect?.detect.seconds, replay: kafka.replay.seconds, worker: kafka.worker.seconds },
  });
}

if (sections.has("api")) {
  process.stderr.write("bench: investigator API\n");
  const { benchApi } = await import("./api.ts");
  const dir = join(ROOT, ".cache/bench/api");
  mkdirSync(dir, { recursive: true });
  report.api = await benchApi({ suspects: 1_000_000, dir });
}

if (sections.has("check")) {
  process.stderr.write("bench: the hospitals' check and ingest over HTTP\n");
  const { benchCheck } = await import("./check.ts");
  const dir = join(ROOT, ".cache/bench/check");
  mkdirSync(dir, { recursive: true });
  report.check = stamped(
    await benchCheck({
      files,
      dir,
      rate: Number(process.env.FUNDGUARD_BENCH_CHECK_RATE ?? 200),
    }),
  );
}

if (sections.has("transport")) {
  process.stderr.write("bench: Kafka clients behind the transport seam, kafkajs vs @platformatic/kafka\n");
  const { benchTransport } = await import("./transport.ts");
  report.transport = stamped(await benchTransport(files, ROOT, opts.settlements));
}

if (sections.has("state")) {
  process.stderr.write("bench: one engine holding a population's 180 days, heap store vs LMDB store\n");
  const { benchState } = await import("./state-section.ts");
  // Its own population, not the run's stream: the header's dataset does not apply.
  const figures = await benchState(ROOT, { persons: opts.statePersons, cachePersons: opts.stateCache });
  report.state = { ...stamped(figures), dataset: undefined };
}

// Sections this run did not measure keep their figures, and the header (command, machine, dataset) of
// the run that measured them unless this one measured all the default sections.
const previous = existsSync(opts.out) ? JSON.parse(readFileSync(opts.out, "utf8")) : {};
const full = ["detect", "kafka", "api"].every((s) => sections.has(s));
const header = ["command", "at", "machine", "dataset"];
const measured = Object.fromEntries(
  Object.entries(report).filter(([k]) => full || !header.includes(k) || !(k in previous)),
);
writeFileSync(opts.out, `${JSON.stringify({ ...previous, ...measured }, null, 2)}\n`);
process.stderr.write(`bench: report written to ${opts.out}\n`);
