// The investigator HTTP API and web UI (fastify). Every /api/ route needs a bearer token
// (401 otherwise, unknown routes included), applies the user's role and region grants in
// SQL, masks personal fields unless the user may see them, and writes one audit row per call
// before the response is released: a call whose row cannot be written is a 503. Paths are
// made canonical before routing (paths.ts); requests are rate-limited (limits.ts).
import { readFileSync } from "node:fs";
import { Readable } from "node:stream";
import Fastify, { type FastifyReply, type FastifyRequest, LogController } from "fastify";
import { z } from "zod";
import { type AnyDetector, DETECTORS, loadCatalogs } from "../../detectors/index.ts";
import { DEFAULT_LIMITS, type Limits, SEVERITIES, type Settlement } from "../../schemas/index.ts";
import {
  type AccessLimits,
  DEFAULT_ACCESS_LIMITS,
  DEFAULT_MAX_INGEST_BYTES,
  DEFAULT_STREAM_POLL_MS,
} from "../config/env.ts";
import type { CheckAnswer } from "../engine/check.ts";
import { type ActiveDetector, activate } from "../engine/engine.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { Store } from "../store/index.ts";
import { AuditWriter, auditScope, maskAuditFilters } from "./audit.ts";
import { hashToken, mayCall, type User, type UserDirectory } from "./auth.ts";
import { registerCheckRoute } from "./check.ts";
import { BOM, type CsvColumn, csvHeader, csvRow } from "./csv.ts";
import {
  aggregateQuery,
  auditQuery,
  caseQuery,
  countQuery,
  describeFilters,
  exportQuery,
  LIST_CASE_STATUSES,
  listQuery,
  runQuery,
  SORTS,
  statusBody,
  suspectIdParam,
} from "./filters.ts";
import { type IngestDestination, registerIngestRoutes } from "./ingest.ts";
import { ExportSlots, rateLimiters } from "./limits.ts";
import { Masker, maskKeyFromEnv } from "./mask.ts";
import { canonicalUrl, isApiUrl } from "./paths.ts";
import { ApiQueries, type SuspectListRow } from "./queries.ts";
import { RelatedRedaction } from "./redact.ts";
import { redactQuery, redactText } from "./secrets.ts";
import { registerStreamRoute, SuspectFeed } from "./stream.ts";

export interface BuildServerOptions {
  store: Store;
  users: UserDirectory;
  log: Logger;
  /** Key of the person-id pseudonyms (default FUNDGUARD_MASK_KEY, else random per process). */
  maskKey?: string;
  detectors?: readonly AnyDetector[];
  /** Prometheus metrics, served at /metrics to tokens of role admin or metrics. */
  metrics?: Metrics;
  /** Rate limits and the export cap (default DEFAULT_ACCESS_LIMITS). */
  limits?: Partial<AccessLimits>;
  /** fastify's trustProxy: whose X-Forwarded-For names the source address (default: nobody's). */
  trustProxy?: boolean | string[];
  /**
   * The stream's detectors with their config, for /check (default: `detectors` with the bundled
   * catalogs and default config). A caller following detector-config.v1 passes the objects it updates.
   */
  active?: ActiveDetector[];
  /** The stream's state retention in days, for /check (default 400). */
  retentionDays?: number;
  /** The stream's lateness in days, for /check (default: the retention). */
  latenessDays?: number;
  /**
   * A live engine's what-if for /check, where this process holds the engines (embedded mode);
   * without one, /check replays the person's archived evidence.
   */
  checkOnEngine?: (s: Settlement) => Promise<CheckAnswer>;
  /** Where /ingest puts accepted records; without one, /ingest answers 503. Closed with the server. */
  ingest?: IngestDestination;
  /** The contract's input limits for /check and /ingest records (default DEFAULT_LIMITS). */
  inputLimits?: Limits;
  /** Largest /ingest body in bytes (default FUNDGUARD_MAX_INGEST_BYTES's default). */
  maxIngestBytes?: number;
  /**
   * How often /stream looks for suspects stored since its last look (default
   * FUNDGUARD_STREAM_POLL_MS's default). A writer in this process wakes it sooner with `onFeed`.
   */
  streamPollMs?: number;
  /** Given the stream's feed once built: the embedded pipeline kicks it after each stored round. */
  onFeed?: (feed: SuspectFeed) => void;
}

