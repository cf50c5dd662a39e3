// `fundguard serve` (the API and web UI over the store) and `fundguard users ...` (the users file).
import { type Command, InvalidArgumentError, Option } from "commander";
import { loadEnv } from "../config/env.ts";
import { createLogger } from "../log.ts";
import { Metrics } from "../metrics.ts";
import { describeStore, openStore, storeConfigFromEnv } from "../store/index.ts";
import {
  type AddUserOptions,
  addUser,
  listUsers,
  ROLES,
  removeUser,
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

export function registerServeCommand(program: Command): void {
  program
    .command("serve")
    .description("investigator HTTP API (/api/v1/) and web UI (/) over the store; PORT (default 8080)")
    .option("--port <n>", "listen here instead of PORT", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 65535)
        throw new InvalidArgumentError("expected a port number");
      return n;
    })
    .option("--host <addr>", "address to listen on", process.env.HOST ?? "0.0.0.0")
    .action(async (o: { port?: number; host: string }) => {
      const env = loadEnv();
      const log = createLogger("api", env.LOG_LEVEL);
      const path = usersFilePath();
      const users = await UsersFileDirectory.open(path, (err) =>
        log.error({ err: err.message }, "users file"),
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
      const app = await buildServer({ store, users, log, metrics: new Metrics("serve") });
      const port = o.port ?? env.PORT;
      await app.listen({ port, host: o.host });
      log.info(
        { port, host: o.host, store: describeStore(config), usersFile: path, users: users.userCount },
        "serving",
      );
      await new Promise<void>((resolve) => {
        for (const sig of ["SIGTERM", "SIGINT"] as const) process.once(sig, () => resolve());
      });
      log.info("shutting down");
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
    .option("--file <path>", "users file (default from the environment)")
    .action(async (o: AddUserOptions & { file?: string }) => {
      const path = o.file ?? usersFilePath();
      const { token } = await addUser(path, {
        name: o.name,
        role: o.role,
        ...(o.regions ? { regions: o.regions } : {}),
        ...(o.unmask ? { unmask: true } : {}),
        ...(o.label ? { label: o.label } : {}),
        ...(o.addToken ? { addToken: true } : {}),
      });
      process.stderr.write(`user ${o.name} (${o.role}) written to ${path}; the token is shown only now:\n`);
      process.stdout.write(`${token}\n`);
    });

  users
    .command("list")
    .description("list users (names, roles, regions, token count; never tokens)")
    .option("--file <path>", "users file (default from the environment)")
    .action(async (o: { file?: string }) => {
      for (const u of await listUsers(o.file ?? usersFilePath())) {
        const regions = u.regions?.join(",") ?? (u.role === "investigator" ? "(none)" : "(all)");
        process.stdout.write(
          `${u.name}\t${u.role}\t${regions}\t${u.role === "admin" || u.unmask ? "unmasked" : "masked"}\t${u.tokens.length} token(s)${u.disabled ? "\tdisabled" : ""}\n`,
        );
      }
    });

  users
    .command("remove")
    .description("remove a user and all its tokens")
    .requiredOption("--name <name>", "user name")
    .option("--file <path>", "users file (default from the environment)")
    .action(async (o: { name: string; file?: string }) => {
      if (!(await removeUser(o.file ?? usersFilePath(), o.name))) throw new Error(`no user ${o.name}`);
    });
}
