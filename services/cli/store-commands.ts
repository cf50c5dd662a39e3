// Commands that read or write the ClickHouse store: migrate, sink (Kafka → ClickHouse) and export.

import { once } from "node:events";
import { createWriteStream } from "node:fs";
import type { Command } from "commander";
import { loadEnv } from "../config/env.ts";
import { Health } from "../health.ts";
import { createLogger } from "../log.ts";
import { backoffUpTo } from "../retry.ts";
import { runSink } from "../sink/sink.ts";
import { LIVE_RUN, openStore } from "../store/index.ts";
import { auditCli } from "./audit.ts";
import { contextTransport, kafkaContext, shutdownSignal } from "./context.ts";

export function registerStoreCommands(program: Command): void {
  program
    .command("migrate")
    .description(
      "apply the store's schema migrations (CLICKHOUSE_URL or FUNDGUARD_DATA_DIR), so that a user that may only read it can open it",
    )
    .action(async () => {
      const env = loadEnv();
      const store = await openStore();
      await store.close();
      createLogger("migrate", env.LOG_LEVEL).info(
        { applied: store.migrations.applied, current: store.migrations.current },
        "store migrated",
      );
    });

  program
    .command("sink")
    .description(
      "write the input topics and suspect changes into ClickHouse (CLICKHOUSE_URL or FUNDGUARD_DATA_DIR)",
    )
    .option("--until-caught-up", "exit 0 once the end offsets seen at start are written")
    .option("--group <id>", "consumer group of the sink", "fundguard-sink")
    .action(async (o: { untilCaughtUp?: boolean; group: string }) => {
      const ctx = kafkaContext("sink");
      const store = await openStore();
      try {
        await runSink({
          health: new Health({ log: ctx.log, policy: backoffUpTo(ctx.env.FUNDGUARD_BACKOFF_MAX_MS) }),
          schemaWaitMs: ctx.env.FUNDGUARD_SCHEMA_WAIT_MS,
          transport: await contextTransport(ctx),
          sessionTimeoutMs: ctx.connection.sessionTimeoutMs,
          registryUrl: ctx.registryUrl,
          limits: ctx.limits,
          topics: ctx.topics,
          store,
          group: o.group,
          log: ctx.log,
          untilCaughtUp: o.untilCaughtUp,
          signal: shutdownSignal(ctx.log),
        });
      } finally {
        await store.close();
      }
    });

  program
    .command("export")
    .description("active suspects from ClickHouse as NDJSON, each finding once")
    .option("--out <file>", "write here instead of stdout")
    .option("--run <id>", "run to export", LIVE_RUN)
    .action(async (o: { out?: string; run: string }) => {
      const env = loadEnv();
      const log = createLogger("export", env.LOG_LEVEL);
      const store = await openStore();
      const details = { run: o.run, ...(o.out ? { out: o.out } : {}) };
      let n = 0;
      try {
        // Audited before the first suspect is read, and again with the count when it ends.
        await auditCli({ command: "export", details: { ...details, phase: "start" } }, store);
        let complete = false;
        const out = o.out ? createWriteStream(o.out) : process.stdout;
        try {
          for await (const s of store.exportSuspects({ runId: o.run })) {
            if (!out.write(`${JSON.stringify(s)}\n`)) await once(out, "drain");
            n++;
          }
          complete = true;
        } finally {
          if (o.out) {
            out.end();
            await once(out, "finish");
          }
          await auditCli(
            { command: "export", details: { ...details, phase: "end", complete }, rows: n },
            store,
          ).catch((err) => log.error({ err }, "audit write failed at the end of the export"));
        }
      } finally {
        await store.close();
      }
      log.info({ suspects: n, run: o.run }, "exported");
    });
}
