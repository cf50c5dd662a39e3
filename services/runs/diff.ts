// `fundguard runs diff A B`: per detector, the findings (by suspect_id) only in A ("removed"),
// only in B ("added") and in both ("unchanged"; of which "changed" differ in content: rule,
// severity, related settlements, amount or evidence). One FINAL scan over both runs, in ClickHouse.
import { formatTable } from "../dynamic-config/commands.ts";
import { FINAL_SETTINGS } from "../store/final.ts";
import type { Store } from "../store/index.ts";

export interface DiffExample {
  suspect_id: string;
  rule: string;
  person_id: string;
  settlement_id: string;
}

export interface DetectorDiff {
  detector: string;
  /** Whether the run executed the detector (null: unknown, the run has no row, e.g. `live`). */
  in_a: boolean | null;
  in_b: boolean | null;
  a: number;
  b: number;
  added: number;
  removed: number;
  unchanged: number;
  changed: number;
  examples: { added: DiffExample[]; removed: DiffExample[]; changed: DiffExample[] };
}

export interface RunDiff {
  a: string;
  b: string;
  detectors: DetectorDiff[];
  totals: { a: number; b: number; added: number; removed: number; unchanged: number; changed: number };
}

type ExampleTuple = [string, string, string, string];

interface DiffRow {
  detector: string;
  a: string | number;
  b: string | number;
  added: string | number;
  removed: string | number;
  unchanged: string | number;
  changed: string | number;
  added_examples: ExampleTuple[] | DiffExample[];
  removed_examples: ExampleTuple[] | DiffExample[];
  changed_examples: ExampleTuple[] | DiffExample[];
}

const example = (t: ExampleTuple | DiffExample): DiffExample =>
  Array.isArray(t) ? { suspect_id: t[0], rule: t[1], person_id: t[2], settlement_id: t[3] } : t;

/** `detectors`: the detector ids each run executed, when known (from its runs row). */
export async function diffRuns(
  store: Store,
  a: string,
  b: string,
  examples = 3,
  detectors: { a?: readonly string[]; b?: readonly string[] } = {},
): Promise<RunDiff> {
  const limit = Math.max(1, Math.min(1000, Math.trunc(examples)));
  const rows = await store.query<DiffRow>(
    `SELECT detector,
            countIf(sides != 2) AS a,
            countIf(sides != 1) AS b,
            countIf(sides = 2) AS added,
            countIf(sides = 1) AS removed,
            countIf(sides = 3) AS unchanged,
            countIf(sides = 3 AND hashes > 1) AS changed,
            groupArrayIf(${limit})(ex, sides = 2) AS added_examples,
            groupArrayIf(${limit})(ex, sides = 1) AS removed_examples,
            groupArrayIf(${limit})(ex, sides = 3 AND hashes > 1) AS changed_examples
     FROM (
       SELECT detector, suspect_id,
              groupBitOr(side) AS sides,
              uniqExact(content) AS hashes,
              CAST(any(tuple(suspect_id, rule, person_id, first)), 'Tuple(suspect_id String, rule String, person_id String, settlement_id String)') AS ex
       FROM (
         SELECT detector, suspect_id, rule, person_id, settlement_ids[1] AS first,
                if(run_id = {a:String}, 1, 2) AS side,
                cityHash64(rule, severity, settlement_ids, amount_at_risk_fen, evidence) AS content
         FROM suspects FINAL
         WHERE run_id IN ({a:String}, {b:String}) AND status = 'active'
       )
       GROUP BY detector, suspect_id
     )
     GROUP BY detector
     ORDER BY detector
     ${FINAL_SETTINGS}`,
    { a, b },
  );
  const membership = (list: readonly string[] | undefined, id: string) => (list ? list.includes(id) : null);
  const found = rows.map(
    (r): DetectorDiff => ({
      detector: r.detector,
      in_a: membership(detectors.a, r.detector),
      in_b: membership(detectors.b, r.detector),
      a: Number(r.a),
      b: Number(r.b),
      added: Number(r.added),
      removed: Number(r.removed),
      unchanged: Number(r.unchanged),
      changed: Number(r.changed),
      examples: {
        added: r.added_examples.map(example),
        removed: r.removed_examples.map(example),
        changed: r.changed_examples.map(example),
      },
    }),
  );
  // Detectors a run executed without finding anything still get a line.
  for (const id of new Set([...(detectors.a ?? []), ...(detectors.b ?? [])])) {
    if (found.some((d) => d.detector === id)) continue;
    found.push({
      detector: id,
      in_a: membership(detectors.a, id),
      in_b: membership(detectors.b, id),
      a: 0,
      b: 0,
      added: 0,
      removed: 0,
      unchanged: 0,
      changed: 0,
      examples: { added: [], removed: [], changed: [] },
    });
  }
  found.sort((x, y) => (x.detector < y.detector ? -1 : x.detector > y.detector ? 1 : 0));
  const sum = (f: (d: DetectorDiff) => number) => found.reduce((n, d) => n + f(d), 0);
  return {
    a,
    b,
    detectors: found,
    totals: {
      a: sum((d) => d.a),
      b: sum((d) => d.b),
      added: sum((d) => d.added),
      removed: sum((d) => d.removed),
      unchanged: sum((d) => d.unchanged),
      changed: sum((d) => d.changed),
    },
  };
}

export function formatDiff(d: RunDiff): string {
  const n = (x: number) => x.toLocaleString("en-US");
  const rows = d.detectors.map((x) => [
    x.detector,
    x.in_a === false ? "not run" : n(x.a),
    x.in_b === false ? "not run" : n(x.b),
    n(x.added),
    n(x.removed),
    n(x.unchanged),
    n(x.changed),
  ]);
  rows.push([
    "total",
    n(d.totals.a),
    n(d.totals.b),
    n(d.totals.added),
    n(d.totals.removed),
    n(d.totals.unchanged),
    n(d.totals.changed),
  ]);
  let out = `runs diff ${d.a} → ${d.b} (active suspects by suspect_id; changed = in both, content differs)\n`;
  out += formatTable(
    ["detector", d.a, d.b, "added", "removed", "unchanged", "changed"],
    rows,
    new Set([1, 2, 3, 4, 5, 6]),
  );
  const lines: string[] = [];
  for (const x of d.detectors) {
    for (const kind of ["added", "removed", "changed"] as const) {
      for (const e of x.examples[kind]) {
        lines.push(
          `  ${kind.padEnd(7)} ${x.detector}/${e.rule} ${e.suspect_id} person ${e.person_id} settlement ${e.settlement_id}`,
        );
      }
    }
  }
  if (lines.length > 0) out += `examples:\n${lines.join("\n")}\n`;
  return out;
}
