// POST /api/v1/check: what a proposed settlement would trigger, for a HIS before it pays (事前提醒,
// 事中审核). Where this process holds the engines (embedded mode) the owning engine answers from its
// state (Engine.whatIf); elsewhere the person's evidence is read from the archive (every mode archives
// every event it processes), so a settlement archived a second ago counts. Evaluation: engine/check.ts.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest, RawServerDefault } from "fastify";
import {
  type DeathRecord,
  fieldLimits,
  type Settlement,
  settlementValidatorFor,
} from "../../schemas/index.ts";
import type { Limits } from "../../schemas/limits.ts";
import { type CheckAnswer, checkSettlement, type PersonEvidence } from "../engine/check.ts";
import type { ActiveDetector } from "../engine/engine.ts";
import type { Store } from "../store/index.ts";
import {
  type DeathReadRow,
  deathFromRow,
  SETTLEMENT_COLUMNS,
  type SettlementReadRow,
  settlementFromRow,
} from "../store/rows.ts";

interface Waiting {
  resolve: (e: PersonEvidence) => void;
  reject: (err: unknown) => void;
}

/**
 * Persons' archived settlements (SETTLE and REVERSAL) and every death record of theirs (the
 * engine picks the one that holds). Reads that arrive while a query runs are answered together
 * by the next one (as the audit log's group commit), so a busy API costs one query per round,
 * not one per check: per-query overhead, not the rows, is what a point read costs in chdb.
 * Rows are read without FINAL: the engine recognises a re-delivered event by its id.
 */
export class ArchiveEvidence {
  private waiting = new Map<string, Waiting[]>();
  private running: Promise<void> | null = null;

  constructor(private readonly store: Store) {}

  of(personId: string): Promise<PersonEvidence> {
    return new Promise((resolve, reject) => {
      const list = this.waiting.get(personId);
      if (list) list.push({ resolve, reject });
      else this.waiting.set(personId, [{ resolve, reject }]);
      this.running ??= this.drain();
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.waiting.size > 0) {
        const batch = this.waiting;
        this.waiting = new Map();
        try {
          const found = await this.read([...batch.keys()]);
          for (const [person, list] of batch) {
            const e = found.get(person) ?? { settlements: [], deaths: [] };
            for (const w of list) w.resolve(e);
          }
        } catch (err) {
          for (const list of batch.values()) for (const w of list) w.reject(err);
        }
      }
    } finally {
      this.running = null;
    }
  }

  private async read(
    persons: string[],
  ): Promise<Map<string, { settlements: Settlement[]; deaths: DeathRecord[] }>> {
    const [settlements, deaths] = await Promise.all([
      this.store.query<SettlementReadRow>(
        `SELECT ${SETTLEMENT_COLUMNS} FROM settlements WHERE person_id IN {persons:Array(String)}`,
        { persons },
      ),
      this.store.query<DeathReadRow>(
        "SELECT person_id, death_date, source, reported_at_iso FROM deaths WHERE person_id IN {persons:Array(String)}",
        { persons },
      ),
    ]);
    const out = new Map<string, { settlements: Settlement[]; deaths: DeathRecord[] }>();
    const of = (p: string) => {
      const e = out.get(p) ?? { settlements: [], deaths: [] };
      out.set(p, e);
      return e;
    };
    for (const r of settlements) of(r.person_id).settlements.push(settlementFromRow(r));
    for (const r of deaths) of(r.person_id).deaths.push(deathFromRow(r));
    return out;
  }
}

export interface Issue {
  path: string;
  message: string;
}

/**
 * The body's settlement, or what is wrong with it. `total_fen` and `fund_paid_fen` may be absent
 * (a prescription still being written): the total is then the sum of the lines, all of it paid by
 * the fund, so the person's out-of-pocket spending is not raised by a figure nobody knows yet.
 */
function proposedSettlement(
  body: unknown,
  validator: ReturnType<typeof settlementValidatorFor>,
): { settlement: Settlement } | { issues: Issue[] } {
  const raw = (body as { settlement?: unknown } | null)?.settlement;
  if (raw === null || typeof raw !== "object" || Array.isArray(raw))
    return {
      issues: [{ path: "settlement", message: 'expected {"settlement": {...}}, a settlement object' }],
    };
  const s = { ...(raw as Record<string, unknown>) };
  if (s.total_fen === undefined && Array.isArray(s.items))
    s.total_fen = s.items.reduce(
      (n: number, i) => n + (Number((i as { amount_fen?: unknown })?.amount_fen) || 0),
      0,
    );
  if (s.fund_paid_fen === undefined) s.fund_paid_fen = s.total_fen;
  const r = validator.safeParse(s);
  if (!r.success)
    return {
      issues: r.error.issues
        .slice(0, 20)
        .map((i) => ({ path: ["settlement", ...i.path].join("."), message: i.message })),
    };
  if (r.data.event_type !== "SETTLE")
    return { issues: [{ path: "settlement.event_type", message: "a check takes a SETTLE, not a REVERSAL" }] };
  return { settlement: r.data };
}

export interface CheckRouteOptions {
  store: Store;
  /** The stream's detectors with their current config (updated in place as the config topic changes). */
  detectors: ActiveDetector[];
  retentionDays: number;
  latenessDays: number | undefined;
  /** The live engine's what-if, where this process holds the engines: no archive read. */
  onEngine?: (s: Settlement) => Promise<CheckAnswer>;
  limits: Limits;
  authorize(req: FastifyRequest): void;
  audited(req: FastifyRequest, filters: Record<string, unknown>, rows: number): void;
  fail(status: number, code: string, message: string, extra?: Record<string, unknown>): Error;
}

export function registerCheckRoute<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, L>,
  o: CheckRouteOptions,
): void {
  const archive = new ArchiveEvidence(o.store);
  const fromArchive = async (s: Settlement, req: FastifyRequest) => {
    const evidence = await archive.of(s.person_id).catch((err: unknown) => {
      req.log.error({ err }, "check: the archive cannot be read");
      throw o.fail(503, "store_unavailable", "the person's evidence cannot be read now; retry later");
    });
    return checkSettlement(s, evidence, {
      detectors: o.detectors,
      retentionDays: o.retentionDays,
      latenessDays: o.latenessDays,
    });
  };
  // Built once: a zod schema costs more to build than to run.
  const validator = settlementValidatorFor(fieldLimits("settlement", o.limits));
  // Room for one settlement at the message limit, and the object around it.
  app.post(
    "/api/v1/check",
    { bodyLimit: o.limits.maxMessageBytes + 1024 },
    async (req): Promise<CheckAnswer> => {
      o.authorize(req);
      const p = proposedSettlement(req.body, validator);
      if ("issues" in p) throw o.fail(400, "bad_request", "invalid settlement", { issues: p.issues });
      const s = p.settlement;
      const answer = await (o.onEngine ? o.onEngine(s) : fromArchive(s, req));
      o.audited(
        req,
        {
          person: s.person_id,
          settlement_id: s.settlement_id,
          institution_id: s.institution_id,
          decision: answer.decision,
          rules: answer.findings.map((f) => `${f.detector}/${f.rule}`),
        },
        answer.findings.length,
      );
      return answer;
    },
  );
}
