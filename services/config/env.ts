// Configuration from the environment, validated once at start-up with messages an operator can act on.
import { z } from "zod";
import { DEFAULT_LIMITS, type Limits } from "../../schemas/limits.ts";
import { KAFKA_CLIENTS } from "../kafka/transport.ts";

const brokers = z
  .string()
  .min(1)
  .transform((s) => s.split(",").map((b) => b.trim()))
  .refine((list) => list.every((b) => /^[^\s:]+:\d+$/.test(b)), "expected host:port[,host:port...]");

/** Defaults of the API's access limits (also used when an embedding caller passes none). */
export const ACCESS_DEFAULTS = {
  tokenTtlDays: 90,
  /** Requests per minute: one token; one source address (authenticated or not). */
  perToken: 6000,
  perAddress: 12000,
  maxExports: 2,
  maxStreams: 50,
};

/** How often `serve` looks in ClickHouse for suspects stored since (FUNDGUARD_STREAM_POLL_MS). */
export const DEFAULT_STREAM_POLL_MS = 1_000;

/** Largest body of one /api/v1/ingest request (FUNDGUARD_MAX_INGEST_BYTES). */
export const DEFAULT_MAX_INGEST_BYTES = 64 << 20;

export interface AccessLimits {
  /** Requests per minute from one source address. */
  perAddress: number;
  /** Requests per minute with one token. */
  perToken: number;
  /** CSV exports streaming at the same time (server-wide); beyond it a 429. */
  maxExports: number;
  /** /api/v1/stream connections open at the same time (server-wide); beyond it a 429. */
  maxStreams: number;
}

export const DEFAULT_ACCESS_LIMITS: AccessLimits = {
  perAddress: ACCESS_DEFAULTS.perAddress,
  perToken: ACCESS_DEFAULTS.perToken,
  maxExports: ACCESS_DEFAULTS.maxExports,
  maxStreams: ACCESS_DEFAULTS.maxStreams,
};

/** fastify's trustProxy: off, on (any proxy), or the addresses/CIDRs of the proxies to trust. */
const trustProxy = z
  .string()
  .transform((s): boolean | string[] =>
    s === "true" ? true : s === "false" ? false : s.split(",").map((a) => a.trim()),
  );

