// `fundguard config`: dynamic detector configuration in the compacted detector-config.v1 topic.
import type { Command } from "commander";
import { loadEnv } from "../config/env.ts";
import type { ConfigContext } from "../dynamic-config/commands.ts";
import { kafkaConnection } from "../kafka/connection.ts";
import { openTransport } from "../kafka/transport.ts";
import { createLogger } from "../log.ts";
import { auditCli } from "./audit.ts";

async function configContext(): Promise<ConfigContext> {
  const env = loadEnv();
  const { brokers, clientId } = kafkaConnection(env, "config");
  const log = createLogger("config", env.LOG_LEVEL);
  return {
    transport: await openTransport(env.FUNDGUARD_KAFKA_CLIENT, { brokers, clientId, log }),
    prefix: env.FUNDGUARD_TOPIC_PREFIX,
  };
}

const print = (v: unknown) => process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);

export function registerConfigCommands(program: Command): void {
  const config = program
    .command("config")
    .description("dynamic detector configuration (topic detector-config.v1), applied by running workers");

  config
    .command("set <detector>")
    .description(
      "validate a detector's config with its schema and publish it (fields left out take defaults)",
    )
    .requiredOption("--json <object>", "the config, e.g. '{\"readmissionMaxDays\":5}'")
    .option("--merge", "merge into the current config instead of replacing it")
    .action(async (detector: string, o: { json: string; merge?: boolean }) => {
      const { configSet } = await import("../dynamic-config/commands.ts");
      const ctx = await configContext();
      await auditCli({ command: "config set", details: { detector, json: o.json, merge: o.merge === true } });
      print(await configSet(ctx, detector, o.json, { merge: o.merge }));
    });

  config
    .command("get [detector]")
    .description("the effective config of one or every detector, as workers apply it")
    .action(async (detector: string | undefined) => {
      const { configGet } = await import("../dynamic-config/commands.ts");
      const list = await configGet(await configContext(), detector);
      print(detector ? list[0] : list);
    });

  config
    .command("history <detector>")
    .description("the records of one detector still in the topic, oldest first")
    .option("--json", "JSON instead of a table")
    .action(async (detector: string, o: { json?: boolean }) => {
      const { configHistory, formatHistory } = await import("../dynamic-config/commands.ts");
      const entries = await configHistory(await configContext(), detector);
      if (o.json) print(entries);
      else process.stdout.write(formatHistory(entries));
    });

  config
    .command("reset <detector>")
    .description("publish a tombstone: the detector goes back to its defaults")
    .action(async (detector: string) => {
      const { configReset } = await import("../dynamic-config/commands.ts");
      const ctx = await configContext();
      await auditCli({ command: "config reset", details: { detector } });
      print(await configReset(ctx, detector));
    });
}
