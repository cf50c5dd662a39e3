// Query-string validation and the SQL WHERE clause built from it. The SQL text is chosen
// only from fixed fragments (one per filter that is present, sort orders from a whitelist);
// every value reaches ClickHouse as a bound `{name:Type}` parameter.
import { z } from "zod";
import { SEVERITIES } from "../../schemas/index.ts";
import { LIVE_RUN } from "../store/index.ts";
import type { User } from "./auth.ts";
import { Masker } from "./mask.ts";

export const CASE_STATUSES = ["under_review", "confirmed", "dismissed"] as const;
export type CaseStatus = (typeof CASE_STATUSES)[number];
/** `new`: no workflow event yet. */
export const LIST_CASE_STATUSES = ["new", ...CASE_STATUSES] as const;

export const SORTS = {
  newest: "event_time DESC, suspect_id DESC",
  oldest: "event_time ASC, suspect_id ASC",
  amount_desc: "amount_at_risk_fen DESC, event_time DESC, suspect_id DESC",
  amount_asc: "amount_at_risk_fen ASC, event_time ASC, suspect_id ASC",
} as const;
export type Sort = keyof typeof SORTS;

const MAX_LIST_VALUES = 50;
/** Printable text without control, format or unassigned code points; a literal, never parsed. */
const LITERAL_RE = /^[^\p{C}]{1,64}$/u;
const IDENT_RE = /^[a-z][a-z0-9_]{0,63}$/;
const RUN_RE = /^[A-Za-z0-9._-]{1,64}$/;
const REGION_RE = /^\d{6}$/;
const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;
const DATETIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/;
const CST_OFFSET_MS = 8 * 3600_000;

/** One value or several (repeated keys or comma-separated), each checked by `item`. */
function multi<T extends z.ZodType>(item: T) {
  const each = item as unknown as z.ZodType<z.output<T>, string>;
  return z
    .union([z.string().max(4096), z.array(z.string().max(4096)).max(MAX_LIST_VALUES)])
    .transform((v) => (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(",")).map((s) => s.trim()))
    .pipe(z.array(each).min(1).max(MAX_LIST_VALUES));
}

const uint = (max: number, digits: number) =>
  z
    .string()
    .regex(new RegExp(`^\\d{1,${digits}}$`), "a whole number")
    .transform(Number)
    .pipe(z.number().int().min(0).max(max));

/** A date (YYYY-MM-DD, a China Standard Time day) or an ISO-8601 time with offset → epoch ms. */
function instant(endOfDay: boolean) {
  return z
    .string()
    .max(40)
    .refine((s) => DATE_RE.test(s) || DATETIME_RE.test(s), "YYYY-MM-DD or ISO-8601 with offset")
    .transform((s, ctx) => {
      let ms: number;
      if (DATE_RE.test(s)) {
        const [y, m, d] = s.split("-").map(Number) as [number, number, number];
        const utc = Date.UTC(y, m - 1, d);
        const back = new Date(utc);
        if (back.getUTCFullYear() !== y || back.getUTCMonth() !== m - 1 || back.getUTCDate() !== d) {
          ctx.addIssue({ code: "custom", message: "not a calendar date" });
          return z.NEVER;
        }
        ms = utc - CST_OFFSET_MS + (endOfDay ? 86_400_000 : 0);
      } else {
        ms = Date.parse(s);
      }
      if (!Number.isFinite(ms) || ms < Date.UTC(1900, 0, 1) || ms > Date.UTC(2299, 0, 1)) {
        ctx.addIssue({ code: "custom", message: "out of range" });
        return z.NEVER;
      }
      return ms;
    });
}

