// Turning untrusted input into contract events, with a reason an operator can act on.
import type { z } from "zod";
import {
  DEFAULT_LIMITS,
  type DeathRecord,
  deathRecordCheckFor,
  deathRecordValidatorFor,
  fieldLimits,
  type Limits,
  type RecordKind,
  type Settlement,
  settlementCheckFor,
  settlementValidatorFor,
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

export interface Validators {
  settlement: (input: unknown) => Parsed<Settlement>;
  death: (input: unknown) => Parsed<DeathRecord>;
}

const built = new Map<string, Validators>();

/** The validators of both input kinds under `limits`; built once per distinct limits. */
export function validators(limits: Limits = DEFAULT_LIMITS): Validators {
  const key = `${limits.maxMessageBytes}/${limits.maxStringLength}/${limits.maxDiagnoses}/${limits.maxItems}`;
  let v = built.get(key);
  if (!v) {
    const of = (kind: RecordKind) => fieldLimits(kind, limits);
    v = {
      settlement: validator(settlementValidatorFor(of("settlement")), settlementCheckFor(of("settlement"))),
      death: validator(deathRecordValidatorFor(of("death")), deathRecordCheckFor(of("death"))),
    };
    built.set(key, v);
  }
  return v;
}

export const validateSettlement: (input: unknown) => Parsed<Settlement> = validators().settlement;
export const validateDeathRecord: (input: unknown) => Parsed<DeathRecord> = validators().death;

export function parseJsonLine(line: string): Parsed<unknown> {
  try {
    return { ok: true, value: JSON.parse(line) };
  } catch (e) {
    return { ok: false, reason: `invalid JSON: ${(e as Error).message}` };
  }
}