interface RequestContext {
  user: User | null;
  /** The bearer token as sent (kept out of every log and audit row) and its hash (the rate-limit key). */
  token: string | null;
  tokenHash: string;
  /** What the audit row records about the request (validated filters once a handler ran). */
  filters: Record<string, unknown>;
  rows: number;
  /** The handler writes its own audit row (streamed exports, when the stream ends). */
  auditedByHandler: boolean;
  started: number;
}

declare module "fastify" {
  interface FastifyRequest {
    fg: RequestContext;
  }
}

class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    /** More fields of the error body (the issues of an invalid settlement). */
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

const UI_DIR = new URL("./ui/", import.meta.url);
const UI_FILES: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/index.html": { file: "index.html", type: "text/html; charset=utf-8" },
  "/ui/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/ui/stream.js": { file: "stream.js", type: "text/javascript; charset=utf-8" },
  "/ui/app.css": { file: "app.css", type: "text/css; charset=utf-8" },
  "/ui/favicon.svg": { file: "favicon.svg", type: "image/svg+xml" },
};

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
};

const pathOf = (url: string) => url.split("?")[0] ?? "";

/** RFC 6750 §3: no error code when no token was sent; invalid_token for an unknown or expired one. */
function challenge(error?: { code: string; description: string }): string {
  return error
    ? `Bearer realm="fundguard", error="${error.code}", error_description="${error.description}"`
    : 'Bearer realm="fundguard"';
}

/** A credential in the query string: refused, so that no URL (in a proxy's log, say) carries one. */
const hasQueryToken = (url: string) =>
  url.includes("?") &&
  [...new URLSearchParams(url.slice(url.indexOf("?") + 1)).keys()].some((k) =>
    /^(?:access_)?token$/i.test(k),
  );

function bearer(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h !== "string") return null;
  const m = /^Bearer[ \t]+([A-Za-z0-9._~+/=-]{8,512})[ \t]*$/i.exec(h);
  return m ? (m[1] as string) : null;
}

function routeName(req: FastifyRequest): string {
  const pattern = req.routeOptions?.url;
  return `${req.method} ${pattern ?? "(unknown route)"}`;
}

/** The raw request as far as it is safe to keep in the audit log (bounded in size, no credentials). */
function rawRequest(req: FastifyRequest, secrets: readonly string[]): Record<string, unknown> {
  const path = pathOf(req.url);
  const query = req.url.includes("?") ? req.url.slice(req.url.indexOf("?") + 1) : "";
  const sent = pathOf(req.originalUrl);
  return {
    path: redactText(path.slice(0, 300), secrets),
    ...(query ? { query: redactQuery(query.slice(0, 2000), secrets) } : {}),
    ...(sent !== path ? { raw_path: redactText(sent.slice(0, 300), secrets) } : {}),
  };
}