export const filterShape = {
  run_id: z.string().regex(RUN_RE, "letters, digits, '.', '_', '-'").default(LIVE_RUN),
  detector: multi(z.string().regex(IDENT_RE, "a detector id")).optional(),
  rule: multi(z.string().regex(IDENT_RE, "a rule name")).optional(),
  severity: multi(z.enum(SEVERITIES)).optional(),
  region: multi(z.string().regex(REGION_RE, "a 6-digit region code")).optional(),
  institution: z.string().regex(LITERAL_RE, "1 to 64 printable characters").optional(),
  person: z.string().regex(LITERAL_RE, "1 to 64 printable characters").optional(),
  /** Event time (settled_at of the suspect settlement): from is inclusive, a date `to` includes that day. */
  from: instant(false).optional(),
  to: instant(true).optional(),
  min_amount_fen: uint(1e15, 16).optional(),
  max_amount_fen: uint(1e15, 16).optional(),
  status: multi(z.enum(LIST_CASE_STATUSES)).optional(),
  retracted: z.enum(["exclude", "include", "only"]).default("exclude"),
};

const sort = z.enum(Object.keys(SORTS) as [Sort, ...Sort[]]);

/** Drops empty values (an empty form field means "no filter"). */
function withoutEmpty(v: unknown): unknown {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
  return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== ""));
}

export const listQuery = z.preprocess(
  withoutEmpty,
  z.strictObject({
    ...filterShape,
    sort: sort.default("newest"),
    limit: uint(500, 3).pipe(z.number().min(1)).default(50),
    offset: uint(1_000_000, 7).default(0),
    /** `false`: the page only (total null), for clients that fetch /suspects/count separately. */
    with_total: z.enum(["true", "false"]).default("true"),
  }),
);
export type ListQuery = z.infer<typeof listQuery>;

/** The list's filters alone (the total of a match). */
export const countQuery = z.preprocess(withoutEmpty, z.strictObject({ ...filterShape }));

export const exportQuery = z.preprocess(
  withoutEmpty,
  z.strictObject({
    ...filterShape,
    sort: sort.optional(),
    limit: uint(10_000_000, 8).optional(),
    lang: z.enum(["en", "zh"]).default("en"),
  }),
);
export type ExportQuery = z.infer<typeof exportQuery>;

export const AGGREGATE_DIMENSIONS = [
  "detector",
  "rule",
  "severity",
  "region",
  "institution",
  "month",
  "status",
] as const;
export type AggregateDimension = (typeof AGGREGATE_DIMENSIONS)[number];

export const aggregateQuery = z.preprocess(
  withoutEmpty,
  z.strictObject({
    ...filterShape,
    by: multi(z.enum(AGGREGATE_DIMENSIONS)).optional(),
    top: uint(100, 3).pipe(z.number().min(1)).default(10),
  }),
);
export type AggregateQuery = z.infer<typeof aggregateQuery>;

export type Filters = z.infer<z.ZodObject<typeof filterShape>>;

export const caseQuery = z.preprocess(
  withoutEmpty,
  z.strictObject({
    run_id: filterShape.run_id,
    /** Days of the person's timeline shown before and after the suspect settlement. */
    window_days: uint(3660, 4).default(365),
  }),
);

export const runQuery = z.preprocess(withoutEmpty, z.strictObject({ run_id: filterShape.run_id }));

export const suspectIdParam = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, "a suspect id"),
});

export const statusBody = z.strictObject({
  status: z.enum(CASE_STATUSES),
  note: z.string().max(4000).default(""),
  run_id: filterShape.run_id,
});

export const auditQuery = z.preprocess(
  withoutEmpty,
  z.strictObject({
    who: z.string().regex(LITERAL_RE).optional(),
    route: z
      .string()
      .max(200)
      .regex(/^[^\p{C}]+$/u)
      .optional(),
    from: instant(false).optional(),
    to: instant(true).optional(),
    limit: uint(1000, 4).pipe(z.number().min(1)).default(100),
    offset: uint(1_000_000, 7).default(0),
  }),
);

