// `fundguard runs list|diff|drop`: named runs of detectors in ClickHouse (see `replay --run`).
import type { Command } from "commander";
import { loadEnv } from "../config/env.ts";
import { formatTable } from "../dynamic-config/commands.ts";
import type { RunRecord } from "../runs/table.ts";
import { openStore } from "../store/index.ts";
import { auditCli } from "./audit.ts";

const print = (v: unknown) => process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);

function formatRuns(runs: readonly RunRecord[]): string {
  if (runs.length === 0) return "no runs\n";
  const src = (r: RunRecord) =>
    r.source.kind === "files"
      ? `files ${r.source.settlements.split("/").pop()}${r.source.deaths ? ` + ${r.source.deaths.split("/").pop()}` : ""}`
      : r.source.kind === "topics"
        ? `topics ${r.source.from} → ${r.source.to}`
        : "stream";
  const rows = runs.map((r) => [
    r.name,
    r.status,
    src(r),
    r.detectors.length === 0 ? "" : r.detectors.map((d) => `${d.id}@${d.version}`).join(","),
    r.config_hash,
    r.started_at,
    r.finished_at ?? "",
    r.events.toLocaleString("en-US"),
    r.suspects.toLocaleString("en-US"),
  ]);
  return formatTable(
    ["name", "status", "source", "detectors", "config_hash", "started", "finished", "events", "suspects"],
    rows,
    new Set([7, 8]),
  );
}

export function registerRunsCommands(program: Command): void {
  const runs = program
    .command("runs")
    .description("named runs of detectors (made by replay --run) in ClickHouse");

  runs
    .command("list")
    .description("every run with its source, detectors, config hash, times, counts and status")
    .option("--json", "JSON instead of a table")
    .action(async (o: { json?: boolean }) => {
      const { listRuns, runIdsWithoutRow, suspectCounts } = await import("../runs/table.ts");
      const { runHolder } = await import("../runs/checkpoint.ts");
      const env = loadEnv();
      const store = await openStore();
      try {
        const list = await listRuns(store);
        // A run whose process died (kill -9, power loss) never wrote its final status.
        for (const r of list) {
          if (r.status === "running" && runHolder(env.FUNDGUARD_DATA_DIR, r.name) === undefined) {
            r.status = "interrupted";
          }
        }
        // The live stream (and anything else writing suspects) has no row: show it from its suspects.
        for (const id of await runIdsWithoutRow(store)) {
          const byDetector = await suspectCounts(store, id);
          list.push({
            name: id,
            source: { kind: "stream" },
            detectors: [],
            config_hash: "",
            status: "running",
            started_at: "",
            finished_at: null,
            events: 0,
            bad_events: 0,
            suspects: Object.values(byDetector).reduce((a, b) => a + b, 0),
            suspects_by_detector: byDetector,
            error: "",
          } as unknown as RunRecord);
        }
        if (o.json) print(list);
        else process.stdout.write(formatRuns(list));
      } finally {
        await store.close();
      }
    });

  runs
    .command("diff <a> <b>")
    .description(
      "per detector: suspects added in B, removed from A, unchanged (by suspect_id), with examples",
    )
    .option("--json", "JSON instead of a table")
    .option("--examples <n>", "examples per detector and kind", Number, 3)
    .action(async (a: string, b: string, o: { json?: boolean; examples: number }) => {
      const { diffRuns, formatDiff } = await import("../runs/diff.ts");
      const { getRun, suspectCounts } = await import("../runs/table.ts");
      const store = await openStore();
      try {
        const ran: (string[] | undefined)[] = [];
        for (const name of [a, b]) {
          const run = await getRun(store, name);
          if (!run && Object.keys(await suspectCounts(store, name)).length === 0) {
            throw new Error(`no run named ${name} (see fundguard runs list)`);
          }
          ran.push(run?.detectors.map((x) => x.id));
        }
        const d = await diffRuns(store, a, b, o.examples, { a: ran[0], b: ran[1] });
        if (o.json) print(d);
        else process.stdout.write(formatDiff(d));
      } finally {
        await store.close();
      }
    });

  runs
    .command("drop <name>")
    .description("delete a run's suspects, its row and its checkpoint")
    .option("--force", "also drop 'live' (the stream's suspects) or a run still marked running")
    .action(async (name: string, o: { force?: boolean }) => {
      const { dropRun, getRun, LIVE_RUN } = await import("../runs/table.ts");
      const { removeCheckpoint, runHolder } = await import("../runs/checkpoint.ts");
      const env = loadEnv();
      if (name === LIVE_RUN && !o.force)
        throw new Error("'live' holds the stream's suspects; add --force to drop it");
      const pid = runHolder(env.FUNDGUARD_DATA_DIR, name);
      if (pid !== undefined && !o.force) {
        throw new Error(`run ${name} is being executed by process ${pid}; stop it first (or --force)`);
      }
      const store = await openStore();
      try {
        await auditCli({ command: "runs drop", details: { run: name, force: o.force === true } }, store);
        const run = await getRun(store, name);
        const rows = await dropRun(store, name);
        await removeCheckpoint(env.FUNDGUARD_DATA_DIR, name);
        if (!run && rows === 0) throw new Error(`no run named ${name}`);
        process.stderr.write(`run ${name} dropped (${rows} suspect rows deleted)\n`);
      } finally {
        await store.close();
      }
    });
}
