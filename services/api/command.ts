// `fundguard serve` (the API and web UI over the store) and `fundguard users ...` (the users file,
// every change and listing audited).
import { type Command, InvalidArgumentError, Option } from "commander";
import { auditCli } from "../cli/audit.ts";
import { activeDetectors } from "../cli/context.ts";
import { accessLimits, type Env, limitsOf, loadEnv } from "../config/env.ts";
import type { ActiveDetector } from "../engine/engine.ts";
import { createLogger, type Logger } from "../log.ts";
import { Metrics } from "../metrics.ts";
import { describeStore, openStore, storeConfigFromEnv } from "../store/index.ts";
import {
  type AddUserOptions,
  addUser,
  expiresAt,
  listUsers,
  ROLES,
  removeUser,
  revokeTokens,
  rotateToken,
  UsersFileDirectory,
  usersFilePath,
} from "./auth.ts";

function regionList(value: string): string[] {
  const list = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  for (const r of list)
    if (!/^\d{6}$/.test(r)) throw new InvalidArgumentError(`not a 6-digit region code: ${r}`);
  return list;
}

function positiveDays(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 3650) throw new InvalidArgumentError("expected 1 to 3650 days");
  return n;
}

/**
 * With Kafka configured, `serve` is the distributed mode's front door: /ingest produces to the
 * input topics as `replay` does, and /check follows detector-config.v1 as the workers do.
 */
async function distributedInputs(env: Env, log: Logger, active: ActiveDetector[]) {
  if (!env.KAFKA_BROKERS) return { stop: async () => undefined };
  const { contextTransport, kafkaContext } = await import("../cli/context.ts");
  const { AvroSerde } = await import("../kafka/serde.ts");
  const { inputTopicConfigs } = await import("../kafka/topics.ts");
  const { followDetectorConfig } = await import("../dynamic-config/apply.ts");
  const { configTopicFor } = await import("../dynamic-config/topic.ts");
  const { KafkaIngest } = await import("./kafka-ingest.ts");
  const ctx = kafkaContext("serve");
  const transport = await contextTransport(ctx);
  const admin = transport.admin();
  try {
    await admin.createTopics(inputTopicConfigs(ctx.topics, env.FUNDGUARD_PARTITIONS));
  } finally {
    await admin.close();
  }
  const serde = new AvroSerde(ctx.registryUrl, ctx.topics, { limits: ctx.limits });
  await serde.register();
  const follower = await followDetectorConfig(transport, configTopicFor(ctx.topics), active, { log });
  return { ingest: new KafkaIngest(transport, serde, ctx.topics), stop: () => follower.stop() };
}

/** "host:port" of a listening server, IPv6 in brackets. */
export function listeningAt(server: { address(): unknown }): { host: string; port: number } {
  const a = server.address() as { address: string; port: number };
  return { host: a.address.includes(":") ? `[${a.address}]` : a.address, port: a.port };
}