/** Epoch ms → the text of a DateTime64(3, 'UTC') parameter. */
export function chTime(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

export interface Sql {
  where: string;
  params: Record<string, unknown>;
}

/** A person filter that is a masked pseudonym (`~` + 16 hex) matches by the keyed hash. */
export const PSEUDONYM_RE = /^~[0-9a-f]{16}$/;

/**
 * The WHERE clause over `suspects FINAL` for `f`, restricted to what `user` may see.
 * Values only as parameters; columns that change between versions (`status`, amount) are
 * filtered here in WHERE, never PREWHERE (the queries run with move-to-prewhere off).
 * `immutableOnly` leaves out the conditions on what can change between versions of a row
 * (status, amount, workflow status): a superset of the match, valid without FINAL.
 */
export function suspectWhere(
  f: Filters,
  user: User,
  maskKey: string,
  o: { immutableOnly?: boolean } = {},
): Sql {
  // A raw id from a masked user would tell which pseudonym it has (ids are sequential, so all
  // could be enumerated): refused whatever it matches, so the answer says nothing about the data.
  if (f.person !== undefined && !Masker.clear(user) && !PSEUDONYM_RE.test(f.person)) {
    throw new z.ZodError([
      {
        code: "custom",
        path: ["person"],
        message: "personal fields are masked for you: filter by the pseudonym shown (~ and 16 hex digits)",
        input: f.person,
      },
    ]);
  }
  const conds = ["run_id = {run_id:String}"];
  const params: Record<string, unknown> = { run_id: f.run_id };
  if (user.regions !== null) {
    conds.push("region_code IN {scope_regions:Array(String)}");
    params.scope_regions = [...user.regions];
  }
  const mutable = !o.immutableOnly;
  if (mutable && f.retracted === "exclude") conds.push("status = 'active'");
  else if (mutable && f.retracted === "only") conds.push("status = 'retracted'");
  if (f.detector) {
    conds.push("detector IN {detector:Array(String)}");
    params.detector = f.detector;
  }
  if (f.rule) {
    conds.push("rule IN {rule:Array(String)}");
    params.rule = f.rule;
  }
  if (f.severity) {
    conds.push("severity IN {severity:Array(String)}");
    params.severity = f.severity;
  }
  if (f.region) {
    conds.push("region_code IN {region:Array(String)}");
    params.region = f.region;
  }
  if (f.institution !== undefined) {
    conds.push("institution_id = {institution:String}");
    params.institution = f.institution;
  }
  if (f.person !== undefined) {
    if (PSEUDONYM_RE.test(f.person)) {
      conds.push(
        "substring(lower(hex(SHA256(concat({mask_key:String}, person_id)))), 1, 16) = {person_hash:String}",
      );
      params.mask_key = maskKey;
      params.person_hash = f.person.slice(1);
    } else {
      conds.push("person_id = {person:String}");
      params.person = f.person;
    }
  }
  if (f.from !== undefined) {
    conds.push("event_time >= {from:DateTime64(3, 'UTC')}");
    params.from = chTime(f.from);
  }
  if (f.to !== undefined) {
    conds.push("event_time < {to:DateTime64(3, 'UTC')}");
    params.to = chTime(f.to);
  }
  if (mutable && f.min_amount_fen !== undefined) {
    conds.push("amount_at_risk_fen >= {min_amount:Int64}");
    params.min_amount = f.min_amount_fen;
  }
  if (mutable && f.max_amount_fen !== undefined) {
    conds.push("amount_at_risk_fen <= {max_amount:Int64}");
    params.max_amount = f.max_amount_fen;
  }
  if (mutable && f.status) {
    const named = f.status.filter((s) => s !== "new");
    const parts: string[] = [];
    if (f.status.includes("new")) {
      parts.push("suspect_id NOT IN (SELECT suspect_id FROM case_events WHERE run_id = {run_id:String})");
    }
    if (named.length > 0) {
      parts.push(
        "suspect_id IN (SELECT suspect_id FROM case_events WHERE run_id = {run_id:String} " +
          "GROUP BY suspect_id HAVING argMax(status, at) IN {case_status:Array(String)})",
      );
      params.case_status = named;
    }
    conds.push(parts.length === 1 ? (parts[0] as string) : `(${parts.join(" OR ")})`);
  }
  return { where: conds.join(" AND "), params };
}

/** What an audit row records of a request's filters: the validated values, not raw input. */
export function describeFilters(f: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(f)) {
    if (v === undefined) continue;
    out[k] = (k === "from" || k === "to") && typeof v === "number" ? new Date(v).toISOString() : v;
  }
  return out;
}
