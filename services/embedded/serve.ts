// The embedded mode's web server: the investigator API and UI over the embedded store, with a
// fresh admin token for whoever ran `npm start`; /ingest writes to the embedded pipeline's log.
import { addUser, removeUser, UsersFileDirectory, usersFilePath } from "../api/auth.ts";
import { listeningAt } from "../api/command.ts";
import { buildServer } from "../api/server.ts";
import type { SuspectFeed } from "../api/stream.ts";
import { auditCli } from "../cli/audit.ts";
import { accessLimits, type Env, limitsOf } from "../config/env.ts";
import type { Logger } from "../log.ts";
import { Metrics } from "../metrics.ts";
import type { Store } from "../store/index.ts";
import { LogIngest } from "./log-ingest.ts";
import type { EmbeddedPipeline } from "./pipeline.ts";

/** The user `start` (re)issues a token for on every start; other users in the file are left alone. */
export const START_ADMIN = "start-admin";

export async function serveEmbedded(o: {
  store: Store;
  log: Logger;
  env: Env;
  pipeline: EmbeddedPipeline;
  /** Given the /stream feed, for the pipeline to wake after each stored round. */
  onFeed: (feed: SuspectFeed) => void;
}) {
  const path = usersFilePath();
  await auditCli({ command: "start", details: { file: path, issues_token_for: START_ADMIN } }, o.store);
  await removeUser(path, START_ADMIN).catch(() => false);
  const { token } = await addUser(path, {
    name: START_ADMIN,
    role: "admin",
    unmask: true,
    label: "fundguard start",
    ttlDays: o.env.FUNDGUARD_TOKEN_TTL_DAYS,
  });
  const users = await UsersFileDirectory.open(
    path,
    (err) => o.log.error({ err: err.message }, "users file"),
    {
      ttlDays: o.env.FUNDGUARD_TOKEN_TTL_DAYS,
    },
  );
  const app = await buildServer({
    store: o.store,
    users,
    log: o.log,
    metrics: new Metrics("start"),
    limits: accessLimits(o.env),
    trustProxy: o.env.FUNDGUARD_TRUST_PROXY,
    active: o.pipeline.detectors,
    checkOnEngine: (s) => o.pipeline.check(s),
    ingest: new LogIngest(o.pipeline),
    maxIngestBytes: o.env.FUNDGUARD_MAX_INGEST_BYTES,
    inputLimits: limitsOf(o.env),
    streamPollMs: o.env.FUNDGUARD_STREAM_POLL_MS,
    onFeed: o.onFeed,
  });
  await app.listen({ port: o.env.PORT, host: o.env.HOST });
  const { host, port } = listeningAt(app.server);
  // A wildcard address is reached as localhost; any other as itself.
  const shown = host === "0.0.0.0" || host === "[::]" ? "localhost" : host;
  return { app, url: `http://${shown}:${port}/`, token };
}
