// Turning untrusted input into contract events, with a reason an operator can act on.
import type { z } from "zod";
import {
  type DeathRecord,
  deathRecordValidator,
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

function validator<T>(schema: z.ZodType<T>) {
  return (input: unknown): Parsed<T> => {
    const r = schema.safeParse(input);
    return r.success
      ? { ok: true, value: r.data }
      : { ok: false, reason: `contract violation: ${describeIssues(r.error)}` };
  };
}

export const validateSettlement: (input: unknown) => Parsed<Settlement> = validator(settlementValidator);
export const validateDeathRecord: (input: unknown) => Parsed<DeathRecord> = validator(deathRecordValidator);

export function parseJsonLine(line: string): Parsed<unknown> {
  try {
    return { ok: true, value: JSON.parse(line) };
  } catch (e) {
    return { ok: false, reason: `invalid JSON: ${(e as Error).message}` };
  }
}
