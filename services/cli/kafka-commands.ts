// Commands of the distributed pipeline: topics, schemas, replay (files → topics), worker.
import { type Command, Option } from "commander";
import { Health } from "../health.ts";
import { AvroSerde } from "../kafka/serde.ts";
import { inputTopicConfigs } from "../kafka/topics.ts";
import { Metrics } from "../metrics.ts";
import { produceFiles } from "../replay/produce-files.ts";
import { backoffUpTo } from "../retry.ts";
import { openStore, type Store, StoreLockedError } from "../store/index.ts";
import { runWorker } from "../worker/worker.ts";
import { contextTransport, kafkaContext, shutdownSignal } from "./context.ts";
import { bytesProgressBar } from "./progress-bar.ts";

async function createTopics(service: string): Promise<ReturnType<typeof kafkaContext>> {
  const ctx = kafkaContext(service);
  const admin = (await contextTransport(ctx)).admin();
  try {
    await admin.createTopics(inputTopicConfigs(ctx.topics, ctx.env.FUNDGUARD_PARTITIONS));
  } finally {
    await admin.close();
  }
  return ctx;
}

interface ReplayFlags {
  settlements?: string;
  deaths?: string;
  run?: string;
  detectors?: string;
  config?: string;
  from?: string;
  to?: string;
  rate?: number;
  resume?: boolean;
  reference?: string;
  checkpointInterval?: number;
}

