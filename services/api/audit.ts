// The audit log writer: every API call becomes one `audit_log` row. Calls that arrive while
// an INSERT is running are written together by the next one (group commit), so a busy API
// costs one INSERT per round, not one per request, and a response is released only after
// its audit row is written. No credential reaches a row (see secrets.ts).
import type { AuditEntry, Store } from "../store/index.ts";
import type { User } from "./auth.ts";
import { PSEUDONYM_RE } from "./filters.ts";
import type { Masker } from "./mask.ts";
import { decoded, redactDeep, redactText } from "./secrets.ts";

export interface AuditRecord {
  who: string;
  route: string;
  filters: Record<string, unknown>;
  rows: number;
  at: number;
  address: string;
  userAgent: string;
  tokenLabel: string;
  /** The caller's region grants (null: every region); unauthenticated callers have none. */
  regions: readonly string[] | null;
  /** Values that must not appear in the row (the token the caller sent). */
  secrets?: readonly string[];
}

/** The row as stored: secret-named values and token-shaped text redacted. */
export function auditEntry(r: AuditRecord): AuditEntry {
  const secrets = r.secrets ?? [];
  return {
    who: r.who,
    route: r.route,
    filters: redactDeep(r.filters, secrets) as Record<string, unknown>,
    rows: r.rows,
    at: new Date(r.at).toISOString(),
    address: r.address,
    userAgent: redactText(r.userAgent.slice(0, 400), secrets),
    tokenLabel: r.tokenLabel,
    callerRegions: r.regions,
  };
}

interface Pending {
  entry: AuditEntry;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class AuditWriter {
  private queue: Pending[] = [];
  private running: Promise<void> | null = null;

  constructor(private readonly store: Store) {}

  write(record: AuditRecord): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ entry: auditEntry(record), resolve, reject });
      if (!this.running) this.running = this.drain();
    });
  }

  /** Resolves when everything queued so far is written. */
  async flush(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        try {
          await this.store.appendAudit(batch.map((p) => p.entry));
          for (const p of batch) p.resolve();
        } catch (err) {
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.running = null;
    }
  }
}

/**
 * The audit rows a user may read: admins and auditors without regions read every row; an
 * auditor with regions reads the rows of callers whose grants are a non-empty subset of
 * theirs (an investigator of one of their regions, say). Rows of callers granted every region
 * (admins, unscoped auditors, the CLI) and of unauthenticated calls are not in any region.
 */
export function auditScope(user: User): readonly string[] | null {
  return user.role === "admin" ? null : user.regions;
}

/** A person filter value as a masked reader may see it: pseudonyms stay, raw ids become one. */
function maskPerson(v: unknown, masker: Masker): unknown {
  if (Array.isArray(v)) return v.map((x) => maskPerson(x, masker));
  return typeof v === "string" && !PSEUDONYM_RE.test(v) ? masker.pseudonym(v) : v;
}

function maskRawQuery(query: string, masker: Masker): string {
  return query
    .split("&")
    .map((part) => {
      const eq = part.indexOf("=");
      if (eq < 0 || decoded(part.slice(0, eq)) !== "person") return part;
      return `${part.slice(0, eq)}=${encodeURIComponent(String(maskPerson(decoded(part.slice(eq + 1)), masker)))}`;
    })
    .join("&");
}

/** An audit row's filters for a reader who sees personal fields masked: person ids as pseudonyms. */
export function maskAuditFilters(filters: unknown, masker: Masker): unknown {
  if (filters === null || typeof filters !== "object" || Array.isArray(filters)) return filters;
  const out: Record<string, unknown> = { ...(filters as Record<string, unknown>) };
  if ("person" in out) out.person = maskPerson(out.person, masker);
  if (typeof out.query === "string") out.query = maskRawQuery(out.query, masker);
  return out;
}
