// The settlement/death archive from the input's own bytes: the valid records' Kafka values
// (Confluent-framed Avro) or NDJSON lines go to ClickHouse's parser as they are, into the staging
// tables of migration 005, whose views write `settlements` / `deaths`. JS validation stays the
// gate (only valid records are kept); where ClickHouse still refuses the bytes as data, the flush
// falls back to the JS row path, so a record zod accepts can never stall a writer.
import type { EngineEvent } from "../engine/engine.ts";
import type { RawFormat, RawTable } from "./backend.ts";

/** A valid input record: its decoded event (what the fallback writes) and its exact bytes. */
export interface ArchiveRecord {
  event: EngineEvent;
  raw: Uint8Array;
}

/** A valid input record decoded elsewhere (a worker's lane): decoded again only for the fallback. */
export interface RawArchiveRecord {
  kind: EngineEvent["kind"];
  raw: Uint8Array;
  decode(): Promise<EngineEvent>;
}

export const archiveKind = (r: ArchiveRecord | RawArchiveRecord): EngineEvent["kind"] =>
  "event" in r ? r.event.kind : r.kind;

export const archiveEvent = async (r: ArchiveRecord | RawArchiveRecord): Promise<EngineEvent> =>
  "event" in r ? r.event : r.decode();

/** A table whose raw insert ClickHouse refused as data, and why; its rows went in through JS rows. */
export interface ArchiveFallback {
  table: RawTable;
  format: RawFormat;
  message: string;
}

/**
 * ClickHouse error codes of input it cannot parse (CANNOT_PARSE_TEXT, CANNOT_PARSE_QUOTED_STRING,
 * CANNOT_PARSE_INPUT_ASSERTION_FAILED, CANNOT_READ_ALL_DATA, TYPE_MISMATCH, INCORRECT_DATA, and the
 * number/date/enum parse failures): retrying such an insert fails the same way forever.
 */
const DATA_ERROR_CODES = new Set([6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 130, 131, 691]);

/** The ClickHouse error code of `err` (either client's error shape, or its message), if any. */
export function clickhouseCode(err: unknown): number | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const own = (e as { clickhouseCode?: unknown }).clickhouseCode;
    if (typeof own === "number") return own;
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^\d+$/.test(code)) return Number(code);
    const m = /\bCode: (\d+)\b/.exec(e.message);
    if (m) return Number(m[1]);
  }
  return undefined;
}

export function isDataError(err: unknown): boolean {
  const code = clickhouseCode(err);
  return code !== undefined && DATA_ERROR_CODES.has(code);
}

/**
 * An integer field written with a fraction or an exponent (`1.0`, `1e2`): JSON and zod accept it,
 * ClickHouse's JSONEachRow refuses it for Int32/Int64 (Code 27).
 */
const FRACTIONAL_INTEGER = /"(?:total_fen|fund_paid_fen|line_no|unit_price_fen|amount_fen)"\s*:\s*-?\d+[.eE]/;

/**
 * The archive bytes of a valid NDJSON line: the line itself and a newline, or, where an integer
 * field is spelled as ClickHouse will not read it, the parsed value written back as JSON.
 */
export function ndjsonArchiveBytes(line: string, value: object): Buffer {
  return Buffer.from(`${FRACTIONAL_INTEGER.test(line) ? JSON.stringify(value) : line}\n`);
}

/** Bodies are cut at about this many bytes, each cut a separate INSERT (at record boundaries). */
export const RAW_INSERT_BYTES = 64 << 20;

/** `chunks` in runs of at most `maxBytes` (a single larger chunk is a run of its own). */
export function cutBodies(chunks: readonly Uint8Array[], maxBytes = RAW_INSERT_BYTES): Uint8Array[][] {
  const out: Uint8Array[][] = [];
  let run: Uint8Array[] = [];
  let bytes = 0;
  for (const c of chunks) {
    if (run.length > 0 && bytes + c.length > maxBytes) {
      out.push(run);
      run = [];
      bytes = 0;
    }
    run.push(c);
    bytes += c.length;
  }
  if (run.length > 0) out.push(run);
  return out;
}
