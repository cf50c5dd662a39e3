// POST /api/v1/ingest/settlements and /ingest/deaths: what Confluent's REST Proxy does, in the
// contract's terms. The body (NDJSON or a JSON array) is validated record by record under the
// contract's limits; the valid records go to the destination whole, and the answer leaves only
// once the destination has them durably (the broker acknowledged), so nothing accepted is lost
// and nothing rejected is written. A destination that fails is a 503: the caller sends again
// (the engine recognises a settlement it already has by its id).
import type { IncomingMessage, ServerResponse } from "node:http";
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest, RawServerDefault } from "fastify";
import type { Limits } from "../../schemas/limits.ts";
import type { EngineEvent } from "../engine/engine.ts";
import { LineSplitter, OverlongLine } from "../ingest/lines.ts";
import { parseEventLine } from "../ingest/ndjson-source.ts";
import { validators } from "../ingest/validate.ts";

/** Where accepted records go: the input topics (distributed), or the in-process log (embedded). */
export interface IngestDestination {
  /** Resolves once every event is durable in order per person; rejects when any may not be. */
  write(events: readonly EngineEvent[]): Promise<void>;
  close(): Promise<void>;
}

export interface Rejected {
  /** 1-based: the NDJSON line, or the position in the JSON array. */
  line: number;
  reason: string;
}

export interface ParsedBody {
  events: EngineEvent[];
  rejected: Rejected[];
}

export const NDJSON_TYPE = "application/x-ndjson";
/** Rejections listed in one answer; the rest are counted in `rejected_more`. */
export const MAX_REJECTED_LISTED = 1_000;

type Kind = EngineEvent["kind"];

/** NDJSON bytes as events, each line held to the contract's message limit; blank lines are skipped. */
export function parseNdjsonBody(kind: Kind, body: Buffer, limits: Limits): ParsedBody {
  const v = validators(limits);
  const out: ParsedBody = { events: [], rejected: [] };
  const take = (lineNo: number, text: string | OverlongLine) => {
    const parsed = parseEventLine(kind, text, v);
    if (!parsed) return;
    if (parsed.ok) out.events.push(parsed.value);
    else out.rejected.push({ line: lineNo, reason: parsed.reason });
  };
  const splitter = new LineSplitter(limits.maxMessageBytes);
  const sink = {
    line: (buf: Buffer, start: number, end: number, lineNo: number) =>
      take(lineNo, buf.toString("utf8", start, end).replace(/\r$/, "")),
    overlong: (lineNo: number, line: OverlongLine) => take(lineNo, line),
  };
  splitter.push(body, sink);
  splitter.end(sink);
  return out;
}

/** A parsed JSON array as events; `line` is the 1-based position of the record in the array. */
export function parseArrayBody(kind: Kind, body: unknown, limits: Limits): ParsedBody | string {
  if (!Array.isArray(body)) return "a JSON body must be an array of records (or send application/x-ndjson)";
  const v = validators(limits)[kind] as (x: unknown) => ReturnType<ReturnType<typeof validators>[Kind]>;
  const out: ParsedBody = { events: [], rejected: [] };
  body.forEach((record, i) => {
    const bytes = Buffer.byteLength(JSON.stringify(record) ?? "");
    if (bytes > limits.maxMessageBytes) {
      out.rejected.push({ line: i + 1, reason: new OverlongLine(bytes, limits.maxMessageBytes).reason });
      return;
    }
    const parsed = v(record);
    if (parsed.ok) out.events.push({ kind, value: parsed.value } as EngineEvent);
    else out.rejected.push({ line: i + 1, reason: parsed.reason });
  });
  return out;
}

export interface IngestRouteOptions {
  destination: IngestDestination | undefined;
  limits: Limits;
  /** Largest request body, in bytes. */
  maxBodyBytes: number;
  /** Throws the route's 401/403 when the caller may not ingest. */
  authorize(req: FastifyRequest): void;
  /** Records what the audit row says about the call. */
  audited(req: FastifyRequest, filters: Record<string, unknown>, rows: number): void;
  /** An HTTP error with a status, code and message. */
  fail(status: number, code: string, message: string): Error;
}

export function registerIngestRoutes<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, L>,
  o: IngestRouteOptions,
): void {
  app.addContentTypeParser(
    NDJSON_TYPE,
    { parseAs: "buffer", bodyLimit: o.maxBodyBytes },
    (_req, body, done) => done(null, body),
  );
  for (const [path, kind] of [
    ["/api/v1/ingest/settlements", "settlement"],
    ["/api/v1/ingest/deaths", "death"],
  ] as const) {
    app.post(path, { bodyLimit: o.maxBodyBytes }, async (req) => {
      o.authorize(req);
      const type = String(req.headers["content-type"] ?? "");
      if (!Buffer.isBuffer(req.body) && !/^application\/json\b/i.test(type))
        throw o.fail(
          415,
          "unsupported_media_type",
          `send ${NDJSON_TYPE} or a JSON array as application/json`,
        );
      const parsed = Buffer.isBuffer(req.body)
        ? parseNdjsonBody(kind, req.body, o.limits)
        : parseArrayBody(kind, req.body, o.limits);
      if (typeof parsed === "string") throw o.fail(400, "bad_request", parsed);
      if (!o.destination)
        throw o.fail(503, "ingest_unavailable", "this server has no input destination (set KAFKA_BROKERS)");
      const filters = { kind, accepted: parsed.events.length, rejected: parsed.rejected.length };
      o.audited(req, { ...filters, delivered: false }, 0);
      if (parsed.events.length > 0) {
        try {
          await o.destination.write(parsed.events);
        } catch (err) {
          req.log.error({ err, kind, records: parsed.events.length }, "ingest: the destination failed");
          throw o.fail(
            503,
            "ingest_unavailable",
            "the records could not all be delivered: send the request again (records already delivered are recognised and not counted twice)",
          );
        }
      }
      o.audited(req, { ...filters, delivered: true }, parsed.events.length);
      return {
        accepted: parsed.events.length,
        rejected: parsed.rejected.slice(0, MAX_REJECTED_LISTED),
        ...(parsed.rejected.length > MAX_REJECTED_LISTED
          ? { rejected_more: parsed.rejected.length - MAX_REJECTED_LISTED }
          : {}),
      };
    });
  }
}