export function registerKafkaCommands(program: Command): void {
  program
    .command("topics")
    .description("create the topics (settlements, deaths, dead letters, suspects) if missing")
    .command("create")
    .action(async () => {
      const ctx = await createTopics("topics");
      process.stderr.write(
        `topics ready: ${Object.values(ctx.topics)
          .filter((t) => typeof t === "string")
          .join(", ")}\n`,
      );
    });

  program
    .command("schemas")
    .description("schema registry subjects")
    .command("register")
    .description("register the Avro schemas with BACKWARD compatibility")
    .action(async () => {
      const ctx = kafkaContext("schemas");
      const ids = await new AvroSerde(ctx.registryUrl, ctx.topics).register();
      process.stdout.write(`${JSON.stringify(ids)}\n`);
    });

  program
    .command("replay")
    .description(
      "produce NDJSON files (.gz accepted) into the input topics; with --run, execute a named run of " +
        "chosen detectors over files or a time range of the topics into ClickHouse (run_id = NAME)",
    )
    .option("--settlements <file>", "settlement events")
    .option("--deaths <file>", "death records")
    .option("--run <name>", "run mode: detect into ClickHouse under this run id instead of producing")
    .option("--detectors <list>", "run mode: comma-separated detector ids (id@version allowed; default all)")
    .option("--config <file>", 'run mode: JSON file {"detector_id": {config}, ...}')
    .option("--from <iso>", "run mode: replay the input topics from this record time ...")
    .option("--to <iso>", "... up to this one (exclusive), through a consumer group of the run's own")
    .option("--rate <n>", "run mode: at most this many events per second", Number)
    .option("--resume", "run mode: continue an interrupted run from its checkpoint")
    .option("--reference <dir>", "run mode: catalog folder (default: bundled, or FUNDGUARD_REFERENCE_DIR)")
    .option("--checkpoint-interval <s>", "run mode: seconds between checkpoints", Number, 10)
    .action(async (o: ReplayFlags) => {
      if (o.run !== undefined) {
        const { runCommand } = await import("../runs/command.ts");
        return runCommand({ ...o, run: o.run });
      }
      const runOnly = (["detectors", "config", "from", "to", "rate", "resume", "reference"] as const).filter(
        (k) => o[k] !== undefined,
      );
      if (runOnly.length > 0) throw new Error(`--${runOnly[0]} needs --run NAME`);
      if (!o.settlements && !o.deaths) throw new Error("give --settlements and/or --deaths");
      const ctx = await createTopics("replay");
      const serde = new AvroSerde(ctx.registryUrl, ctx.topics, { limits: ctx.limits });
      await serde.register();
      const bar = bytesProgressBar("replay");
      const t0 = performance.now();
      const summary = await produceFiles({
        transport: await contextTransport(ctx),
        serde,
        topics: ctx.topics,
        settlements: o.settlements,
        deaths: o.deaths,
        onBad: (b) => process.stderr.write(`${b.file}:${b.line}: skipped: ${b.reason}\n`),
        onProgress: (read, total) => bar.update(read, total),
        limits: ctx.limits,
      });
      bar.stop();
      const s = (performance.now() - t0) / 1000;
      process.stderr.write(
        `replay: ${summary.settlements} settlements, ${summary.deaths} death records, ${summary.badLines} bad lines in ${s.toFixed(1)} s (${Math.round((summary.settlements + summary.deaths) / s)} events/s)\n`,
      );
    });

  program
    .command("worker")
    .description("run the detectors as a member of consumer group FUNDGUARD_GROUP")
    .option("--until-caught-up", "exit 0 once the group has consumed up to the end offsets seen at start")
    .option("--reference <dir>", "catalog folder (default: bundled, or FUNDGUARD_REFERENCE_DIR)")
    .option("--no-metrics", "do not serve Prometheus metrics on FUNDGUARD_METRICS_PORT")
    .addOption(
      new Option(
        "--output <where>",
        "store: write suspects and the archive to ClickHouse (CLICKHOUSE_URL or FUNDGUARD_DATA_DIR); topic: to suspects.v1 for `fundguard sink` (several workers on one embedded chdb)",
      )
        .choices(["store", "topic"])
        .default("store"),
    )
    .action(
      async (o: {
        untilCaughtUp?: boolean;
        reference?: string;
        metrics: boolean;
        output: "store" | "topic";
      }) => {
        const ctx = kafkaContext("worker");
        const store = o.output === "store" ? await openWorkerStore() : undefined;
        const metrics = new Metrics("worker");
        const health = new Health({
          log: ctx.log,
          metrics,
          policy: backoffUpTo(ctx.env.FUNDGUARD_BACKOFF_MAX_MS),
        });
        const server = o.metrics
          ? await metrics.listen(ctx.env.FUNDGUARD_METRICS_PORT, undefined, () => health.report())
          : undefined;
        if (server) ctx.log.info({ address: server.address() }, "metrics at /metrics, health at /healthz");
        const transport = await contextTransport(ctx);
        try {
          await runWorker({
            transport,
            metrics,
            health,
            schemaWaitMs: ctx.env.FUNDGUARD_SCHEMA_WAIT_MS,
            registryUrl: ctx.registryUrl,
            limits: ctx.limits,
            topics: ctx.topics,
            group: ctx.env.FUNDGUARD_GROUP,
            detectors: { reference: o.reference ?? ctx.env.FUNDGUARD_REFERENCE_DIR },
            lanes: ctx.env.FUNDGUARD_LANES,
            retentionDays: ctx.env.FUNDGUARD_RETENTION_DAYS,
            latenessDays: ctx.env.FUNDGUARD_LATENESS_DAYS,
            state: ctx.env.FUNDGUARD_STATE_DIR
              ? { dir: ctx.env.FUNDGUARD_STATE_DIR, cachePersons: ctx.env.FUNDGUARD_STATE_CACHE_PERSONS }
              : undefined,
            log: ctx.log,
            untilCaughtUp: o.untilCaughtUp,
            commitIntervalMs: ctx.env.FUNDGUARD_COMMIT_INTERVAL_MS,
            sessionTimeoutMs: ctx.connection.sessionTimeoutMs,
            createPartitions: ctx.env.FUNDGUARD_PARTITIONS,
            output: store ? { kind: "store", store } : { kind: "topic" },
            signal: shutdownSignal(ctx.log),
          });
        } finally {
          await store?.close();
          server?.close();
        }
      },
    );
}

async function openWorkerStore(): Promise<Store> {
  try {
    return await openStore();
  } catch (e) {
    if (e instanceof StoreLockedError) {
      throw new Error(
        `${e.message}\nSeveral workers cannot share one embedded chdb: give them a ClickHouse server (CLICKHOUSE_URL), or run them with --output topic and one \`fundguard sink\`.`,
      );
    }
    throw e;
  }
}
