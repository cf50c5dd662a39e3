// One pino logger for every service: JSON on stderr with stable field names (service, component, ...).
import pino from "pino";

export type Logger = pino.Logger;

export function createLogger(service: string, level = process.env.LOG_LEVEL ?? "info"): Logger {
  return pino({ level, base: { service }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
}
