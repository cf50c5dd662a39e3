// `fundguard config set|get|history|reset`: the detector-config.v1 topic from the command line.
import { userInfo } from "node:os";
import { DETECTORS } from "../../detectors/index.ts";
import { type KafkaTransport, tpKey } from "../kafka/transport.ts";
import {
  CONFIG_HEADERS,
  type ConfigRecord,
  configTopicName,
  ensureConfigTopic,
  readConfigTopic,
} from "./topic.ts";
import { checkDetectorConfig, defaultConfig, requireDetector } from "./validate.ts";

export interface ConfigContext {
  transport: KafkaTransport;
  prefix: string;
}

export interface EffectiveConfig {
  detector: string;
  detector_version: string;
  config: unknown;
  config_hash: string;
  /** "topic": the latest valid record; "default": no record (or a reset). */
  source: "topic" | "default";
  offset: string | null;
  set_at: string | null;
  set_by: string | null;
  /** Later records a worker ignores because they are invalid. */
  ignored_records: number;
}

/** What a worker holds after reading `records` in order: the latest valid record per detector wins. */
export function effectiveConfigs(records: readonly ConfigRecord[]): Map<string, EffectiveConfig> {
  const out = new Map<string, EffectiveConfig>();
  for (const d of DETECTORS) {
    const def = defaultConfig(d);
    out.set(d.id, {
      detector: d.id,
      detector_version: d.version,
      config: def.config,
      config_hash: def.hash,
      source: "default",
      offset: null,
      set_at: null,
      set_by: null,
      ignored_records: 0,
    });
  }
  for (const r of records) {
    const current = out.get(r.detector);
    const d = DETECTORS.find((x) => x.id === r.detector);
    if (!current || !d) continue;
    const check = r.parseError ? undefined : checkDetectorConfig(d, r.value === null ? {} : r.value);
    if (!check?.ok) {
      current.ignored_records++;
      continue;
    }
    out.set(r.detector, {
      ...current,
      config: check.config,
      config_hash: check.hash,
      source: r.value === null ? "default" : "topic",
      offset: r.offset,
      set_at: r.at,
      set_by: r.headers[CONFIG_HEADERS.setBy] ?? null,
      ignored_records: 0,
    });
  }
  return out;
}

function parseJsonOption(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new Error(`--json is not valid JSON: ${(e as Error).message}`);
  }
}

function setBy(): string {
  try {
    return process.env.FUNDGUARD_USER || userInfo().username;
  } catch {
    return "unknown";
  }
}

async function produce(
  ctx: ConfigContext,
  detector: string,
  value: string | null,
  hash: string,
): Promise<string> {
  const topic = configTopicName(ctx.prefix);
  const admin = ctx.transport.admin();
  try {
    await ensureConfigTopic(admin, topic);
  } finally {
    await admin.close();
  }
  const producer = ctx.transport.producer();
  try {
    const offsets = await producer.send([
      {
        topic,
        partition: 0,
        key: detector,
        value,
        headers: { [CONFIG_HEADERS.hash]: hash, [CONFIG_HEADERS.setBy]: setBy() },
      },
    ]);
    return String(offsets.get(tpKey(topic, 0)) ?? "");
  } finally {
    await producer.close();
  }
}

export interface SetResult {
  detector: string;
  config: unknown;
  config_hash: string;
  offset: string;
  topic: string;
}

/**
 * Validates and publishes a detector's config. The value replaces the detector's config (fields
 * left out take their defaults); with `merge` it is merged into the current one first.
 */
export async function configSet(
  ctx: ConfigContext,
  detectorId: string,
  json: string,
  opts: { merge?: boolean } = {},
): Promise<SetResult> {
  const detector = requireDetector(detectorId);
  let raw = parseJsonOption(json);
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new Error(`--json must be a JSON object, got ${JSON.stringify(raw)}`);
  }
  // Validate before touching Kafka: a bad value never reaches the topic.
  let check = checkDetectorConfig(detector, raw);
  if (!check.ok) throw new Error(check.reason);
  if (opts.merge) {
    const current = effectiveConfigs(await readConfigTopic(ctx.transport, configTopicName(ctx.prefix))).get(
      detectorId,
    );
    raw = { ...(current?.config as Record<string, unknown>), ...(raw as Record<string, unknown>) };
    check = checkDetectorConfig(detector, raw);
    if (!check.ok) throw new Error(check.reason);
  }
  const offset = await produce(ctx, detectorId, JSON.stringify(raw), check.hash);
  return {
    detector: detectorId,
    config: check.config,
    config_hash: check.hash,
    offset,
    topic: configTopicName(ctx.prefix),
  };
}

/** Publishes a tombstone: the detector goes back to its defaults. */
export async function configReset(ctx: ConfigContext, detectorId: string): Promise<SetResult> {
  const detector = requireDetector(detectorId);
  const def = defaultConfig(detector);
  const offset = await produce(ctx, detectorId, null, def.hash);
  return {
    detector: detectorId,
    config: def.config,
    config_hash: def.hash,
    offset,
    topic: configTopicName(ctx.prefix),
  };
}

export async function configGet(ctx: ConfigContext, detectorId?: string): Promise<EffectiveConfig[]> {
  if (detectorId) requireDetector(detectorId);
  const all = effectiveConfigs(await readConfigTopic(ctx.transport, configTopicName(ctx.prefix)));
  return [...all.values()].filter((c) => !detectorId || c.detector === detectorId);
}

export interface HistoryEntry {
  offset: string;
  at: string;
  set_by: string | null;
  /** The value as published (null: reset to defaults). */
  value: unknown;
  /** The effective config's hash, or null when the record is invalid (workers ignore it). */
  config_hash: string | null;
  error: string | null;
}

/** Every record of one detector still in the topic (compaction may have removed older ones). */
export async function configHistory(ctx: ConfigContext, detectorId: string): Promise<HistoryEntry[]> {
  const detector = requireDetector(detectorId);
  const records = await readConfigTopic(ctx.transport, configTopicName(ctx.prefix));
  return records
    .filter((r) => r.detector === detectorId)
    .map((r) => {
      const check = r.parseError
        ? ({ ok: false, reason: r.parseError } as const)
        : checkDetectorConfig(detector, r.value === null ? {} : r.value);
      return {
        offset: r.offset,
        at: r.at,
        set_by: r.headers[CONFIG_HEADERS.setBy] ?? null,
        value: r.value === undefined ? null : r.value,
        config_hash: check.ok ? check.hash : null,
        error: check.ok ? null : check.reason,
      };
    });
}

export function formatHistory(entries: readonly HistoryEntry[]): string {
  if (entries.length === 0) return "no records (the detector runs on its defaults)\n";
  const rows = entries.map((e) => [
    e.offset,
    e.at,
    e.set_by ?? "",
    e.config_hash ?? "INVALID",
    e.value === null ? "(reset to defaults)" : JSON.stringify(e.value),
  ]);
  return formatTable(["offset", "at", "set_by", "config_hash", "value"], rows);
}

/** A plain text table: columns padded to their widest cell. */
export function formatTable(
  header: string[],
  rows: string[][],
  rightAligned: ReadonlySet<number> = new Set(),
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (rightAligned.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join("\n")}\n`;
}
