// The one executable, `fundguard`: each subcommand lives in its own module, loaded only when it runs,
// so that `detect` never pays for loading Kafka, ClickHouse or fastify.
import { Command, InvalidArgumentError } from "commander";

/** A commander parser of whole numbers of at least `min`. */
const wholeFrom =
  (min: number, expected: string) =>
  (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected ${expected}`);
    return n;
  };

export const positiveInt = wholeFrom(1, "a positive whole number");
const wholeNumber = wholeFrom(0, "a whole number, 0 or more");

const program = new Command()
  .name("fundguard")
  .description("Event-driven fraud detection for medical-insurance funds (医保基金监管)")
  .showHelpAfterError();

program
  .command("detect")
  .description("run every detector over NDJSON files; write final suspects as NDJSON")
  .requiredOption("--settlements <file>", "settlement events, NDJSON (.gz accepted)")
  .option("--deaths <file>", "death records, NDJSON (.gz accepted)")
  .option("--out <file>", "write suspects here instead of stdout")
  .option("--reference <dir>", "folder with pediatric-drugs.csv and sex-restricted-codes.csv")
  .option("--retention-days <n>", "event-time span of retained state", positiveInt, 400)
  .option(
    "--lateness-days <n>",
    "how far behind the newest event an event's service dates may be and still be judged as in order (default: the retention)",
    wholeNumber,
  )
  .option("--config <file>", 'JSON file {"detector_id": {config}, ...}; other detectors keep their defaults')
  .option(
    "--shards <n>",
    "worker threads, each running the engine for a share of the persons (default: one per core, at most 8)",
    positiveInt,
  )
  .action(async (o) => {
    const { detectCommand } = await import("./detect.ts");
    await detectCommand({
      settlements: o.settlements,
      deaths: o.deaths,
      out: o.out,
      reference: o.reference,
      retentionDays: o.retentionDays,
      latenessDays: o.latenessDays,
      shards: o.shards,
      configFile: o.config,
    });
  });

program
  .command("generate")
  .description(
    "write a realistic synthetic stream (settlements, deaths) and the labels of its injected schemes",
  )
  .requiredOption("--out-dir <dir>", "folder for settlements.ndjson, deaths.ndjson and labels.ndjson")
  .option("--settlements <n>", "settlement events to write (SETTLE and REVERSAL lines)", positiveInt, 100_000)
  .option("--persons <n>", "insured persons (default: settlements / 9)", positiveInt)
  .option("--seed <seed>", "PRNG seed: the same seed and options give the same files", "1")
  .option(
    "--scheme-rate <r>",
    "share of persons given an injected scheme (0 to 0.5)",
    (v: string) => {
      const r = Number(v);
      if (!(r >= 0 && r <= 0.5)) throw new InvalidArgumentError("expected a number from 0 to 0.5");
      return r;
    },
    0.02,
  )
  .option("--start <date>", "first service day (YYYY-MM-DD, China Standard Time)", "2025-01-01")
  .option("--days <n>", "service days (at most 366; late events follow for 30 days)", positiveInt, 365)
  .option("--gzip", "write .ndjson.gz files")
  .option("--reference <dir>", "folder with pediatric-drugs.csv and sex-restricted-codes.csv")
  .option("--quiet", "no progress bar and no summary")
  .action(async (o) => {
    const { generateCommand } = await import("../generate/command.ts");
    await generateCommand({
      outDir: o.outDir,
      settlements: o.settlements,
      persons: o.persons,
      seed: o.seed,
      schemeRate: o.schemeRate,
      start: o.start,
      days: o.days,
      gzip: o.gzip ?? false,
      reference: o.reference,
      quiet: o.quiet ?? false,
    });
  });

program
  .command("start")
  .description(
    "embedded all-in-one: sample stream (or files) → engine → chdb in FUNDGUARD_DATA_DIR → UI on HOST:PORT (default 127.0.0.1:8080)",
  )
  .option("--settlements <file>", "ingest these settlements instead of a generated sample")
  .option("--deaths <file>", "death records to ingest with them")
  .option(
    "--sample <n>",
    "settlements of the generated sample (used when the store is empty)",
    positiveInt,
    50_000,
  )
  .option("--reference <dir>", "catalog folder (default: bundled)")
  .option(
    "--live-rate <n>",
    "settlements per second of the live generated trickle after the sample (0: none)",
    (v: string) => {
      const n = Number(v);
      if (!(Number.isFinite(n) && n >= 0 && n <= 10_000))
        throw new InvalidArgumentError("expected a number from 0 to 10000");
      return n;
    },
    20,
  )
  .action(async (o) => (await import("../embedded/start.ts")).startCommand(o));

type Register = (program: Command) => void;
const kafka = async (): Promise<Register> => (await import("./kafka-commands.ts")).registerKafkaCommands;
const store = async (): Promise<Register> => (await import("./store-commands.ts")).registerStoreCommands;
const config = async (): Promise<Register> => (await import("./config-commands.ts")).registerConfigCommands;
const runs = async (): Promise<Register> => (await import("./runs-commands.ts")).registerRunsCommands;
const api = async (): Promise<Register> => (await import("../api/command.ts")).registerServeCommand;
/** Which module registers each top-level command (with its subcommands). */
const COMMAND_MODULES: Record<string, () => Promise<Register>> = {
  topics: kafka,
  schemas: kafka,
  replay: kafka,
  worker: kafka,
  sink: store,
  export: store,
  config,
  runs,
  serve: api,
  users: api,
};
// A known command loads its own module; help, no command or an unknown one loads them all.
const named = COMMAND_MODULES[process.argv[2] ?? ""];
const builtIn = ["detect", "generate", "start"].includes(process.argv[2] ?? "");
const loaders = builtIn ? [] : named ? [named] : [...new Set(Object.values(COMMAND_MODULES))];
for (const load of loaders) (await load())(program);

try {
  await program.parseAsync();
} catch (e) {
  process.stderr.write(`fundguard: ${(e as Error).message}\n`);
  process.exitCode = 2;
  // A failed command may leave a client's sockets open; do not let them keep a dead process alive.
  setTimeout(() => process.exit(2), 2_000).unref();
}
