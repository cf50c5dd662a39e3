// The contract's size limits, in one place: what one input message may hold, whatever its path
// (an NDJSON line of `detect`, `replay` or `start`, or a Kafka record a worker decodes). Far
// above what a real HIS sends, they keep one hostile message from exhausting a worker's memory.

export interface Limits {
  /** Bytes of one message: an NDJSON line (without its newline) or a Kafka record value. */
  readonly maxMessageBytes: number;
  /** UTF-8 bytes of any one string field. */
  readonly maxStringLength: number;
  /** Diagnoses of one settlement. */
  readonly maxDiagnoses: number;
  /** Line items of one settlement. */
  readonly maxItems: number;
}

export const DEFAULT_LIMITS: Limits = Object.freeze({
  maxMessageBytes: 1 << 20,
  maxStringLength: 64 << 10,
  maxDiagnoses: 1_000,
  maxItems: 20_000,
});

/** The limits one record type's fields are held to: every string, and the arrays named here. */
export interface FieldLimits {
  readonly maxStringLength: number;
  /** Top-level array field → most entries. */
  readonly maxEntries: Readonly<Record<string, number>>;
}

export type RecordKind = "settlement" | "death";

export function fieldLimits(kind: RecordKind, l: Limits): FieldLimits {
  return {
    maxStringLength: l.maxStringLength,
    maxEntries: kind === "settlement" ? { diagnoses: l.maxDiagnoses, items: l.maxItems } : {},
  };
}

/** Whether `s` takes at most `max` bytes in UTF-8; exact, and cheap for the short strings of real input. */
export function utf8Within(s: string, max: number): boolean {
  // A UTF-16 code unit takes 1 to 3 UTF-8 bytes (a surrogate pair 4 for two units).
  if (s.length * 3 <= max) return true;
  return s.length <= max && Buffer.byteLength(s, "utf8") <= max;
}
