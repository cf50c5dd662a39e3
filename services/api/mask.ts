// Masking of personal fields for users who may not see them: person ids become a keyed
// pseudonym (`~` + 16 hex digits of SHA-256(key || person_id)), stable for one key, so cases
// of one person can still be linked (and filtered: see PSEUDONYM_RE) without revealing the
// id; birth dates keep only the year (the age evidence stays readable); names and other
// identifying fields in evidence are replaced.
import { createHash, randomBytes } from "node:crypto";
import type { User } from "./auth.ts";

/** Evidence / record keys whose values identify a person. */
const PERSON_ID_KEYS = new Set(["person_id", "insured_person_id", "psn_no"]);
const BIRTH_KEYS = new Set(["birth_date", "birthday", "date_of_birth"]);
const REDACT_KEYS = new Set([
  "person_name",
  "patient_name",
  "insured_name",
  "psn_name",
  "id_card",
  "id_card_no",
  "id_number",
  "certno",
  "phone",
  "mobile",
  "address",
]);

export const REDACTED = "***";

export function maskKeyFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  // Without a configured key the pseudonyms are stable for the life of the process only.
  return env.FUNDGUARD_MASK_KEY?.trim() || randomBytes(32).toString("hex");
}

export class Masker {
  constructor(private readonly key: string) {}

  /** True when `user` sees personal fields as stored. */
  static clear(user: User): boolean {
    return user.role === "admin" || user.unmask;
  }

  pseudonym(personId: string): string {
    return `~${createHash("sha256")
      .update(this.key + personId, "utf8")
      .digest("hex")
      .slice(0, 16)}`;
  }

  birthDate(value: unknown): unknown {
    return typeof value === "string" && /^\d{4}/.test(value) ? `${value.slice(0, 4)}-**-**` : REDACTED;
  }

  /** A deep copy of `value` with personal fields masked; `personIds` are also replaced wherever they occur as a whole string. */
  deep(value: unknown, personIds: ReadonlySet<string>): unknown {
    if (typeof value === "string") return personIds.has(value) ? this.pseudonym(value) : value;
    if (Array.isArray(value)) return value.map((v) => this.deep(v, personIds));
    if (value === null || typeof value !== "object") return value;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (PERSON_ID_KEYS.has(k) && typeof v === "string") out[k] = this.pseudonym(v);
      else if (BIRTH_KEYS.has(k)) out[k] = this.birthDate(v);
      else if (REDACT_KEYS.has(k)) out[k] = REDACTED;
      else out[k] = this.deep(v, personIds);
    }
    return out;
  }
}
