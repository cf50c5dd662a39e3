// A detector's configuration checked against its own zod schema: the one rule for `config set`,
// `replay --run --config` and the workers that follow detector-config.v1.
import { readFileSync } from "node:fs";
import { z } from "zod";
import { type AnyDetector, DETECTORS } from "../../detectors/index.ts";
import { configHash } from "../engine/engine.ts";

export type ConfigCheck =
  | { ok: true /** Effective config: defaults filled in. */; config: unknown; hash: string }
  | { ok: false; reason: string };

export function detectorById(id: string): AnyDetector | undefined {
  return DETECTORS.find((d) => d.id === id);
}

/** The detector, or an error naming the known ids. */
export function requireDetector(id: string): AnyDetector {
  const d = detectorById(id);
  if (!d)
    throw new Error(
      `unknown detector ${JSON.stringify(id)}; known: ${DETECTORS.map((x) => x.id).join(", ")}`,
    );
  return d;
}

/**
 * Validates `raw` with the detector's schema. Object schemas are checked strictly: an unknown
 * key (a typo such as `readmisionMaxDays`) is an error, not a silently ignored parameter.
 */
export function checkDetectorConfig(detector: AnyDetector, raw: unknown): ConfigCheck {
  const schema = detector.config instanceof z.ZodObject ? detector.config.strict() : detector.config;
  const r = schema.safeParse(raw);
  if (!r.success) {
    return { ok: false, reason: `invalid config for ${detector.id}:\n${z.prettifyError(r.error)}` };
  }
  return { ok: true, config: r.data, hash: configHash(r.data) };
}

/** The effective default config of a detector and its hash. */
export function defaultConfig(detector: AnyDetector): { config: unknown; hash: string } {
  const config = detector.config.parse({});
  return { config, hash: configHash(config) };
}

/** `--config FILE.json`: `{ "detector_id": { ...config }, ... }`. */
export function readConfigFile(path: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`--config ${path}: ${(e as Error).message}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new Error(`--config ${path}: expected a JSON object of detector id → config`);
  }
  return parsed as Record<string, unknown>;
}

/** Each config checked against its detector (unknown ids and invalid values are errors), defaults filled in. */
export function effectiveConfigs(configs: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [id, raw] of Object.entries(configs)) {
    const check = checkDetectorConfig(requireDetector(id), raw);
    if (!check.ok) throw new Error(check.reason);
    out[id] = check.config;
  }
  return out;
}