export async function buildServer(o: BuildServerOptions) {
  const log = o.log.child({ component: "api" });
  const detectors = o.detectors ?? DETECTORS;
  const maskKey = o.maskKey ?? maskKeyFromEnv();
  const masker = new Masker(maskKey);
  const q = new ApiQueries(o.store, maskKey);
  const audit = new AuditWriter(o.store);
  const limits = { ...DEFAULT_ACCESS_LIMITS, ...o.limits };
  const exportSlots = new ExportSlots(limits.maxExports);
  const streamSlots = new ExportSlots(limits.maxStreams);
  const ruleInfo = new Map<string, { title: string; titleZh: string; severity: string }>();
  for (const d of detectors)
    for (const [rule, info] of Object.entries(d.rules)) ruleInfo.set(`${d.id}/${rule}`, info);
  const ui = Object.fromEntries(
    [...new Set(Object.values(UI_FILES).map((f) => f.file))].map((f) => [
      f,
      readFileSync(new URL(f, UI_DIR)),
    ]),
  );

  const app = Fastify({
    loggerInstance: log,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 64 * 1024,
    // Long path parameters reach the handler's validation (a 400), not the router's 414.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200_000 },
    return503OnClosing: true,
    rewriteUrl: (req) => canonicalUrl(req.url ?? "/"),
    trustProxy: o.trustProxy ?? false,
  });
  app.decorateRequest("fg", null as unknown as RequestContext);
  const limiter = await rateLimiters(app, limits);
  const tooMany = (reply: FastifyReply, retryAfter: number) =>
    reply
      .code(429)
      .header("retry-after", String(retryAfter))
      .send({ error: "too_many_requests", message: `rate limit reached; retry in ${retryAfter} s` });

  // Limits and authentication first, before any body is parsed; also for routes that do not exist.
  app.addHook("onRequest", async (req, reply) => {
    const token = bearer(req);
    req.fg = {
      user: null,
      token,
      tokenHash: "",
      filters: rawRequest(req, token ? [token] : []),
      rows: 0,
      auditedByHandler: false,
      started: Date.now(),
    };
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
    const byAddress = await limiter.address(req);
    if (byAddress.limited) return tooMany(reply, byAddress.retryAfterSeconds);
    const scrape = o.metrics !== undefined && pathOf(req.url) === "/metrics";
    if (!isApiUrl(req.url) && !scrape) return;
    reply.header("cache-control", "no-store");
    const found = token ? o.users.lookup(token) : null;
    if (!found?.user) {
      const error = found
        ? found.reason === "expired"
          ? { code: "invalid_token", description: "the token has expired" }
          : { code: "invalid_token", description: "unknown token" }
        : undefined;
      reply.header("www-authenticate", challenge(error));
      return reply.code(401).send({ error: "unauthorized", message: "a valid bearer token is required" });
    }
    const user = found.user;
    req.fg.user = user;
    req.fg.tokenHash = hashToken(token as string);
    const byToken = await limiter.token(req);
    if (byToken.limited) return tooMany(reply, byToken.retryAfterSeconds);
    // A scraper's token reads /metrics and nothing else; of the people, only admins read metrics.
    // Machine roles (metrics, his, ingest) reach their own routes only.
    const route = `${req.method} ${req.routeOptions?.url ?? "(unknown route)"}`;
    const allowed = scrape ? user.role === "admin" || user.role === "metrics" : mayCall(user.role, route);
    if (!allowed) {
      const message = scrape
        ? `role ${user.role} may not read metrics`
        : `role ${user.role} may not call ${route}`;
      return reply.code(403).send({ error: "forbidden", message });
    }
    if (hasQueryToken(req.url)) {
      reply.header(
        "www-authenticate",
        challenge({
          code: "invalid_request",
          description: "send the token in the Authorization header only",
        }),
      );
      return reply.code(400).send({
        error: "bad_request",
        message: "a token in the URL is refused: send it in the Authorization header only",
      });
    }
  });

  // One audit row per API call, written before the response leaves (exports: before streaming
  // and when the stream ends). Nothing is served unaudited: a failed write turns into a 503.
  app.addHook("onSend", async (req, reply, payload) => {
    if (!isApiUrl(req.url) || req.fg.auditedByHandler) return payload;
    try {
      await audit.write({
        ...caller(req),
        route: routeName(req),
        filters: { http_status: reply.statusCode, ...req.fg.filters },
        rows: req.fg.rows,
        at: req.fg.started,
      });
      return payload;
    } catch (err) {
      log.error({ err, route: routeName(req) }, "audit write failed; the response is withheld");
      if (payload instanceof Readable) payload.destroy();
      reply.removeHeader("content-disposition");
      reply.removeHeader("content-length");
      reply.code(503).type("application/json; charset=utf-8");
      return JSON.stringify({
        error: "audit_unavailable",
        message: "the audit log cannot be written; retry later",
      });
    }
  });

  app.addHook("onResponse", async (req, reply) => {
    log.debug(
      {
        route: routeName(req),
        status: reply.statusCode,
        ms: Date.now() - req.fg.started,
        user: req.fg.user?.name,
      },
      "request",
    );
  });

  app.setErrorHandler(async (err, req, reply) => {
    if (err instanceof z.ZodError) {
      return reply.code(400).send({
        error: "bad_request",
        message: "invalid request",
        issues: err.issues.slice(0, 20).map((i) => ({ path: i.path.join("."), message: i.message })),
      });
    }
    if (err instanceof HttpError)
      return reply.code(err.statusCode).send({ error: err.code, message: err.message, ...err.extra });
    const e = err as { statusCode?: number; code?: string; message?: string };
    if (typeof e.statusCode === "number" && e.statusCode >= 400 && e.statusCode < 500) {
      return reply.code(e.statusCode).send({ error: "bad_request", message: e.message ?? "bad request" });
    }
    log.error({ err, route: routeName(req) }, "request failed");
    return reply.code(500).send({ error: "internal", message: "internal error" });
  });

  app.setNotFoundHandler(async (req, reply) => {
    if (isApiUrl(req.url)) return reply.code(404).send({ error: "not_found", message: "no such API route" });
    return reply.code(404).type("text/plain; charset=utf-8").send("not found");
  });

  /** Who is calling, from where, for the audit row. */
  function caller(req: FastifyRequest) {
    const user = req.fg.user;
    return {
      who: user?.name ?? "(unauthenticated)",
      address: req.ip,
      userAgent: String(req.headers["user-agent"] ?? ""),
      tokenLabel: user?.tokenLabel ?? "",
      regions: user ? user.regions : [],
      secrets: req.fg.token ? [req.fg.token] : [],
    };
  }

  const userOf = (req: FastifyRequest): User => {
    const u = req.fg.user;
    if (!u) throw new HttpError(401, "unauthorized", "a valid bearer token is required");
    return u;
  };
  const requireRole = (user: User, roles: readonly User["role"][], what: string) => {
    if (!roles.includes(user.role))
      throw new HttpError(403, "forbidden", `role ${user.role} may not ${what}`);
  };

  const apiSuspect = (r: SuspectListRow, user: User, withEvidence: boolean) => {
    const info = ruleInfo.get(`${r.detector}/${r.rule}`);
    const clear = Masker.clear(user);
    const redaction = RelatedRedaction.of(user, r);
    const stored = withEvidence && r.evidence !== undefined ? (JSON.parse(r.evidence) as unknown) : undefined;
    const evidence = redaction ? redaction.evidence(stored) : stored;
    return {
      suspect_id: r.suspect_id,
      detector: r.detector,
      rule: r.rule,
      rule_title: info?.title ?? r.rule,
      rule_title_zh: info?.titleZh ?? r.rule,
      severity: r.severity,
      person_id: clear ? r.person_id : masker.pseudonym(r.person_id),
      settlement_ids: redaction ? redaction.ids(r.settlement_ids) : r.settlement_ids,
      institution_id: r.institution_id,
      region_code: r.region_code,
      amount_at_risk_fen: Number(r.amount_text),
      event_time: r.event_time_iso,
      detected_at: r.detected_at_iso,
      detector_version: r.detector_version,
      retracted: r.state === "retracted",
      case_status: r.case_status ?? "new",
      case_updated_at: r.case_at ?? null,
      ...(withEvidence ? { evidence: clear ? evidence : masker.deep(evidence, new Set([r.person_id])) } : {}),
    };
  };

  // --- UI -------------------------------------------------------------------------------
  for (const [path, f] of Object.entries(UI_FILES)) {
    app.get(path, async (_req, reply) =>
      reply.header("cache-control", "no-cache").type(f.type).send(ui[f.file]),
    );
  }
  app.get("/favicon.ico", async (_req, reply) => reply.redirect("/ui/favicon.svg", 301));
  app.get("/healthz", async () => ({ ok: true }));
  const metrics = o.metrics;
  if (metrics) {
    app.get("/metrics", async (_req, reply) =>
      reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
    );
    app.addHook("onResponse", async (req, reply) => {
      const route = req.routeOptions.url ?? "unmatched";
      metrics.httpRequests.inc({ method: req.method, route, status: reply.statusCode });
      metrics.httpSeconds.observe({ route }, reply.elapsedTime / 1000);
    });
  }

  // --- API ------------------------------------------------------------------------------
  app.get("/api/v1/me", async (req) => {
    const user = userOf(req);
    req.fg.filters = {};
    return {
      name: user.name,
      role: user.role,
      regions: user.regions,
      unmask: Masker.clear(user),
      can: { change_status: user.role !== "auditor", read_audit: user.role !== "investigator" },
    };
  });

  app.get("/api/v1/meta", async (req) => {
    const user = userOf(req);
    const f = runQuery.parse(req.query);
    req.fg.filters = describeFilters(f);
    const regions = await q.regions(f.run_id, user);
    req.fg.rows = regions.length;
    return {
      detectors: detectors.map((d) => ({
        id: d.id,
        version: d.version,
        description: d.description,
        rules: d.rules,
        labels: d.labels,
      })),
      regions,
      severities: SEVERITIES,
      case_statuses: LIST_CASE_STATUSES,
      sorts: Object.keys(SORTS),
    };
  });

  app.get("/api/v1/suspects", async (req) => {
    const user = userOf(req);
    const f = listQuery.parse(req.query);
    req.fg.filters = describeFilters(f);
    const rows = await q.page(f, user, f);
    // A first page that is not full is the whole match: no second pass over the table.
    const total =
      f.offset === 0 && rows.length < f.limit
        ? { total: rows.length, amount_at_risk_fen: rows.reduce((n, r) => n + Number(r.amount_text), 0) }
        : f.with_total === "true"
          ? await q.count(f, user)
          : { total: null, amount_at_risk_fen: null };
    req.fg.rows = rows.length;
    return {
      total: total.total,
      amount_at_risk_fen: total.amount_at_risk_fen,
      limit: f.limit,
      offset: f.offset,
      sort: f.sort,
      items: rows.map((r) => apiSuspect(r, user, false)),
    };
  });

  app.get("/api/v1/suspects/count", async (req) => {
    const user = userOf(req);
    const f = countQuery.parse(req.query);
    req.fg.filters = describeFilters(f);
    const total = await q.count(f, user);
    req.fg.rows = 1;
    return total;
  });

  const CSV_COLUMNS: CsvColumn<ReturnType<typeof apiSuspect>>[] = [
    { en: "suspect_id", zh: "线索编号", value: (r) => r.suspect_id },
    { en: "detector", zh: "检测器", value: (r) => r.detector },
    { en: "rule", zh: "规则", value: (r) => r.rule },
    { en: "rule_title_zh", zh: "规则名称", value: (r) => r.rule_title_zh },
    { en: "rule_title", zh: "规则名称(英文)", value: (r) => r.rule_title },
    { en: "severity", zh: "预警级别", value: (r) => r.severity },
    { en: "case_status", zh: "处理状态", value: (r) => r.case_status },
    { en: "retracted", zh: "已撤销", value: (r) => r.retracted, numeric: true },
    { en: "person_id", zh: "人员编号", value: (r) => r.person_id },
    { en: "institution_id", zh: "定点医药机构编码", value: (r) => r.institution_id },
    { en: "region_code", zh: "行政区划", value: (r) => r.region_code },
    {
      en: "amount_at_risk_yuan",
      zh: "涉及金额(元)",
      value: (r) => (r.amount_at_risk_fen / 100).toFixed(2),
      numeric: true,
    },
    { en: "amount_at_risk_fen", zh: "涉及金额(分)", value: (r) => r.amount_at_risk_fen, numeric: true },
    { en: "event_time", zh: "结算时间", value: (r) => r.event_time },
    { en: "detected_at", zh: "发现时间", value: (r) => r.detected_at },
    { en: "settlement_ids", zh: "结算ID", value: (r) => r.settlement_ids.join(";") },
    { en: "detector_version", zh: "检测器版本", value: (r) => r.detector_version },
    { en: "evidence", zh: "证据", value: (r) => JSON.stringify(r.evidence ?? {}) },
  ];

  app.get("/api/v1/suspects/export.csv", async (req, reply) => {
    const user = userOf(req);
    const f = exportQuery.parse(req.query);
    req.fg.filters = describeFilters(f);
    const release = exportSlots.take();
    if (!release)
      throw new HttpError(429, "too_many_exports", `${limits.maxExports} exports are running; retry later`);
    reply.raw.once("close", release);
    // Until the stream owns the slot, any failure gives it back.
    try {
      const statuses = await q.caseStatuses(f.run_id);
      const it = q
        .exportRows(f, user, {
          ...(f.sort ? { sort: f.sort } : {}),
          ...(f.limit !== undefined ? { limit: f.limit } : {}),
        })
        [Symbol.asyncIterator]();
      // The first row is read before the response starts, so a failing query is still a clean 500.
      const first = await it.next();
      const route = routeName(req);
      const filters = req.fg.filters;
      const started = req.fg.started;
      const who = caller(req);
      // Audited before a byte is sent: an export whose row cannot be written does not start.
      try {
        await audit.write({
          ...who,
          route,
          filters: { http_status: 200, phase: "start", ...filters },
          rows: 0,
          at: started,
        });
      } catch (err) {
        await it.return?.();
        log.error({ err, route }, "audit write failed; the export is withheld");
        throw new HttpError(503, "audit_unavailable", "the audit log cannot be written; retry later");
      }
      req.fg.auditedByHandler = true;
      const toApi = (r: SuspectListRow) => {
        const c = statuses.get(r.suspect_id);
        r.case_status = c?.status ?? "new";
        if (c) r.case_at = c.at;
        return apiSuspect(r, user, true);
      };
      async function* body(): AsyncGenerator<string> {
        let n = 0;
        let complete = false;
        try {
          let buf = BOM + csvHeader(CSV_COLUMNS, f.lang);
          if (!first.done) {
            buf += csvRow(CSV_COLUMNS, toApi(first.value));
            n++;
            for (;;) {
              const next = await it.next();
              if (next.done) break;
              buf += csvRow(CSV_COLUMNS, toApi(next.value));
              n++;
              if (buf.length >= 64 * 1024) {
                yield buf;
                buf = "";
              }
            }
          }
          if (buf) yield buf;
          complete = true;
        } finally {
          release?.();
          await it.return?.();
          // Sorts after the start row, even within the same millisecond.
          const at = Math.max(Date.now(), started + 1);
          await audit
            .write({
              ...who,
              route,
              filters: { http_status: 200, phase: "end", complete, ...filters },
              rows: n,
              at,
            })
            .catch((err) => log.error({ err }, "audit write failed at the end of an export"));
        }
      }
      const date = new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10);
      return reply
        .type("text/csv; charset=utf-8")
        .header("content-disposition", `attachment; filename="fundguard-suspects-${date}.csv"`)
        .send(Readable.from(body(), { objectMode: false }));
    } catch (err) {
      release();
      throw err;
    }
  });

  app.get("/api/v1/suspects/:id", async (req) => {
    const user = userOf(req);
    const { id } = suspectIdParam.parse(req.params);
    const c = caseQuery.parse(req.query);
    req.fg.filters = { id, ...describeFilters(c) };
    const r = await q.suspect(c.run_id, id, user);
    if (!r) throw new HttpError(404, "not_found", "no such suspect (or not in your regions)");
    const history = await q.history(c.run_id, id);
    const latest = history.at(-1);
    r.case_status = latest?.status ?? "new";
    if (latest) r.case_at = latest.at;
    const s = apiSuspect(r, user, true);
    const involved = await q.settlements(r.person_id, r.settlement_ids, user);
    const timeline = await q.timeline(r.person_id, Date.parse(r.event_time_iso), c.window_days, user);
    const death = await q.death(r.person_id);
    const clear = Masker.clear(user);
    const ids = new Set([r.person_id]);
    const m = <T>(v: T): T => (clear ? v : (masker.deep(v, ids) as T));
    const found = new Set(involved.map((x) => x.settlement_id));
    const info = ruleInfo.get(`${r.detector}/${r.rule}`);
    const detector = detectors.find((d) => d.id === r.detector);
    req.fg.rows = 1;
    return {
      suspect: s,
      rule: info ? { ...info, rule: r.rule } : null,
      detector: detector ? { id: detector.id, description: detector.description } : null,
      history: history.map((h) => ({ ...h })),
      settlements: m(involved),
      settlements_not_shown: s.settlement_ids.filter((_, i) => !found.has(r.settlement_ids[i] as string)),
      timeline: {
        window_days: c.window_days,
        rows: m(
          timeline.rows.map(({ total_text, fund_paid_text, settled_at_iso, primary_diagnoses, ...t }) => ({
            ...t,
            settled_at: settled_at_iso,
            total_fen: Number(total_text),
            fund_paid_fen: Number(fund_paid_text),
            primary_diagnoses: primary_diagnoses.map((d) =>
              Array.isArray(d) ? { code: d[0], name: d[1] } : { code: d.code, name: d.name },
            ),
            involved: r.settlement_ids.includes(t.settlement_id),
          })),
        ),
        hidden_outside_regions: timeline.hidden,
        truncated: timeline.truncated,
      },
      death: death ? m(death) : null,
    };
  });

  app.post("/api/v1/suspects/:id/status", async (req) => {
    const user = userOf(req);
    requireRole(user, ["admin", "investigator"], "change a case status");
    const { id } = suspectIdParam.parse(req.params);
    const b = statusBody.parse(req.body ?? {});
    req.fg.filters = { id, run_id: b.run_id, status: b.status, note: b.note.slice(0, 500) };
    const r = await q.suspect(b.run_id, id, user);
    if (!r) throw new HttpError(404, "not_found", "no such suspect (or not in your regions)");
    await q.appendCaseEvent({ runId: b.run_id, id, status: b.status, note: b.note, user: user.name });
    const history = await q.history(b.run_id, id);
    req.fg.rows = 1;
    return { suspect_id: id, case_status: history.at(-1)?.status ?? b.status, history };
  });

  app.get("/api/v1/aggregates", async (req) => {
    const user = userOf(req);
    const a = aggregateQuery.parse(req.query);
    req.fg.filters = describeFilters(a);
    const groups = await q.aggregates(a, user);
    // Every dimension but the top-N institutions partitions the match: its sums are the totals.
    const complete = (["detector", "severity", "region", "month", "status", "rule"] as const)
      .map((d) => groups[d])
      .find((g) => g !== undefined);
    const total = complete
      ? {
          total: complete.reduce((n, g) => n + g.count, 0),
          amount_at_risk_fen: complete.reduce((n, g) => n + g.amount_at_risk_fen, 0),
        }
      : await q.count(a, user);
    const withTitles: Record<string, unknown[]> = { ...groups };
    if (groups.rule) {
      withTitles.rule = groups.rule.map((g) => {
        const info = ruleInfo.get(`${g.detector}/${g.key}`);
        return { ...g, title: info?.title ?? g.key, title_zh: info?.titleZh ?? g.key };
      });
    }
    if (groups.institution) {
      const names = await q.institutionNames(groups.institution.map((g) => g.key));
      withTitles.institution = groups.institution.map((g) => ({ ...g, name: names.get(g.key) ?? "" }));
    }
    req.fg.rows = Object.values(withTitles).reduce((n, list) => n + list.length, 0);
    return {
      total: total.total,
      amount_at_risk_fen: total.amount_at_risk_fen,
      top: a.top,
      groups: withTitles,
    };
  });

  app.get("/api/v1/audit", async (req) => {
    const user = userOf(req);
    requireRole(user, ["admin", "auditor"], "read the audit log");
    const a = auditQuery.parse(req.query);
    req.fg.filters = describeFilters(a);
    const result = await q.audit(a, auditScope(user));
    req.fg.rows = result.rows.length;
    const clear = Masker.clear(user);
    const items = result.rows.map((r) =>
      clear ? r : { ...r, filters: maskAuditFilters(r.filters, masker) },
    );
    return { total: result.total, limit: a.limit, offset: a.offset, items };
  });

  const inputLimits = o.inputLimits ?? DEFAULT_LIMITS;
  const fail = (status: number, code: string, message: string, extra?: Record<string, unknown>) =>
    new HttpError(status, code, message, extra);
  const audited = (req: FastifyRequest, filters: Record<string, unknown>, rows: number) => {
    req.fg.filters = filters;
    req.fg.rows = rows;
  };
  registerCheckRoute(app, {
    store: o.store,
    detectors: o.active ?? activate(detectors, loadCatalogs()),
    retentionDays: o.retentionDays ?? 400,
    latenessDays: o.latenessDays,
    onEngine: o.checkOnEngine,
    limits: inputLimits,
    authorize: (req) => requireRole(userOf(req), ["admin", "investigator", "his"], "check a settlement"),
    audited,
    fail,
  });
  registerIngestRoutes(app, {
    destination: o.ingest,
    limits: inputLimits,
    maxBodyBytes: o.maxIngestBytes ?? DEFAULT_MAX_INGEST_BYTES,
    authorize: (req) => requireRole(userOf(req), ["admin", "ingest"], "ingest records"),
    audited,
    fail,
  });

  const feed = new SuspectFeed(q, o.streamPollMs ?? DEFAULT_STREAM_POLL_MS, log);
  o.onFeed?.(feed);
  registerStreamRoute(app, {
    feed,
    q,
    take: () => streamSlots.take(),
    user: userOf,
    stillValid: (req) => req.fg.token !== null && o.users.lookup(req.fg.token).user !== null,
    toApi: (r, user) => apiSuspect(r, user, false),
    audit: (req, phase, rows, extra = {}) =>
      audit.write({
        ...caller(req),
        route: routeName(req),
        filters: { http_status: 200, phase, ...extra, ...req.fg.filters },
        rows,
        // An end row sorts after its start row, even within the same millisecond.
        at: phase === "start" ? req.fg.started : Math.max(Date.now(), req.fg.started + 1),
      }),
    fail,
  });

  app.addHook("onClose", async () => {
    feed.stop();
    await o.ingest?.close();
    await audit.flush();
  });

  return app;
}
