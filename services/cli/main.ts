// The one executable, `fundguard`: each subcommand lives in its own module.
import { Command, InvalidArgumentError } from "commander";
import { detectCommand } from "./detect.ts";
import { registerKafkaCommands } from "./kafka-commands.ts";
import { registerStoreCommands } from "./store-commands.ts";

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError("expected a positive whole number");
  return n;
}

const program = new Command()
  .name("fundguard")
  .description("Event-driven fraud detection for medical-insurance funds (医保基金监管)")
  .showHelpAfterError();

program
  .command("detect")
  .description("run every detector over NDJSON files; write final suspects as NDJSON")
  .requiredOption("--settlements <file>", "settlement events, NDJSON (.gz accepted)")
  .option("--deaths <file>", "death records, NDJSON (.gz accepted)")
  .option("--out <file>", "write suspects here instead of stdout")
  .option("--reference <dir>", "folder with pediatric-drugs.csv and sex-restricted-codes.csv")
  .option("--retention-days <n>", "event-time span of retained state", positiveInt, 400)
  .action((o) =>
    detectCommand({
      settlements: o.settlements,
      deaths: o.deaths,
      out: o.out,
      reference: o.reference,
      retentionDays: o.retentionDays,
    }),
  );

registerKafkaCommands(program);
registerStoreCommands(program);

try {
  await program.parseAsync();
} catch (e) {
  process.stderr.write(`fundguard: ${(e as Error).message}\n`);
  process.exitCode = 2;
}
