// The comparison: each stream figure as settlements/s and as a ratio to the nightly batch job
// (load the NDJSON into ClickHouse, then the five rules) and to the rules alone over the archive.
export interface RatioInputs {
  settlements: number;
  batchJobSeconds: number;
  rulesOnlySeconds: number;
  /** Wall seconds per stream figure over the same `settlements`; absent when its section did not run. */
  stream: Partial<Record<"detect" | "replay" | "worker", number>>;
}

export function ratios(inp: RatioInputs) {
  const rate = (seconds: number) => inp.settlements / seconds;
  const batchJob = rate(inp.batchJobSeconds);
  const rulesOnly = rate(inp.rulesOnlySeconds);
  const stream = Object.fromEntries(
    Object.entries(inp.stream).map(([name, seconds]) => {
      const r = rate(seconds as number);
      return [name, { settlementsPerSecond: r, toBatchJob: r / batchJob, toRulesOnly: r / rulesOnly }];
    }),
  );
  const worker = stream.worker?.toBatchJob;
  return {
    settlements: inp.settlements,
    batchJob: {
      seconds: inp.batchJobSeconds,
      settlementsPerSecond: batchJob,
      is: "load the NDJSON + the five rules",
    },
    rulesOnly: {
      seconds: inp.rulesOnlySeconds,
      settlementsPerSecond: rulesOnly,
      is: "the five rules over the archive",
    },
    ...stream,
    milestone: { worker: "≥ 0.4× the batch job", met: worker === undefined ? null : worker >= 0.4 },
    goal: { worker: "≥ 1.0× the batch job", met: worker === undefined ? null : worker >= 1.0 },
  };
}
