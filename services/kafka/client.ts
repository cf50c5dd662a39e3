import { Kafka, logLevel as KafkaLogLevel, type LogEntry } from "kafkajs";
import type { Logger } from "../log.ts";

const LEVELS: Record<number, "error" | "warn" | "info" | "debug"> = {
  [KafkaLogLevel.ERROR]: "error",
  [KafkaLogLevel.WARN]: "warn",
  [KafkaLogLevel.INFO]: "info",
  [KafkaLogLevel.DEBUG]: "debug",
};

/** A kafkajs client whose own logs go through our logger, at warn and above. */
export function createKafka(brokers: string[], clientId: string, log: Logger): Kafka {
  const child = log.child({ component: "kafkajs" });
  return new Kafka({
    clientId,
    brokers,
    logLevel: KafkaLogLevel.WARN,
    retry: { retries: 8, initialRetryTime: 200 },
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, ...rest } = entry;
        child[LEVELS[level] ?? "info"](rest, message);
      },
  });
}
