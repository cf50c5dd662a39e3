// The what-if of a proposed settlement (事前提醒/事中审核): the person's retained evidence is replayed
// into a fresh engine with the stream's detectors and config, then the proposed settlement is
// processed; the suspects that this upserts are what ingesting it would produce. Pure: the
// engine is thrown away, so nothing is stored and no state changes.
import type { DeathRecord, Settlement, Severity } from "../../schemas/index.ts";
import { SEVERITIES } from "../../schemas/index.ts";
import { type ActiveDetector, type Change, Engine, type EngineEvent } from "./engine.ts";

/** What the archive holds about one person: settlements (SETTLE and REVERSAL) and death records. */
export interface PersonEvidence {
  settlements: readonly Settlement[];
  deaths: readonly DeathRecord[];
}

export type Decision = "PASS" | Severity;

export interface CheckFinding {
  detector: string;
  rule: string;
  severity: Severity;
  title: string;
  title_zh: string;
  /** The suspect settlement first (usually the proposed one), then the related ones. */
  settlement_ids: string[];
  amount_at_risk_fen: number;
  evidence: Record<string, unknown>;
}

export interface CheckAnswer {
  decision: Decision;
  findings: CheckFinding[];
  /** Event time of the newest retained evidence event; null when the person has none. */
  state_as_of: string | null;
}

export interface CheckOptions {
  detectors: ActiveDetector[];
  retentionDays: number;
  latenessDays?: number;
}

const DAY_MS = 86_400_000;
const eventTime = (e: EngineEvent) => (e.kind === "settlement" ? e.value.settled_at : e.value.reported_at);

export function checkSettlement(
  proposed: Settlement,
  evidence: PersonEvidence,
  o: CheckOptions,
): CheckAnswer {
  // The proposed settlement replaces an archived one of the same id (a re-check of a settlement
  // already ingested); a REVERSAL of that id still cancels it, as it would in the stream.
  const events: EngineEvent[] = [
    ...evidence.settlements
      .filter((s) => !(s.event_type === "SETTLE" && s.settlement_id === proposed.settlement_id))
      .map((value): EngineEvent => ({ kind: "settlement", value })),
    ...evidence.deaths.map((value): EngineEvent => ({ kind: "death", value })),
  ];
  const times = events.map((e) => Date.parse(eventTime(e)));
  const newest = Math.max(Date.parse(proposed.settled_at), ...times);
  // Retention as the stream keeps it: settlements older than this behind the newest event are gone.
  const horizon = newest - o.retentionDays * DAY_MS;
  const retained = events
    .map((e, i) => ({ e, t: times[i] as number }))
    .filter(({ e, t }) => e.kind === "death" || t >= horizon)
    .sort((a, b) => a.t - b.t);

  const engine = new Engine({
    detectors: o.detectors,
    retentionDays: o.retentionDays,
    latenessDays: o.latenessDays,
  });
  for (const { e } of retained) engine.process(e);
  const changes = engine.process({ kind: "settlement", value: proposed });
  return answerOf(changes, o.detectors, retained.at(-1)?.t ?? null);
}

/**
 * The what-if on a live engine that owns the person (embedded mode): its retained state, as the
 * stream holds it, with nothing replayed, stored or changed (Engine.whatIf).
 */
export function checkOnEngine(
  proposed: Settlement,
  engine: Engine,
  detectors: ActiveDetector[],
): CheckAnswer {
  const { changes, stateAsOfMs } = engine.whatIf(proposed);
  return answerOf(changes, detectors, stateAsOfMs);
}

/** The findings the changes upsert, gravest first, and the decision they make. */
function answerOf(changes: Change[], detectors: ActiveDetector[], stateAsOfMs: number | null): CheckAnswer {
  const rules = new Map(detectors.map((a) => [a.detector.id, a.detector.rules]));
  const findings = changes
    .filter((c) => c.op === "upsert")
    .map(({ suspect: s }): CheckFinding => {
      const info = rules.get(s.detector)?.[s.rule];
      return {
        detector: s.detector,
        rule: s.rule,
        severity: s.severity,
        title: info?.title ?? s.rule,
        title_zh: info?.titleZh ?? s.rule,
        settlement_ids: s.settlement_ids,
        amount_at_risk_fen: s.amount_at_risk_fen,
        evidence: s.evidence,
      };
    })
    .sort(
      (a, b) =>
        rank(b.severity) - rank(a.severity) ||
        a.detector.localeCompare(b.detector) ||
        a.rule.localeCompare(b.rule),
    );
  return {
    decision: findings[0]?.severity ?? "PASS",
    findings,
    state_as_of: stateAsOfMs === null ? null : new Date(stateAsOfMs).toISOString(),
  };
}

const rank = (s: Severity) => SEVERITIES.indexOf(s);
