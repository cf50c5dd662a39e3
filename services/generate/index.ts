// Programmatic API of the synthetic stream generator (tests, `npm start`, benchmarks).
export { formatGenerateSummary, type GenerateCommandOptions, generateCommand } from "./command.ts";
export {
  DEFAULTS,
  type GenerateEmitter,
  type GenerateOptions,
  type GenerateProgress,
  type GenerateSummary,
  generate,
} from "./generate.ts";
export type { Label } from "./world.ts";
