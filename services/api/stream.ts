// GET /api/v1/stream: server-sent events of suspects as they are stored, for the UI's "N new
// suspects" notice and its moving chart counts. One feed per server reads the suspect rows
// written since the last version it saw (both modes: the embedded pipeline also wakes it after
// each stored round; `serve` polls ClickHouse every FUNDGUARD_STREAM_POLL_MS). Each connection
// sees what the list would show its user: rows of its run and regions only, person ids masked
// unless the user may see them, which of them match its filters decided by the list's own SQL,
// and the filters' current count. Audited as an export is: a row when it opens, one when it ends.
import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest, RawServerDefault } from "fastify";
import type { Logger } from "../log.ts";
import type { User } from "./auth.ts";
import { countQuery, describeFilters } from "./filters.ts";
import type { ApiQueries, StoredSuspectRow, SuspectListRow } from "./queries.ts";

/**
 * Versions are wall-clock microseconds from several writers (workers, the embedded pipeline), and
 * a batch becomes visible when its insert ends: each read looks this far behind the newest version
 * seen, and rows already delivered are recognised by id and version.
 */
const OVERLAP_US = 10_000_000n;
/** Rows read per poll; more wait for the next one. */
const READ_LIMIT = 5_000;
/** A wake-up is served at most this often; polls in between are folded into one. */
const MIN_GAP_MS = 200;
/** Rows waiting for a slow connection; beyond, the oldest are dropped (and counted). */
const INBOX_LIMIT = 2_000;
const HEARTBEAT_MS = 15_000;

type Listener = (rows: readonly StoredSuspectRow[]) => void;

export class SuspectFeed {
  private readonly listeners = new Set<Listener>();
  /** The newest version when the first listener came: rows at or below it are not news. */
  private floor: bigint | undefined;
  /** The read of `floor` under way (none once it is known, or after it failed: the next poll retries). */
  private floorRead: Promise<void> | undefined;
  /** The newest version delivered. */
  private after = 0n;
  /** After a full read, the next one starts at its last row (no overlap) until it catches up. */
  private catchUp: bigint | undefined;
  /** `id@version` of the rows delivered whose version is still inside the overlap. */
  private readonly delivered = new Map<string, bigint>();
  private timer: NodeJS.Timeout | undefined;
  private soon: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  /** A wake-up came while a poll ran: poll again after it. */
  private again = false;
  private lastPollMs = 0;

  constructor(
    private readonly q: ApiQueries,
    private readonly pollMs: number,
    private readonly log: Logger,
  ) {}

  /**
   * Starts polling with the first listener; stops (and forgets where it was) with the last.
   * `ready` resolves once the feed knows where news starts: what is stored after it reaches `fn`,
   * so a count read after it misses nothing that `fn` will not hear of.
   */
  subscribe(fn: Listener): { unsubscribe: () => void; ready: Promise<void> } {
    this.listeners.add(fn);
    if (!this.timer) {
      this.timer = setInterval(() => this.kick(), this.pollMs);
      this.readFloor();
      this.kick();
    }
    const ready = (this.floorRead ?? Promise.resolve()).catch(() => undefined);
    const unsubscribe = () => {
      this.listeners.delete(fn);
      if (this.listeners.size === 0) this.stop();
    };
    return { unsubscribe, ready };
  }

  private readFloor(): void {
    if (this.floor !== undefined || this.floorRead) return;
    const read = this.q.newestVersion().then((v) => {
      // Stopped meanwhile: a later start reads its own.
      if (this.floorRead !== read) return;
      this.floor = BigInt(v);
      this.after = this.floor;
      this.floorRead = undefined;
    });
    this.floorRead = read;
    read.catch(() => {
      if (this.floorRead === read) this.floorRead = undefined;
    });
  }

