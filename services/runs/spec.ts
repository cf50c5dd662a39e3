// What a run executes: its name, the chosen detectors (with versions) and their effective configs.
import { DETECTORS } from "../../detectors/index.ts";
import { checkDetectorConfig, requireDetector } from "../dynamic-config/validate.ts";
import { configHash } from "../engine/engine.ts";
import { LIVE_RUN } from "../store/index.ts";

const RUN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function checkRunName(name: string): string {
  if (!RUN_NAME.test(name)) {
    throw new Error(
      `run name ${JSON.stringify(name)} is not valid: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
  if (name === LIVE_RUN)
    throw new Error(`'${LIVE_RUN}' is the run of the stream workers; choose another name`);
  return name;
}

export interface ChosenDetector {
  id: string;
  version: string;
  /** Effective config (defaults filled in). */
  config: unknown;
  config_hash: string;
}

/**
 * `list`: comma-separated detector ids, each optionally `id@version` (the version must be the
 * bundled one); all detectors when absent. `configs`: detector id → config, validated strictly.
 */
export function chooseDetectors(
  list: string | undefined,
  configs: Record<string, unknown> = {},
): ChosenDetector[] {
  const wanted = list
    ? list
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)
    : DETECTORS.map((d) => d.id);
  if (wanted.length === 0) throw new Error("--detectors names no detector");
  const chosen: ChosenDetector[] = [];
  for (const item of wanted) {
    const [id, version] = item.split("@") as [string, string | undefined];
    const d = requireDetector(id);
    if (version !== undefined && version !== d.version) {
      throw new Error(`detector ${id} is at version ${d.version} in this build, not ${version}`);
    }
    if (chosen.some((c) => c.id === id)) throw new Error(`detector ${id} is named twice in --detectors`);
    const check = checkDetectorConfig(d, configs[id] ?? {});
    if (!check.ok) throw new Error(check.reason);
    chosen.push({ id, version: d.version, config: check.config, config_hash: check.hash });
  }
  for (const id of Object.keys(configs)) {
    if (!chosen.some((c) => c.id === id)) {
      requireDetector(id);
      throw new Error(`--config has a config for ${id}, which is not among the run's detectors`);
    }
  }
  return chosen;
}

/** One hash for the whole run: detector ids, versions and effective configs. */
export function runConfigHash(detectors: readonly ChosenDetector[]): string {
  return configHash(
    Object.fromEntries(detectors.map((d) => [d.id, { version: d.version, config: d.config }])),
  );
}

export function configsOf(detectors: readonly ChosenDetector[]): Record<string, unknown> {
  return Object.fromEntries(detectors.map((d) => [d.id, d.config]));
}
