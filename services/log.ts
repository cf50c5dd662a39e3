// One pino logger for every service: JSON on stderr with stable field names (service, component, ...).
// Credentials never reach a log line: the fields that could carry one are redacted by path.
import pino from "pino";

export type Logger = pino.Logger;

const SECRET_FIELDS = ["authorization", "token", "password", "cookie", "secret"];

const REDACT_PATHS = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  ...SECRET_FIELDS.map((f) => `*.headers.${f}`),
  "headers.authorization",
  "headers.cookie",
  "*.*.headers.authorization",
  "query.token",
  "*.query.token",
  "query.access_token",
  "*.query.access_token",
];

export function loggerOptions(service: string, level = process.env.LOG_LEVEL ?? "info"): pino.LoggerOptions {
  return {
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
  };
}

export function createLogger(service: string, level = process.env.LOG_LEVEL ?? "info"): Logger {
  return pino(loggerOptions(service, level), pino.destination(2));
}