  /** Look for new rows now (or once the last look is MIN_GAP_MS old); a no-op without listeners. */
  kick(): void {
    if (this.listeners.size === 0 || this.soon) return;
    const wait = Math.max(0, this.lastPollMs + MIN_GAP_MS - Date.now());
    this.soon = setTimeout(() => {
      this.soon = undefined;
      if (this.polling) {
        this.again = true;
        return;
      }
      this.polling = this.poll().finally(() => {
        this.polling = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
    }, wait);
  }

  stop(): void {
    clearInterval(this.timer);
    clearTimeout(this.soon);
    this.timer = undefined;
    this.soon = undefined;
    this.floor = undefined;
    this.floorRead = undefined;
    this.catchUp = undefined;
    this.delivered.clear();
  }

  private async poll(): Promise<void> {
    this.lastPollMs = Date.now();
    try {
      this.readFloor();
      if (this.floorRead) await this.floorRead;
      if (this.floor === undefined) return;
      const behind = this.after - OVERLAP_US;
      const from = this.catchUp ?? (behind > this.floor ? behind : this.floor);
      const rows = await this.q.storedAfter(from.toString(), READ_LIMIT);
      if (this.listeners.size === 0) return;
      const fresh: StoredSuspectRow[] = [];
      for (const r of rows) {
        const key = `${r.suspect_id}@${r.version_text}`;
        if (this.delivered.has(key)) continue;
        const v = BigInt(r.version_text);
        this.delivered.set(key, v);
        fresh.push(r);
        if (v > this.after) this.after = v;
      }
      for (const [k, v] of this.delivered) if (v <= this.after - OVERLAP_US) this.delivered.delete(k);
      const last = rows.at(-1);
      this.catchUp = rows.length === READ_LIMIT && last ? BigInt(last.version_text) : undefined;
      if (fresh.length > 0) for (const fn of this.listeners) fn(fresh);
      if (this.catchUp !== undefined) this.kick();
    } catch (err) {
      this.log.warn({ err }, "stream: reading new suspects failed; retrying on the next poll");
    }
  }
}

/** A connection's rows not yet sent, and a way to wait for more. */
class Inbox {
  rows: StoredSuspectRow[] = [];
  dropped = 0;
  private wake: (() => void) | undefined;

  push(rows: readonly StoredSuspectRow[]): void {
    for (const r of rows) this.rows.push(r);
    if (this.rows.length > INBOX_LIMIT) {
      this.dropped += this.rows.length - INBOX_LIMIT;
      this.rows = this.rows.slice(-INBOX_LIMIT);
    }
    this.wake?.();
  }

  /** Resolves when rows are waiting or arrive, `ms` pass, or `close` is called. */
  wait(ms: number): Promise<void> {
    if (this.rows.length > 0 || this.dropped > 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }

  close(): void {
    this.wake?.();
  }
}

const sse = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

export interface StreamRouteOptions {
  feed: SuspectFeed;
  q: ApiQueries;
  /** A stream slot, or null when every one is taken (then a 429). */
  take(): (() => void) | null;
  user(req: FastifyRequest): User;
  /** Whether the connection's token still names a user (checked before each event). */
  stillValid(req: FastifyRequest): boolean;
  /** The suspect as the list shows it to `user` (masked, without evidence). */
  toApi(r: SuspectListRow, user: User): unknown;
  /** Writes the connection's audit row; `phase` start before the first byte, end when it closes. */
  audit(
    req: FastifyRequest,
    phase: "start" | "end",
    rows: number,
    extra?: Record<string, unknown>,
  ): Promise<void>;
  fail(status: number, code: string, message: string): Error;
}

export function registerStreamRoute<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, L>,
  o: StreamRouteOptions,
): void {
  // Streams never end by themselves: a closing server ends them, or it would wait for them forever.
  const open = new Set<() => void>();
  app.addHook("preClose", async () => {
    for (const end of open) end();
  });
  app.get("/api/v1/stream", async (req, reply) => {
    const user = o.user(req);
    const f = countQuery.parse(req.query);
    req.fg.filters = describeFilters(f);
    // The filters' count first: a filter the list refuses (a raw person id for a masked user) is a 400 here too.
    const counts = await o.q.count(f, user);
    const release = o.take();
    if (!release) throw o.fail(429, "too_many_streams", "too many streams are open; retry later");
    const inbox = new Inbox();
    let unsubscribe: (() => void) | undefined;
    let closed = false;
    let sent = 0;
    const end = () => {
      if (closed) return;
      closed = true;
      open.delete(end);
      unsubscribe?.();
      inbox.close();
      release();
    };
    open.add(end);
    // Audited before a byte is sent: a stream whose row cannot be written does not start.
    try {
      await o.audit(req, "start", 0);
    } catch (err) {
      end();
      req.log.error({ err }, "audit write failed; the stream is withheld");
      throw o.fail(503, "audit_unavailable", "the audit log cannot be written; retry later");
    }
    req.fg.auditedByHandler = true;
    reply.raw.once("close", end);
    const subscribed = o.feed.subscribe((rows) => inbox.push(rows));
    unsubscribe = subscribed.unsubscribe;
    const scoped = (r: StoredSuspectRow) =>
      r.run_id === f.run_id && (user.regions === null || user.regions.includes(r.region_code));

    async function* events(): AsyncGenerator<string> {
      let complete = false;
      try {
        // Counted again once the feed knows where news starts: a suspect stored after the first
        // count is then either in the hello's or sent as news, never neither.
        await subscribed.ready;
        const now = await o.q.count(f, user).catch(() => counts);
        yield sse("hello", { ...now });
        while (!closed) {
          await inbox.wait(HEARTBEAT_MS);
          if (closed) break;
          if (!o.stillValid(req)) {
            yield sse("end", { reason: "the token is no longer valid: log in again" });
            complete = true;
            break;
          }
          const taken = inbox.rows;
          const dropped = inbox.dropped;
          inbox.rows = [];
          inbox.dropped = 0;
          const mine = taken.filter(scoped);
          if (mine.length === 0 && dropped === 0) {
            if (taken.length === 0) yield ": keep-alive\n\n";
            continue;
          }
          const ids = [...new Set(mine.map((r) => r.suspect_id))];
          const [matching, now, statuses] = await Promise.all([
            o.q.matching(f, user, ids),
            o.q.count(f, user),
            o.q.caseStatuses(f.run_id, ids),
          ]);
          sent += mine.length;
          yield sse("suspects", {
            // Rows are shared by every connection: each gets its own copy with the case status.
            items: mine.map((r) =>
              o.toApi({ ...r, case_status: statuses.get(r.suspect_id)?.status ?? "new" }, user),
            ),
            matching,
            ...(dropped > 0 ? { dropped } : {}),
            ...now,
          });
        }
        complete = true;
      } finally {
        end();
        await o
          .audit(req, "end", sent, { complete })
          .catch((err) => req.log.error({ err }, "audit write failed at the end of a stream"));
      }
    }
    // Not kept alive once the stream ends: a closing server would otherwise wait out keep-alive.
    return reply
      .type("text/event-stream; charset=utf-8")
      .header("cache-control", "no-store")
      .header("x-accel-buffering", "no")
      .header("connection", "close")
      .send(Readable.from(events(), { objectMode: false }));
  });
}
