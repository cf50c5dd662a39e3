// The embedded mode's web server: the investigator API and UI over the embedded store, with a
// fresh admin token for whoever ran `npm start`.
import { addUser, removeUser, UsersFileDirectory, usersFilePath } from "../api/auth.ts";
import { buildServer } from "../api/server.ts";
import type { Logger } from "../log.ts";
import { Metrics } from "../metrics.ts";
import type { Store } from "../store/index.ts";

/** The user `start` (re)issues a token for on every start; other users in the file are left alone. */
export const START_ADMIN = "start-admin";

export async function serveEmbedded(o: { store: Store; log: Logger; port: number; host?: string }) {
  const path = usersFilePath();
  await removeUser(path, START_ADMIN).catch(() => false);
  const { token } = await addUser(path, {
    name: START_ADMIN,
    role: "admin",
    unmask: true,
    label: "fundguard start",
  });
  const users = await UsersFileDirectory.open(path, (err) => o.log.error({ err: err.message }, "users file"));
  const app = await buildServer({ store: o.store, users, log: o.log, metrics: new Metrics("start") });
  const host = o.host ?? "0.0.0.0";
  await app.listen({ port: o.port, host });
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : o.port;
  return { app, url: `http://localhost:${port}/`, token };
}