const schema = z.object({
  KAFKA_BROKERS: brokers.optional(),
  SCHEMA_REGISTRY_URL: z.url().optional(),
  /** The registry as a ClickHouse server reaches it, for the archive's Avro inserts (default: SCHEMA_REGISTRY_URL). */
  FUNDGUARD_CH_SCHEMA_REGISTRY_URL: z.url().optional(),
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
  /** The Kafka client behind services/kafka/transport.ts: platformatic won test/bench/transport.ts (README). */
  FUNDGUARD_KAFKA_CLIENT: z.enum(KAFKA_CLIENTS).default("platformatic"),
  FUNDGUARD_REFERENCE_DIR: z.string().min(1).optional(),
  /**
   * Worker threads a worker runs its partitions' engines in (default: one per core but one, at most
   * one per partition); 0 runs them on the main thread.
   */
  FUNDGUARD_LANES: z.coerce.number().int().min(0).max(256).optional(),
  /** How often workers write state and commit offsets (Kafka Streams' commit.interval.ms). */
  FUNDGUARD_COMMIT_INTERVAL_MS: z.coerce.number().int().min(10).default(1_000),
  /**
   * A consumer that stops heartbeating leaves its group after this long, and its partitions move
   * (Kafka's session.timeout.ms; the broker bounds it by group.min/max.session.timeout.ms).
   */
  FUNDGUARD_SESSION_TIMEOUT_MS: z.coerce.number().int().min(1_000).default(10_000),
  FUNDGUARD_RETENTION_DAYS: z.coerce.number().int().min(1).default(400),
  /** EngineOptions.latenessDays: how late an event may be and still be judged as in order (unset: the retention). */
  FUNDGUARD_LATENESS_DAYS: z.coerce.number().int().min(0).optional(),
  /** A worker's engine state on local disk (LMDB, one store per partition) instead of the heap. */
  FUNDGUARD_STATE_DIR: z.string().min(1).optional(),
  /** Persons a worker with FUNDGUARD_STATE_DIR keeps live in memory, over all its partitions. */
  FUNDGUARD_STATE_CACHE_PERSONS: z.coerce.number().int().min(1).default(200_000),
  /** Longest wait between retries of an unavailable store, registry or broker. */
  FUNDGUARD_BACKOFF_MAX_MS: z.coerce.number().int().min(100).default(30_000),
  /** How long a schema id the registry does not know is waited for before its messages are dead-lettered. */
  FUNDGUARD_SCHEMA_WAIT_MS: z.coerce.number().int().min(0).default(10_000),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** Address `start` and `serve` listen on; loopback unless a deployment says otherwise. */
  HOST: z.string().min(1).default("127.0.0.1"),
  FUNDGUARD_TRUST_PROXY: trustProxy.default(false),
  FUNDGUARD_TOKEN_TTL_DAYS: z.coerce.number().int().min(1).max(3650).default(ACCESS_DEFAULTS.tokenTtlDays),
  FUNDGUARD_RATE_LIMIT_TOKEN: z.coerce.number().int().min(1).default(ACCESS_DEFAULTS.perToken),
  FUNDGUARD_RATE_LIMIT_ADDRESS: z.coerce.number().int().min(1).default(ACCESS_DEFAULTS.perAddress),
  FUNDGUARD_MAX_INGEST_BYTES: z.coerce.number().int().min(1).default(DEFAULT_MAX_INGEST_BYTES),
  FUNDGUARD_MAX_EXPORTS: z.coerce.number().int().min(1).max(100).default(ACCESS_DEFAULTS.maxExports),
  FUNDGUARD_MAX_STREAMS: z.coerce.number().int().min(1).max(10_000).default(ACCESS_DEFAULTS.maxStreams),
  FUNDGUARD_STREAM_POLL_MS: z.coerce.number().int().min(100).max(60_000).default(DEFAULT_STREAM_POLL_MS),
  /** Who the audit log names for CLI actions (default: the OS user). */
  FUNDGUARD_USER: z
    .string()
    .regex(/^[A-Za-z0-9_.@-]{1,64}$/, "letters, digits, '_', '.', '@', '-' (1 to 64)")
    .optional(),
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
  return parseEnv(schema, source);
}

function parseEnv<T>(s: z.ZodType<T>, source: NodeJS.ProcessEnv): T {
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== ""));
  const r = s.safeParse(cleaned);
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new Error(`invalid configuration:\n${lines.join("\n")}`);
  }
  return r.data;
}

const chRegistrySchema = schema.pick({ SCHEMA_REGISTRY_URL: true, FUNDGUARD_CH_SCHEMA_REGISTRY_URL: true });

/**
 * The registry URL ClickHouse fetches Avro writer schemas from (`format_avro_schema_registry_url`
 * of the archive's AvroConfluent inserts); read on its own, for the store's configuration.
 */
export function clickhouseRegistryUrl(source: NodeJS.ProcessEnv = process.env): string | undefined {
  const env = parseEnv(chRegistrySchema, source);
  return env.FUNDGUARD_CH_SCHEMA_REGISTRY_URL ?? env.SCHEMA_REGISTRY_URL;
}

export function limitsOf(env: Env): Limits {
  return {
    maxMessageBytes: env.FUNDGUARD_MAX_MESSAGE_BYTES,
    maxStringLength: env.FUNDGUARD_MAX_STRING_LENGTH,
    maxDiagnoses: env.FUNDGUARD_MAX_DIAGNOSES,
    maxItems: env.FUNDGUARD_MAX_ITEMS,
  };
}

export function requireBrokers(env: Env): string[] {
  if (!env.KAFKA_BROKERS) throw new Error("KAFKA_BROKERS is not set (e.g. KAFKA_BROKERS=127.0.0.1:9092)");
  return env.KAFKA_BROKERS;
}

/** The Kafka settings a distributed command cannot run without. */
export function requireKafka(env: Env): { brokers: string[]; registryUrl: string } {
  const brokers = requireBrokers(env);
  if (!env.SCHEMA_REGISTRY_URL)
    throw new Error("SCHEMA_REGISTRY_URL is not set (e.g. http://127.0.0.1:8081)");
  return { brokers, registryUrl: env.SCHEMA_REGISTRY_URL };
}

/** The API's access limits as configured. */
export function accessLimits(env: Env): AccessLimits {
  return {
    perAddress: env.FUNDGUARD_RATE_LIMIT_ADDRESS,
    perToken: env.FUNDGUARD_RATE_LIMIT_TOKEN,
    maxExports: env.FUNDGUARD_MAX_EXPORTS,
    maxStreams: env.FUNDGUARD_MAX_STREAMS,
  };
}