export function registerServeCommand(program: Command): void {
  program
    .command("serve")
    .description(
      "investigator HTTP API (/api/v1/) and web UI (/) over the store; HOST:PORT (default 127.0.0.1:8080)",
    )
    .option("--port <n>", "listen here instead of PORT", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 65535)
        throw new InvalidArgumentError("expected a port number");
      return n;
    })
    .option("--host <addr>", "address to listen on instead of HOST (default 127.0.0.1)")
    .action(async (o: { port?: number; host?: string }) => {
      const env = loadEnv();
      const log = createLogger("api", env.LOG_LEVEL);
      const path = usersFilePath();
      const users = await UsersFileDirectory.open(
        path,
        (err) => log.error({ err: err.message }, "users file"),
        {
          ttlDays: env.FUNDGUARD_TOKEN_TTL_DAYS,
        },
      );
      if (users.userCount === 0) {
        log.warn(
          { usersFile: path },
          "no users: every API call will answer 401; create one with `fundguard users add --name NAME --role admin`",
        );
      }
      const config = storeConfigFromEnv();
      const store = await openStore(config);
      const { buildServer } = await import("./server.ts");
      const active = activeDetectors(env);
      const inputs = await distributedInputs(env, log, active);
      const app = await buildServer({
        store,
        users,
        log,
        metrics: new Metrics("serve"),
        limits: accessLimits(env),
        trustProxy: env.FUNDGUARD_TRUST_PROXY,
        active,
        retentionDays: env.FUNDGUARD_RETENTION_DAYS,
        latenessDays: env.FUNDGUARD_LATENESS_DAYS,
        ...(inputs.ingest ? { ingest: inputs.ingest } : {}),
        inputLimits: limitsOf(env),
        maxIngestBytes: env.FUNDGUARD_MAX_INGEST_BYTES,
        streamPollMs: env.FUNDGUARD_STREAM_POLL_MS,
      });
      await app.listen({ port: o.port ?? env.PORT, host: o.host ?? env.HOST });
      log.info(
        { ...listeningAt(app.server), store: describeStore(config), usersFile: path, users: users.userCount },
        "serving",
      );
      await new Promise<void>((resolve) => {
        for (const sig of ["SIGTERM", "SIGINT"] as const) process.once(sig, () => resolve());
      });
      log.info("shutting down");
      await inputs.stop();
      await app.close();
      await store.close();
    });

  const users = program
    .command("users")
    .description(
      "manage API users in the users file (FUNDGUARD_USERS_FILE, default FUNDGUARD_DATA_DIR/users.json)",
    );

  users
    .command("add")
    .description("add a user (or, with --add-token, a token to one) and print the new token once")
    .requiredOption("--name <name>", "user name (letters, digits, _ . @ -)")
    .addOption(new Option("--role <role>", "role").choices([...ROLES]).makeOptionMandatory())
    .option(
      "--regions <codes>",
      "comma-separated 6-digit region codes (required for investigators)",
      regionList,
    )
    .option("--unmask", "show personal fields (person_id, birth dates) unmasked")
    .option("--label <text>", "a note kept with the token")
    .option("--add-token", "give an existing user another token")
    .option("--ttl-days <n>", "days the token is valid (default FUNDGUARD_TOKEN_TTL_DAYS)", positiveDays)
    .option("--file <path>", "users file (default from the environment)")
    .action(async (o: AddUserOptions & { file?: string }) => {
      const path = o.file ?? usersFilePath();
      const opts = {
        name: o.name,
        role: o.role,
        ...(o.regions ? { regions: o.regions } : {}),
        ...(o.unmask ? { unmask: true } : {}),
        ...(o.label ? { label: o.label } : {}),
        ...(o.addToken ? { addToken: true } : {}),
        ttlDays: o.ttlDays ?? loadEnv().FUNDGUARD_TOKEN_TTL_DAYS,
      };
      await auditCli({ command: "users add", details: { file: path, ...opts } });
      const { token } = await addUser(path, opts);
      process.stderr.write(`user ${o.name} (${o.role}) written to ${path}; the token is shown only now:\n`);
      process.stdout.write(`${token}\n`);
    });

  users
    .command("list")
    .description("list users (names, roles, regions, tokens' labels and expiry; never tokens)")
    .option("--file <path>", "users file (default from the environment)")
    .action(async (o: { file?: string }) => {
      const path = o.file ?? usersFilePath();
      const ttl = loadEnv().FUNDGUARD_TOKEN_TTL_DAYS;
      await auditCli({ command: "users list", details: { file: path } });
      for (const u of await listUsers(path)) {
        const regions = u.regions?.join(",") ?? (u.role === "investigator" ? "(none)" : "(all)");
        // A token without dates expires TTL after a server first loads it: no fixed date to show.
        const tokens = u.tokens.map(
          (t) =>
            `${t.label || "(no label)"} ${t.expires_at || t.created_at ? `expires ${new Date(expiresAt(t, ttl, 0)).toISOString()}` : "expiry not recorded: rotate it"}`,
        );
        process.stdout.write(
          `${u.name}\t${u.role}\t${regions}\t${u.role === "admin" || u.unmask ? "unmasked" : "masked"}\t${u.tokens.length} token(s)${u.disabled ? "\tdisabled" : ""}${tokens.map((t) => `\t${t}`).join("")}\n`,
        );
      }
    });

  users
    .command("rotate")
    .description("issue a new token for a user and revoke the old one (the one labelled --label)")
    .requiredOption("--name <name>", "user name")
    .option("--label <text>", "the token to replace, by label (default: every token of the user)")
    .option("--ttl-days <n>", "days the new token is valid (default FUNDGUARD_TOKEN_TTL_DAYS)", positiveDays)
    .option("--file <path>", "users file (default from the environment)")
    .action(async (o: { name: string; label?: string; ttlDays?: number; file?: string }) => {
      const path = o.file ?? usersFilePath();
      const opts = { name: o.name, ...(o.label !== undefined ? { label: o.label } : {}) };
      await auditCli({ command: "users rotate", details: { file: path, ...opts } });
      const { token, revoked } = await rotateToken(path, {
        ...opts,
        ttlDays: o.ttlDays ?? loadEnv().FUNDGUARD_TOKEN_TTL_DAYS,
      });
      process.stderr.write(`user ${o.name}: ${revoked} token(s) revoked; the new token is shown only now:\n`);
      process.stdout.write(`${token}\n`);
    });

  users
    .command("revoke")
    .description("revoke a user's token labelled --label, or all its tokens (the user stays)")
    .requiredOption("--name <name>", "user name")
    .option("--label <text>", "the token to revoke, by label")
    .option("--file <path>", "users file (default from the environment)")
    .action(async (o: { name: string; label?: string; file?: string }) => {
      const path = o.file ?? usersFilePath();
      const opts = { name: o.name, ...(o.label !== undefined ? { label: o.label } : {}) };
      await auditCli({ command: "users revoke", details: { file: path, ...opts } });
      const n = await revokeTokens(path, opts);
      process.stderr.write(`user ${o.name}: ${n} token(s) revoked\n`);
    });

  users
    .command("remove")
    .description("remove a user and all its tokens")
    .requiredOption("--name <name>", "user name")
    .option("--file <path>", "users file (default from the environment)")
    .action(async (o: { name: string; file?: string }) => {
      const path = o.file ?? usersFilePath();
      await auditCli({ command: "users remove", details: { file: path, name: o.name } });
      if (!(await removeUser(path, o.name))) throw new Error(`no user ${o.name}`);
    });
}
