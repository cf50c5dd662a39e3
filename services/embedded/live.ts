// The live trickle of `fundguard start`: after the sample, generated settlements keep arriving
// at a steady rate through the same in-process log as /ingest, so suspects keep appearing. The
// project's generator makes the stream, one short epoch at a time, each continuing the last:
// its persons and ids are new (idsAfter), its service days start where the last epoch's began
// plus its length, so event time moves forward (60 days per epoch, about 10 minutes at any rate
// up to 83/s) and the engines' watermark and retention behave as for any later data: each
// epoch's late events (reversals, death reports) interleave with the next one's, as late data
// does. Injected schemes keep producing suspects.
import type { Limits } from "../../schemas/limits.ts";
import { type GenerateSummary, generate } from "../generate/generate.ts";
import type { IdCounters } from "../generate/world.ts";
import { mergeByTime, parseEventLine, type SourcedEvent } from "../ingest/ndjson-source.ts";
import { validators } from "../ingest/validate.ts";
import type { Store } from "../store/index.ts";
import { EMBEDDED_GROUP, type EmbeddedPipeline } from "./pipeline.ts";

/** Where a stream continuing the archive begins: its first service day and the ids already used. */
export interface LiveOrigin {
  day: string;
  ids: IdCounters;
}

/**
 * Service days per generated epoch: under about 60 the generator cannot place the schemes that
 * span weeks (readmissions, deaths and the activity after them), and fewer kinds of suspect appear.
 */
export const EPOCH_DAYS = 60;
/**
 * An epoch lasts about this long at the configured rate, within [1,000, 50,000] settlements (the
 * generator runs on the event loop: a bigger epoch would hold up the API while it is made).
 */
const EPOCH_SECONDS = 600;
const EPOCH_SETTLEMENTS = [1_000, 50_000] as const;
/** More scheme persons than the sample's 2 %: a live epoch is short, and suspects should keep coming. */
const LIVE_SCHEME_RATE = 0.1;
const TICK_MS = 250;
/** Publishing pauses while the pipeline is this many seconds of the rate behind. */
const MAX_LAG_SECONDS = 5;
const DAY_MS = 86_400_000;
const CST_MS = 8 * 3_600_000;

/**
 * The day after the archive's newest event time (CST), and the largest person number and
 * settlement / visit sequence numbers in it in the generator's id formats: a stream continuing
 * from there repeats no id, whatever earlier sample or trickle left the archive as it is.
 */
export async function liveOrigin(store: Store, firstDay: string): Promise<LiveOrigin> {
  const [r] = await store.query<Record<"n" | "newest" | "persons" | "settlements" | "visits", string>>(
    `SELECT toString(count()) AS n,
       toString(toUnixTimestamp64Milli(max(settled_at))) AS newest,
       toString(maxIf(toUInt64OrZero(substring(person_id, 2)), match(person_id, '^P[0-9]{10,}$'))) AS persons,
       toString(maxIf(toUInt64OrZero(substring(settlement_id, 17)), match(settlement_id, '^JS[0-9]{15,}$'))) AS settlements,
       toString(maxIf(toUInt64OrZero(substring(visit_id, 14)), match(visit_id, '^(ZY|MZ|GY)[0-9]{12,}$'))) AS visits
     FROM settlements`,
  );
  const ids = {
    persons: Number(r?.persons ?? 0),
    settlements: Number(r?.settlements ?? 0),
    visits: Number(r?.visits ?? 0),
  };
  if (!r || Number(r.n) === 0) return { day: firstDay, ids };
  const next = Math.floor((Number(r.newest) + CST_MS) / DAY_MS) + 1;
  return { day: new Date(next * DAY_MS).toISOString().slice(0, 10), ids };
}

export interface LiveOptions {
  /** Settlement lines (SETTLE and REVERSAL) per second; death records come along with them. */
  rate: number;
  origin: LiveOrigin;
  limits: Limits;
  reference?: string;
  /** Told of a failed epoch or drain; the trickle carries on (a drain retries what it could not store). */
  onError: (err: unknown) => void;
}

