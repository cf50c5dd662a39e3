// Commands that read or write the ClickHouse store: sink (Kafka → ClickHouse) and export.

import { once } from "node:events";
import { createWriteStream } from "node:fs";
import type { Command } from "commander";
import { loadEnv } from "../config/env.ts";
import { createLogger } from "../log.ts";
import { runSink } from "../sink/sink.ts";
import { LIVE_RUN, openStore } from "../store/index.ts";
import { kafkaContext, shutdownSignal } from "./context.ts";

export function registerStoreCommands(program: Command): void {
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
          kafka: ctx.kafka,
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
      const out = o.out ? createWriteStream(o.out) : process.stdout;
      let n = 0;
      try {
        for await (const s of store.exportSuspects({ runId: o.run })) {
          if (!out.write(`${JSON.stringify(s)}\n`)) await once(out, "drain");
          n++;
        }
      } finally {
        await store.close();
      }
      if (o.out) {
        out.end();
        await once(out, "finish");
      }
      log.info({ suspects: n, run: o.run }, "exported");
    });
}
