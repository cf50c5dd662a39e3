// Configuration from the environment, validated once at start-up with messages an operator can act on.
import { z } from "zod";
import { DEFAULT_LIMITS, type Limits } from "../../schemas/limits.ts";

const brokers = z
  .string()
  .min(1)
  .transform((s) => s.split(",").map((b) => b.trim()))
  .refine((list) => list.every((b) => /^[^\s:]+:\d+$/.test(b)), "expected host:port[,host:port...]");

const schema = z.object({
  KAFKA_BROKERS: brokers.optional(),
  SCHEMA_REGISTRY_URL: z.url().optional(),
  CLICKHOUSE_URL: z.url().optional(),
  FUNDGUARD_DATA_DIR: z.string().min(1).default("./data"),
  FUNDGUARD_TOPIC_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9._-]*$/, "letters, digits, '.', '_' and '-' only")
    .default(""),
  FUNDGUARD_GROUP: z
    .string()
    .regex(/^[A-Za-z0-9._-]+$/, "letters, digits, '.', '_' and '-' only")
    .default("fundguard-detectors"),
  FUNDGUARD_PARTITIONS: z.coerce.number().int().min(1).max(1000).default(6),
  FUNDGUARD_REFERENCE_DIR: z.string().min(1).optional(),
  /** How often workers write state and commit offsets (Kafka Streams' commit.interval.ms). */
  FUNDGUARD_COMMIT_INTERVAL_MS: z.coerce.number().int().min(10).default(1_000),
  FUNDGUARD_RETENTION_DAYS: z.coerce.number().int().min(1).default(400),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** Prometheus /metrics of workers and sinks; 0 picks a free port. */
  FUNDGUARD_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9464),
  /** The contract's input limits (schemas/limits.ts), for NDJSON lines and Kafka records alike. */
  FUNDGUARD_MAX_MESSAGE_BYTES: z.coerce.number().int().min(1).default(DEFAULT_LIMITS.maxMessageBytes),
  FUNDGUARD_MAX_STRING_LENGTH: z.coerce.number().int().min(1).default(DEFAULT_LIMITS.maxStringLength),
  FUNDGUARD_MAX_DIAGNOSES: z.coerce.number().int().min(0).default(DEFAULT_LIMITS.maxDiagnoses),
  FUNDGUARD_MAX_ITEMS: z.coerce.number().int().min(0).default(DEFAULT_LIMITS.maxItems),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});

export type Env = z.infer<typeof schema>;

export function loadEnv(source: NodeJS.ProcessEnv = process.env): Env {
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== ""));
  const r = schema.safeParse(cleaned);
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new Error(`invalid configuration:\n${lines.join("\n")}`);
  }
  return r.data;
}

export function limitsOf(env: Env): Limits {
  return {
    maxMessageBytes: env.FUNDGUARD_MAX_MESSAGE_BYTES,
    maxStringLength: env.FUNDGUARD_MAX_STRING_LENGTH,
    maxDiagnoses: env.FUNDGUARD_MAX_DIAGNOSES,
    maxItems: env.FUNDGUARD_MAX_ITEMS,
  };
}

/** The Kafka settings a distributed command cannot run without. */
export function requireKafka(env: Env): { brokers: string[]; registryUrl: string } {
  if (!env.KAFKA_BROKERS) throw new Error("KAFKA_BROKERS is not set (e.g. KAFKA_BROKERS=127.0.0.1:9092)");
  if (!env.SCHEMA_REGISTRY_URL)
    throw new Error("SCHEMA_REGISTRY_URL is not set (e.g. http://127.0.0.1:8081)");
  return { brokers: env.KAFKA_BROKERS, registryUrl: env.SCHEMA_REGISTRY_URL };
}
