// Messages between `detect`'s dispatcher (main thread) and its shards (worker threads).
import type { Limits, Suspect } from "../../schemas/index.ts";
import type { EngineEvent, EngineStats } from "../engine/engine.ts";
import type { BadLine } from "../ingest/ndjson-source.ts";

export type Kind = EngineEvent["kind"];

export interface ShardSetup {
  files: { settlement: string; death: string };
  reference?: string;
  retentionDays?: number;
  configs?: Record<string, unknown>;
  limits: Limits;
}

/**
 * A batch of raw lines in arrival order, as UTF-8 bytes end to end in one transferred buffer (the
 * main thread never decodes them): line i is bytes [ends[i-1] or 0, ends[i]).
 * `meta[i]` is its line number × 2, plus 1 for a death record.
 */
export interface LinesMessage {
  bytes: ArrayBuffer;
  ends: number[];
  meta: number[];
}

export type ToShard = LinesMessage | { end: true };

export type FromShard =
  | { ack: true; bad: BadLine[] }
  | { done: true; suspects: Suspect[]; stats: EngineStats; events: number };

export const encodeMeta = (line: number, kind: Kind) => line * 2 + (kind === "death" ? 1 : 0);
export const metaKind = (meta: number): Kind => (meta % 2 === 1 ? "death" : "settlement");
export const metaLine = (meta: number) => Math.floor(meta / 2);
