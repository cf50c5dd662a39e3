// What every distributed command needs, built once from validated environment variables.

import { DETECTORS, loadCatalogs } from "../../detectors/index.ts";
import type { Limits } from "../../schemas/limits.ts";
import { type Env, limitsOf, loadEnv, requireKafka } from "../config/env.ts";
import { type ActiveDetector, activate } from "../engine/engine.ts";
import { type KafkaConnection, kafkaConnection } from "../kafka/connection.ts";
import { type Topics, topicNames } from "../kafka/topics.ts";
import type { KafkaTransport } from "../kafka/transport.ts";
import { createLogger, type Logger } from "../log.ts";

export interface KafkaContext {
  env: Env;
  log: Logger;
  connection: KafkaConnection;
  topics: Topics;
  registryUrl: string;
  limits: Limits;
}

export function kafkaContext(service: string): KafkaContext {
  const env = loadEnv();
  const log = createLogger(service, env.LOG_LEVEL);
  const { registryUrl } = requireKafka(env);
  const connection = kafkaConnection(env, service);
  return {
    env,
    log,
    connection,
    topics: topicNames(env.FUNDGUARD_TOPIC_PREFIX),
    registryUrl,
    limits: limitsOf(env),
  };
}

/** The Kafka transport of FUNDGUARD_KAFKA_CLIENT, connected as the context is. */
export async function contextTransport(ctx: KafkaContext): Promise<KafkaTransport> {
  const { openTransport } = await import("../kafka/transport.ts");
  return openTransport(ctx.env.FUNDGUARD_KAFKA_CLIENT, {
    brokers: ctx.connection.brokers,
    clientId: ctx.connection.clientId,
    log: ctx.log,
  });
}

export function activeDetectors(env: Env, referenceDir?: string): ActiveDetector[] {
  return activate(DETECTORS, loadCatalogs(referenceDir ?? env.FUNDGUARD_REFERENCE_DIR));
}

/** Aborts on SIGTERM/SIGINT so long-running commands finish their batch, commit and exit. */
export function shutdownSignal(log: Logger): AbortSignal {
  const ac = new AbortController();
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    process.once(sig, () => {
      log.info({ signal: sig }, "shutting down");
      ac.abort();
    });
  }
  return ac.signal;
}
