// How every command connects to Kafka: brokers, client id and the consumer timings, from the
// validated environment, and the one place a kafkajs client is built.
import lz4Module from "@2l/kafkajs-lz4";
import kafkajs, { CompressionTypes, Kafka, logLevel as KafkaLogLevel, type LogEntry } from "kafkajs";
import { type Env, requireBrokers } from "../config/env.ts";
import type { Logger } from "../log.ts";

// Every kafkajs client of the process reads and writes lz4 (the changelog's codec): kafkajs has
// the codec only as a registered plug-in. It is CommonJS, so CompressionCodecs is not a named
// export to Node's ESM loader, and the codec module's export is the class itself.
const LZ4Codec = lz4Module as unknown as typeof lz4Module.default;
kafkajs.CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec;

/** How a consumer of this process times its group membership and fetches. */
export interface ConsumerTiming {
  /** A member that stops heartbeating leaves its group after this long (its partitions move). */
  sessionTimeoutMs: number;
  heartbeatMs: number;
  /**
   * How long a fetch waits on the broker for new data. kafkajs defaults to 5 s, which is also
   * how long stopping a consumer or reacting to a rebalance can take; half a second keeps
   * shutdowns and hand-overs quick at the cost of a few idle fetches.
   */
  fetchWaitMs: number;
}

export interface KafkaConnection extends ConsumerTiming {
  brokers: string[];
  clientId: string;
}

/** Heartbeats often enough that a few lost ones do not cost the membership. */
export function consumerTiming(sessionTimeoutMs: number): ConsumerTiming {
  return {
    sessionTimeoutMs,
    heartbeatMs: Math.max(1, Math.min(1_000, Math.floor(sessionTimeoutMs / 3))),
    fetchWaitMs: 500,
  };
}

/** The timings of a caller given none (the default of FUNDGUARD_SESSION_TIMEOUT_MS). */
export const DEFAULT_TIMING: ConsumerTiming = consumerTiming(10_000);

/** `service` names the client (`fundguard-<service>`) in the broker's logs and metrics. */
export function kafkaConnection(env: Env, service: string): KafkaConnection {
  return {
    brokers: requireBrokers(env),
    clientId: `fundguard-${service}`,
    ...consumerTiming(env.FUNDGUARD_SESSION_TIMEOUT_MS),
  };
}

const LEVELS: Record<number, "error" | "warn" | "info" | "debug"> = {
  [KafkaLogLevel.ERROR]: "error",
  [KafkaLogLevel.WARN]: "warn",
  [KafkaLogLevel.INFO]: "info",
  [KafkaLogLevel.DEBUG]: "debug",
};

/**
 * Logged by kafkajs for every idempotent producer with bounded retries. The only such producer
 * (the worker's) resends a request a send gave up on; kafkajs rolls a failed request's sequence
 * numbers back, so a broker that did write it recognises the resend as a duplicate.
 */
const BOUNDED_RETRIES_WARNING = "Limiting retries for the idempotent producer may invalidate EoS guarantees";

/** A kafkajs client whose own logs go through our logger, at warn and above. */
export function createKafka(conn: Pick<KafkaConnection, "brokers" | "clientId">, log: Logger): Kafka {
  const child = log.child({ component: "kafkajs" });
  return new Kafka({
    clientId: conn.clientId,
    brokers: conn.brokers,
    logLevel: KafkaLogLevel.WARN,
    retry: { initialRetryTime: 200 },
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, ...rest } = entry;
        if (message === BOUNDED_RETRIES_WARNING) return;
        child[LEVELS[level] ?? "info"](rest, message);
      },
  });
}
