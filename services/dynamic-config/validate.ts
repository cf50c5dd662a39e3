// A detector's configuration checked against its own zod schema: the one rule for `config set`,
// `replay --run --config` and the workers that follow detector-config.v1.
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
