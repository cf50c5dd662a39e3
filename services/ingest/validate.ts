// Turning untrusted input into contract events, with a reason an operator can act on.
import type { z } from "zod";
import {
  type DeathRecord,
  deathRecordValidator,
  isValidDeathRecord,
  isValidSettlement,
  type Settlement,
  settlementValidator,
} from "../../schemas/index.ts";

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length > 0 ? i.path.join(".") : "(root)"}: ${i.message}`)
    .join("; ");
}

/** The compiled check accepts valid input fast; zod decides the rest and explains failures. */
function validator<T>(schema: z.ZodType<T>, fast: (v: unknown) => v is T) {
  return (input: unknown): Parsed<T> => {
    if (fast(input)) return { ok: true, value: input };
    const r = schema.safeParse(input);
    return r.success
      ? { ok: true, value: r.data }
      : { ok: false, reason: `contract violation: ${describeIssues(r.error)}` };
  };
}

export const validateSettlement: (input: unknown) => Parsed<Settlement> = validator(
  settlementValidator,
  isValidSettlement,
);
export const validateDeathRecord: (input: unknown) => Parsed<DeathRecord> = validator(
  deathRecordValidator,
  isValidDeathRecord,
);

export function parseJsonLine(line: string): Parsed<unknown> {
  try {
    return { ok: true, value: JSON.parse(line) };
  } catch (e) {
    return { ok: false, reason: `invalid JSON: ${(e as Error).message}` };
  }
}
