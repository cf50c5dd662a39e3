// `npm run bench`: the performance figures of the README, measured in one run, written as JSON.
//   npm run bench -- [--settlements N] [--only detect,kafka,api] [--out FILE]
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { generate } from "../../services/generate/generate.ts";
import { chdbConfig, openStore } from "../../services/store/index.ts";
import { benchBatchSql } from "./batch-sql.ts";
import { benchKafka } from "./kafka.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

const opts = new Command()
  .option("--settlements <n>", "settlement events in the generated stream", (v) => Number(v), 1_000_000)
  .option(
    "--only <sections>",
    "comma-separated: detect,kafka (with latency and batch SQL),api,startup,transport",
    "detect,kafka,api",
  )
  .option("--out <file>", "JSON report", join(ROOT, "test/bench/report.json"))
  .parse()
  .opts<{ settlements: number; only: string; out: string }>();
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
  command: `npm run bench -- --settlements ${opts.settlements} --only ${opts.only}`,
  at: new Date().toISOString(),
  machine: {
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
  },
};

// The big stream only for the sections that read it (generating it takes minutes the first time).
const streamSize =
  sections.has("detect") || sections.has("kafka") || sections.has("transport") ? opts.settlements : 100;
const files = await dataset(streamSize);
report.dataset = { settlements: streamSize, seed: 1, bytes: readFileSync(files.settlements).length };

if (sections.has("detect")) {
  process.stderr.write("bench: detect vs read+JSON.parse floor\n");
  const floor = await runChild(["floor", files.settlements, files.deaths]);
  const detect = await runChild(["detect", files.settlements, files.deaths]);
  report.detect = {
    floor,
    detect,
    ratioToFloor: (detect.seconds as number) / (floor.seconds as number),
    target: "≤ 2× the floor",
  };
}

if (sections.has("startup")) {
  process.stderr.write("bench: start-up of the executable (detect on 100 lines), compiled vs tsx\n");
  const { benchStartup } = await import("./startup.ts");
  report.startup = benchStartup(ROOT, await dataset(100));
}

if (sections.has("kafka")) {
  process.stderr.write("bench: Kafka pipeline\n");
  execFileSync("bash", [join(ROOT, "infra/up.sh")], { stdio: ["ignore", "inherit", "inherit"] });
  const kafka = await benchKafka(files, ROOT);
  report.kafka = kafka;
  process.stderr.write("bench: the same rules as nightly batch SQL over the archive the worker wrote\n");
  const store = await openStore(chdbConfig(kafka.dataDir));
  try {
    const streamed = new Map<string, Set<string>>();
    for await (const s of store.exportSuspects()) {
      const rule = `${s.detector}/${s.rule}`;
      streamed.set(rule, (streamed.get(rule) ?? new Set()).add(s.settlement_ids[0] as string));
    }
    const batch = await benchBatchSql(store, streamed);
    report.batchSql = {
      ...batch,
      streamEndToEndSeconds: kafka.worker.seconds,
      note: "the batch job starts only once the day's data is in; the stream has each finding queryable within the latency above",
    };
  } finally {
    await store.close();
  }
}

if (sections.has("api")) {
  process.stderr.write("bench: investigator API\n");
  const { benchApi } = await import("./api.ts");
  const dir = join(ROOT, ".cache/bench/api");
  mkdirSync(dir, { recursive: true });
  report.api = await benchApi({ suspects: 1_000_000, dir });
}

if (sections.has("transport")) {
  process.stderr.write("bench: Kafka clients behind the transport seam, kafkajs vs @platformatic/kafka\n");
  const { benchTransport } = await import("./transport.ts");
  report.transport = {
    command: report.command,
    at: report.at,
    machine: report.machine,
    dataset: report.dataset,
    ...(await benchTransport(files, ROOT, opts.settlements)),
  };
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
