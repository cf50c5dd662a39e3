// `start` on a store that already holds data: the engines' state is rebuilt from the archive
// (the settlements within retention of the newest one, every death record), or, resumed from
// their local stores, brought up to date with what was archived after their last commit, so
// /ingest and the live trickle are judged against each person's history as before the restart.
// Replayed in event-time order (events the stores hold already are recognised by id and ignored); the engine's findings do not depend on the order (order-independence test).
import type { EngineEvent } from "../engine/engine.ts";
import { mergeByTime } from "../ingest/ndjson-source.ts";
import type { Store } from "../store/index.ts";
import {
  type DeathReadRow,
  deathFromRow,
  SETTLEMENT_COLUMNS,
  type SettlementReadRow,
  settlementFromRow,
} from "../store/rows.ts";
import type { EmbeddedPipeline } from "./pipeline.ts";

type Timed = { event: EngineEvent; timeMs: number };

async function* timed<R>(rows: AsyncIterable<R>, toEvent: (r: R) => EngineEvent): AsyncGenerator<Timed[]> {
  for await (const r of rows) {
    const event = toEvent(r);
    const t = event.kind === "settlement" ? event.value.settled_at : event.value.reported_at;
    yield [{ event, timeMs: Date.parse(t) }];
  }
}

/** Events handed to the engines at a time. */
const RESTORE_BATCH = 5_000;

/**
 * Replays the archive into the pipeline's engines: everything within retention, or (engines
 * resumed from their stores) what was archived since `sinceMs`; returns the events replayed.
 */
export async function restoreFromArchive(
  store: Store,
  pipeline: EmbeddedPipeline,
  sinceMs?: number,
): Promise<number> {
  const since = sinceMs === undefined ? "" : "AND ingested_at >= fromUnixTimestamp64Milli({since:Int64})";
  const settlements = store.stream<SettlementReadRow>(
    `SELECT ${SETTLEMENT_COLUMNS} FROM settlements FINAL
     WHERE settled_at >= (SELECT max(settled_at) FROM settlements) - toIntervalDay({days:UInt32}) ${since}
     ORDER BY settled_at, settlement_id`,
    { days: pipeline.retentionDays, since: sinceMs ?? 0 },
  );
  const deaths = store.stream<DeathReadRow>(
    `SELECT person_id, death_date, source, reported_at_iso FROM deaths FINAL
     WHERE 1 ${since} ORDER BY reported_at`,
    { since: sinceMs ?? 0 },
  );
  let n = 0;
  let batch: EngineEvent[] = [];
  for await (const { event } of mergeByTime(
    timed(settlements, (r): EngineEvent => ({ kind: "settlement", value: settlementFromRow(r) })),
    timed(deaths, (r): EngineEvent => ({ kind: "death", value: deathFromRow(r) })),
  )) {
    batch.push(event);
    n++;
    if (batch.length < RESTORE_BATCH) continue;
    await pipeline.restore(batch);
    batch = [];
  }
  await pipeline.restore(batch);
  return n;
}
