import type { Command } from "commander";
export function registerRunsCommands(_program: Command): void {}
