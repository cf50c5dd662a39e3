// The investigator API and web UI: buildServer for embedding (fundguard start, tests),
// registerServeCommand for the CLI (serve, users add/list/rotate/revoke/remove).
export {
  type AddUserOptions,
  addUser,
  hashToken,
  listUsers,
  newToken,
  ROLES,
  type Role,
  removeUser,
  type User,
  type UserDirectory,
  UsersFileDirectory,
  usersFilePath,
  usersFromList,
} from "./auth.ts";
export { registerServeCommand } from "./command.ts";
export { type BuildServerOptions, buildServer } from "./server.ts";
