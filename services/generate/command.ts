// `fundguard generate`: the CLI face of generate(), with a progress bar on stderr.
import cliProgress from "cli-progress";
import { type GenerateOptions, type GenerateSummary, generate } from "./generate.ts";

export interface GenerateCommandOptions extends Omit<GenerateOptions, "onProgress"> {
  quiet?: boolean;
}

export function formatGenerateSummary(s: GenerateSummary): string {
  const n = (x: number) => x.toLocaleString("en-US");
  const lines = [
    `fundguard generate: ${n(s.events)} settlement events in ${s.seconds.toFixed(2)} s (${n(Math.round(s.settlementsPerSecond))} events/s), seed ${s.seed}`,
    `  ${s.files.settlements}, ${s.files.deaths}, ${s.files.labels} (${(s.bytes / 1e6).toFixed(1)} MB)`,
    `  persons ${n(s.persons)}, settlements ${n(s.settlements)} (stays ${n(s.stays)}), reversals ${n(s.reversals)}, resubmissions ${n(s.resubmissions)}`,
    `  death records ${n(s.deathRecords)} (in-hospital deaths ${n(s.inHospitalDeaths)}), written late ${n(s.lateWritten)}, reversal before its settlement ${n(s.reversalsBeforeSettlement)}`,
    `  event time ${s.firstEventAt} .. ${s.lastEventAt} (${s.spanDays.toFixed(1)} days)`,
    `  schemes ${Object.entries(s.schemes)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}; reversed ${s.retractedSchemes}, resubmitted ${s.resubmittedSchemes}`,
    `  labels ${n(s.labels)}`,
    ...Object.entries(s.labelsByRule)
      .sort()
      .map(([rule, count]) => `    ${rule.padEnd(44)} ${n(count).padStart(9)}`),
  ];
  return `${lines.join("\n")}\n`;
}

export async function generateCommand(o: GenerateCommandOptions): Promise<GenerateSummary> {
  const { quiet, ...options } = o;
  const bar =
    !quiet && process.stderr.isTTY
      ? new cliProgress.SingleBar(
          {
            stream: process.stderr,
            format: "generate [{bar}] {percentage}% | {value}/{total} events | {day} | ETA {eta_formatted}",
            hideCursor: true,
            etaBuffer: 50,
          },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
  bar?.start(options.settlements ?? 100_000, 0, { day: options.start ?? "" });
  try {
    const summary = await generate({
      ...options,
      onProgress: (p) => bar?.update(Math.min(p.events, p.target), { day: p.day }),
    });
    bar?.update(summary.events);
    bar?.stop();
    if (!quiet) process.stderr.write(formatGenerateSummary(summary));
    return summary;
  } catch (e) {
    bar?.stop();
    throw e;
  }
}