export class LiveTrickle {
  private queue: SourcedEvent[] = [];
  private next = 0;
  private origin: LiveOrigin;
  private timer: NodeJS.Timeout | undefined;
  private startedMs = 0;
  /** Settlements the rate allowed up to now that were published (or skipped while behind). */
  private sent = 0;
  private generating: Promise<void> | undefined;
  private draining: Promise<void> = Promise.resolve();
  private readonly validators: ReturnType<typeof validators>;
  readonly stats = { epochs: 0, settlements: 0, deaths: 0 };

  constructor(
    private readonly pipeline: EmbeddedPipeline,
    private readonly o: LiveOptions,
  ) {
    if (!(o.rate > 0))
      throw new Error("the live rate must be positive (0 means no trickle: do not start one)");
    this.origin = o.origin;
    this.validators = validators(o.limits);
  }

  start(): void {
    this.startedMs = performance.now();
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.generating;
    await this.draining;
  }

  private tick(): void {
    const due = Math.floor(((performance.now() - this.startedMs) / 1000) * this.o.rate) - this.sent;
    if (due <= 0) return;
    // Behind: the rate's share of this tick is dropped rather than piled up in memory.
    if (this.pipeline.log.lag(EMBEDDED_GROUP) > this.o.rate * MAX_LAG_SECONDS) {
      this.sent += due;
      return;
    }
    let settlements = 0;
    while (settlements < due) {
      const e = this.queue[this.next];
      if (!e) {
        this.generating ??= this.nextEpoch()
          .catch(this.o.onError)
          .finally(() => {
            this.generating = undefined;
          });
        break;
      }
      this.next++;
      this.pipeline.publish(e.event, e.text);
      if (e.event.kind === "settlement") settlements++;
      else this.stats.deaths++;
    }
    this.sent += settlements;
    this.stats.settlements += settlements;
    if (this.queue[this.next] === undefined && this.next > 0) {
      this.queue = [];
      this.next = 0;
    }
    if (settlements > 0) this.draining = this.pipeline.process().catch(this.o.onError);
  }

  /** Generates the next epoch into the queue, in the contract's merge order of its two streams. */
  private async nextEpoch(): Promise<void> {
    const lines = { settlement: [] as string[], death: [] as string[] };
    const summary: GenerateSummary = await generate({
      emit: {
        settlement: (l) => lines.settlement.push(l),
        death: (l) => lines.death.push(l),
        label: () => undefined,
      },
      settlements: Math.min(
        EPOCH_SETTLEMENTS[1],
        Math.max(EPOCH_SETTLEMENTS[0], Math.round(this.o.rate * EPOCH_SECONDS)),
      ),
      days: EPOCH_DAYS,
      start: this.origin.day,
      seed: `live:${this.origin.day}`,
      schemeRate: LIVE_SCHEME_RATE,
      idsAfter: this.origin.ids,
      ...(this.o.reference ? { reference: this.o.reference } : {}),
    });
    const parsed = (kind: SourcedEvent["event"]["kind"], list: string[]) => {
      const out: SourcedEvent[] = [];
      list.forEach((text, i) => {
        const p = parseEventLine(kind, text, this.validators);
        // The generator writes the contract's records; one that is not is a bug worth hearing of.
        if (!p?.ok) throw new Error(`the generator wrote an invalid ${kind} (line ${i + 1}): ${p?.reason}`);
        const v = p.value;
        const timeMs = Date.parse(v.kind === "settlement" ? v.value.settled_at : v.value.reported_at);
        out.push({ event: v, timeMs, file: `live ${this.origin.day}`, line: i + 1, text });
      });
      return out;
    };
    const once = async function* (x: SourcedEvent[]) {
      yield x;
    };
    const merged: SourcedEvent[] = [];
    for await (const e of mergeByTime(
      once(parsed("settlement", lines.settlement)),
      once(parsed("death", lines.death)),
    ))
      merged.push(e);
    this.queue = this.queue.slice(this.next).concat(merged);
    this.next = 0;
    const day = Date.parse(`${this.origin.day}T00:00:00Z`) / DAY_MS + EPOCH_DAYS;
    this.origin = { day: new Date(day * DAY_MS).toISOString().slice(0, 10), ids: summary.ids };
    this.stats.epochs++;
  }
}
