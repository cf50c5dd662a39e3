// The API's access hardening over embedded chdb: no credential is accepted in a URL or stored
// anywhere in the audit log; rows carry address, user agent and token label; percent-encoded
// and dot-segment paths are authenticated and audited as the plain ones (over a real socket,
// where no client library normalises them); nothing is served when the audit write fails;
// auditors read the audit log of their regions, masked; 401s carry the RFC 6750 challenge;
// /metrics needs a token; rate limits and the export cap answer 429.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { type IncomingMessage, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Suspect } from "../../schemas/index.ts";
import { buildServer, hashToken, UsersFileDirectory } from "../../services/api/index.ts";
import { Masker } from "../../services/api/mask.ts";
import { createLogger } from "../../services/log.ts";
import { Metrics } from "../../services/metrics.ts";
import { chdbConfig, openStore, type Store } from "../../services/store/index.ts";

const A = "341502";
const B = "341503";
const MASK_KEY = "access-test-key";
const T = {
  admin: "fg_admin_access_test_token_0001",
  invA: "fg_inv_a_access_test_token_0002",
  invAClear: "fg_inv_a_clear_access_token_003",
  invB: "fg_inv_b_access_test_token_0004",
  invAB: "fg_inv_ab_access_test_token_005",
  audA: "fg_aud_a_access_test_token_0006",
  audAll: "fg_aud_all_access_test_token_07",
  audClear: "fg_aud_clear_access_token_0008",
  metrics: "fg_metrics_access_test_token_09",
  expired: "fg_expired_access_test_token_10",
};
type Who = keyof typeof T;

const token = (t: string, label?: string, extra: Record<string, string> = {}) => ({
  sha256: hashToken(t),
  ...(label ? { label } : {}),
  ...extra,
});
const USERS = {
  version: 1,
  users: [
    { name: "admin", role: "admin", tokens: [token(T.admin, "ops laptop")] },
    { name: "inv-a", role: "investigator", regions: [A], tokens: [token(T.invA)] },
    { name: "inv-a-clear", role: "investigator", regions: [A], unmask: true, tokens: [token(T.invAClear)] },
    { name: "inv-b", role: "investigator", regions: [B], tokens: [token(T.invB)] },
    { name: "inv-ab", role: "investigator", regions: [A, B], tokens: [token(T.invAB)] },
    { name: "aud-a", role: "auditor", regions: [A], tokens: [token(T.audA)] },
    { name: "aud-all", role: "auditor", tokens: [token(T.audAll)] },
    { name: "aud-clear", role: "auditor", unmask: true, tokens: [token(T.audClear)] },
    { name: "prometheus", role: "metrics", tokens: [token(T.metrics, "scraper")] },
    {
      name: "gone",
      role: "admin",
      tokens: [token(T.expired, "old", { expires_at: "2026-01-01T00:00:00.000Z" })],
    },
  ],
};

function suspect(i: number, o: Partial<Suspect> = {}): Suspect {
  return {
    suspect_id: `acc${String(i).padStart(6, "0")}`,
    detector: "frequent_admission",
    rule: "readmission",
    severity: "WARN",
    person_id: `P-${i % 2 === 0 ? "A" : "B"}${i % 7}`,
    settlement_ids: [`S${i}`, `S${i}-prev`],
    institution_id: i % 2 === 0 ? "H34150200123" : "H34150300456",
    region_code: i % 2 === 0 ? A : B,
    amount_at_risk_fen: 1000 + i,
    event_time: `2025-0${(i % 9) + 1}-1${i % 10}T10:00:00+08:00`,
    detected_at: "2026-01-01T00:00:00.000Z",
    detector_version: "1.0.0",
    evidence: { gap_days: i % 15, note: "x".repeat(300) },
    ...o,
  };
}

const dir = mkdtempSync(join(tmpdir(), "fg-api-access-"));
let store: Store;
let app: Awaited<ReturnType<typeof buildServer>>;
const masker = new Masker(MASK_KEY);

async function server(o: Partial<Parameters<typeof buildServer>[0]> = {}) {
  const usersFile = join(dir, "users.json");
  const users = await UsersFileDirectory.open(usersFile);
  const s = await buildServer({
    store,
    users,
    log: createLogger("api-access-test", "silent"),
    maskKey: MASK_KEY,
    ...o,
  });
  await s.ready();
  return s;
}

beforeAll(async () => {
  store = await openStore(chdbConfig(join(dir, "data")));
  writeFileSync(join(dir, "users.json"), JSON.stringify(USERS));
  await store.writeChanges(
    Array.from({ length: 40 }, (_, i) => ({ op: "upsert" as const, suspect: suspect(i) })),
    { versionOf: (_c, i) => BigInt(i + 1) },
  );
  app = await server({ metrics: new Metrics("serve"), trustProxy: ["127.0.0.1"] });
});

afterAll(async () => {
  await app?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

const auth = (who: Who) => ({ authorization: `Bearer ${T[who]}` });
const get = (who: Who | null, url: string, headers: Record<string, string> = {}) =>
  app.inject({ method: "GET", url, headers: { ...(who ? auth(who) : {}), ...headers } });

interface AuditItem {
  at: string;
  who: string;
  route: string;
  filters: Record<string, unknown>;
  rows: number;
  address: string;
  user_agent: string;
  token_label: string;
}
async function auditAs(who: Who, q = "limit=1000"): Promise<AuditItem[]> {
  const res = await get(who, `/api/v1/audit?${q}`);
  expect(res.statusCode, res.body.slice(0, 300)).toBe(200);
  return (res.json() as { items: AuditItem[] }).items;
}

/** Raw HTTP over a socket: the path goes out exactly as written. */
function raw(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => {
        body += d;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("no credential in a URL or in the audit log", () => {
  it("a token in the query string is refused; no token is stored in any audit row", async () => {
    const inQuery = "fg_query_string_secret_token_42";
    const unknown = "fg_unknown_bearer_token_secret_7";
    for (const q of [
      `token=${inQuery}`,
      `access_token=${inQuery}`,
      `%74oken=${inQuery}`,
      `TOKEN=${inQuery}`,
    ]) {
      const res = await get("admin", `/api/v1/suspects?${q}`);
      expect(res.statusCode, q).toBe(400);
      expect(res.headers["www-authenticate"]).toContain('error="invalid_request"');
      expect(res.body).not.toContain("suspect_id");
    }
    // Without a valid header it is a 401 (a token in the URL is never a credential).
    expect((await get(null, `/api/v1/suspects?token=${T.admin}`)).statusCode).toBe(401);
    expect(
      (await get(null, `/api/v1/suspects/${unknown}`, { authorization: `Bearer ${unknown}` })).statusCode,
    ).toBe(401);
    expect((await get("invA", `/api/v1/suspects?institution=${T.invB}`)).statusCode).toBe(200);
    expect((await get("admin", "/api/v1/me", { "user-agent": `curl/8 (${T.admin})` })).statusCode).toBe(200);
    const note = await app.inject({
      method: "POST",
      url: `/api/v1/suspects/${suspect(0).suspect_id}/status`,
      headers: auth("admin"),
      payload: { status: "under_review", note: `pasted by mistake: ${T.audAll}` },
    });
    expect(note.statusCode).toBe(200);

    const rows = await store.query<Record<string, unknown>>("SELECT * FROM audit_log");
    const text = JSON.stringify(rows);
    for (const secret of [inQuery, unknown, ...Object.values(T)]) expect(text, secret).not.toContain(secret);
    expect(text).toContain("[redacted]");
    // The row of the refused request still says what was asked, without the value.
    const refused = rows.filter((r) => String(r.filters).includes('"http_status":400'));
    expect(refused.length).toBeGreaterThanOrEqual(4);
  });
});

describe("who, from where, with which token", () => {
  it("rows carry the source address (the client behind a trusted proxy), the user agent and the token's label", async () => {
    await get("admin", "/api/v1/suspects?detector=frequent_admission", {
      "user-agent": "fg-access-test/1.0",
      "x-forwarded-for": "203.0.113.7",
    });
    await get("invA", "/api/v1/meta", { "user-agent": "fg-access-test/2.0" });
    const items = await auditAs("admin", "limit=50");
    const listed = items.find((i) => i.who === "admin" && i.user_agent === "fg-access-test/1.0");
    expect(listed).toMatchObject({
      route: "GET /api/v1/suspects",
      address: "203.0.113.7",
      token_label: "ops laptop",
    });
    expect(items.find((i) => i.user_agent === "fg-access-test/2.0")).toMatchObject({
      who: "inv-a",
      address: "127.0.0.1",
      token_label: "",
    });
  });
});

describe("percent-encoded and dot-segment paths", () => {
  const VARIANTS = [
    "/api/v1/%73uspects",
    "/%61pi/v1/suspects",
    "/%61%70%69/v1/%73uspects",
    "//api/v1/suspects",
    "/api//v1/suspects",
    "/ui/../api/v1/suspects",
    "/api/v1/./suspects",
    "/api/v1/%2e/suspects",
    "/api/v1/x/%2E%2E/suspects",
    "/healthz/../api/v1/suspects",
  ];

  it("are authenticated, served and audited exactly as the plain path", async () => {
    await app.listen({ port: 0, host: "127.0.0.1" });
    const { port } = app.server.address() as { port: number };
    const plain = await raw(port, "/api/v1/suspects?limit=5", auth("admin"));
    expect(plain.status).toBe(200);
    const plainTotal = (JSON.parse(plain.body) as { total: number }).total;
    let outcomes = 0;
    for (const path of VARIANTS) {
      const anon = await raw(port, `${path}?limit=5`);
      expect(anon.status, path).toBe(401);
      expect(anon.headers["www-authenticate"], path).toBe('Bearer realm="fundguard"');
      expect(anon.body).not.toContain("suspect_id");
      const ok = await raw(port, `${path}?limit=5`, { ...auth("admin"), "user-agent": `variant ${path}` });
      expect(ok.status, path).toBe(200);
      expect((JSON.parse(ok.body) as { total: number }).total, path).toBe(plainTotal);
      outcomes += 2;
    }
    // Reserved and malformed escapes stay data: still authenticated first, then no such route.
    for (const path of [
      "/api%2Fv1%2Fsuspects",
      "/api/v1/suspects%2Fexport.csv",
      "/API/v1/suspects",
      "/api/v1/%zz",
      "/api/v1/%E0%A4",
    ]) {
      expect((await raw(port, path)).status, path).toBe(401);
      expect((await raw(port, path, auth("admin"))).status, path).toBe(404);
      outcomes += 2;
    }
    expect(outcomes).toBe(30);
    const items = await auditAs("admin", "limit=200&who=admin");
    for (const path of VARIANTS) {
      const row = items.find((i) => i.user_agent === `variant ${path}`);
      expect(row, path).toMatchObject({ route: "GET /api/v1/suspects", rows: 5 });
      expect(row?.filters.http_status).toBe(200);
    }
    const anonRows = await auditAs("admin", "limit=500&who=(unauthenticated)");
    const sent = new Set(anonRows.map((r) => r.filters.raw_path ?? r.filters.path));
    for (const path of VARIANTS) expect(sent.has(path), path).toBe(true);
  });
});

describe("the audit write fails", () => {
  it("refuses the call with 503 and serves nothing, exports included", async () => {
    await store.client.command({ query: "RENAME TABLE audit_log TO audit_log_offline" });
    try {
      for (const [who, url] of [
        ["admin", "/api/v1/suspects"],
        ["admin", "/api/v1/suspects/export.csv"],
        ["invA", "/api/v1/suspects/export.csv?limit=3"],
        ["admin", `/api/v1/suspects/${suspect(0).suspect_id}`],
        [null, "/api/v1/suspects"],
      ] as [Who | null, string][]) {
        const res = await get(who, url);
        expect(res.statusCode, url).toBe(503);
        expect(res.headers["content-type"]).toMatch(/^application\/json/);
        expect(res.headers["content-disposition"]).toBeUndefined();
        expect(res.json()).toEqual({
          error: "audit_unavailable",
          message: "the audit log cannot be written; retry later",
        });
      }
    } finally {
      await store.client.command({ query: "RENAME TABLE audit_log_offline TO audit_log" });
    }
    expect((await get("admin", "/api/v1/suspects")).statusCode).toBe(200);
    // An export is audited before its first byte and again when it ends.
    const csv = await get("admin", "/api/v1/suspects/export.csv?limit=7");
    expect(csv.statusCode).toBe(200);
    const rows = await auditAs(
      "admin",
      `limit=2&route=${encodeURIComponent("GET /api/v1/suspects/export.csv")}`,
    );
    expect(rows.map((r) => [r.filters.phase, r.rows, r.filters.complete])).toEqual([
      ["end", 7, true],
      ["start", 0, undefined],
    ]);
  });
});

describe("the audit log is scoped and masked", () => {
  it("an auditor reads the rows of callers within their regions, person ids masked", async () => {
    await get("invA", "/api/v1/suspects?region=341502");
    await get("invAClear", "/api/v1/suspects?person=P-A1");
    await get("invB", "/api/v1/suspects");
    await get("invAB", "/api/v1/suspects");
    await get("admin", "/api/v1/suspects?person=P-B3");
    await get(null, "/api/v1/suspects?person=P-B5");
    await get("audA", "/api/v1/me");
    const whos = (items: AuditItem[]) => new Set(items.map((i) => i.who));

    const regional = await auditAs("audA");
    expect(whos(regional)).toEqual(new Set(["inv-a", "inv-a-clear", "aud-a"]));
    const text = JSON.stringify(regional);
    expect(text).not.toContain("P-A1");
    expect(text).toContain(masker.pseudonym("P-A1"));

    const all = await auditAs("audAll");
    for (const w of ["admin", "inv-b", "inv-ab", "(unauthenticated)", "aud-a"])
      expect(whos(all).has(w), w).toBe(true);
    const allText = JSON.stringify(all);
    for (const p of ["P-A1", "P-B3", "P-B5"]) {
      expect(allText, p).not.toContain(`${p}"`);
      expect(allText, p).not.toContain(`=${p}`);
      expect(allText, p).toContain(masker.pseudonym(p));
    }

    for (const who of ["audClear", "admin"] as const) {
      const clearText = JSON.stringify(await auditAs(who));
      for (const p of ["P-A1", "P-B3", "P-B5"]) expect(clearText, `${who} ${p}`).toContain(p);
    }
    expect((await get("invA", "/api/v1/audit")).statusCode).toBe(403);
  });
});

describe("401s", () => {
  it("carry the Bearer challenge, with invalid_token for an unknown or expired token", async () => {
    const none = await get(null, "/api/v1/me");
    expect([none.statusCode, none.headers["www-authenticate"]]).toEqual([401, 'Bearer realm="fundguard"']);
    const unknown = await get(null, "/api/v1/me", { authorization: "Bearer fg_no_such_token_anywhere" });
    expect(unknown.statusCode).toBe(401);
    expect(unknown.headers["www-authenticate"]).toMatch(/^Bearer realm="fundguard", error="invalid_token"/);
    const expired = await get("expired", "/api/v1/suspects");
    expect(expired.statusCode).toBe(401);
    expect(expired.headers["www-authenticate"]).toBe(
      'Bearer realm="fundguard", error="invalid_token", error_description="the token has expired"',
    );
    expect(expired.body).not.toContain("suspect_id");
  });
});

describe("/metrics", () => {
  it("needs a token of role admin or metrics, and a metrics token reads nothing else", async () => {
    expect((await get(null, "/metrics")).statusCode).toBe(401);
    expect((await get(null, "/metrics")).headers["www-authenticate"]).toBe('Bearer realm="fundguard"');
    expect((await get("invA", "/metrics")).statusCode).toBe(403);
    expect((await get("audAll", "/metrics")).statusCode).toBe(403);
    const scrape = await get("metrics", "/metrics");
    expect(scrape.statusCode).toBe(200);
    expect(scrape.body).toContain("fundguard_http_requests_total");
    expect((await get("admin", "/metrics")).statusCode).toBe(200);
    for (const url of ["/api/v1/me", "/api/v1/suspects", "/api/v1/audit"])
      expect((await get("metrics", url)).statusCode, url).toBe(403);
  });
});

describe("limits", () => {
  it("rate-limits per token and per source address with 429 and Retry-After, audited", async () => {
    const limited = await server({ limits: { perToken: 5, perAddress: 8 } });
    try {
      const call = (who: Who | null, remoteAddress: string) =>
        limited.inject({ url: "/api/v1/me", headers: who ? auth(who) : {}, remoteAddress });
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) statuses.push((await call("invA", "198.51.100.1")).statusCode);
      expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
      const over = await call("invA", "198.51.100.1");
      expect(Number(over.headers["retry-after"])).toBeGreaterThan(0);
      // Another token from the same address works until the address's own limit.
      expect((await call("invB", "198.51.100.1")).statusCode).toBe(200);
      expect((await call("invB", "198.51.100.1")).statusCode).toBe(429);
      // Unauthenticated calls count against their address only.
      const anon: number[] = [];
      for (let i = 0; i < 9; i++) anon.push((await call(null, "198.51.100.2")).statusCode);
      expect(anon).toEqual([401, 401, 401, 401, 401, 401, 401, 401, 429]);
      expect((await call("invB", "198.51.100.3")).statusCode).toBe(200);
      const rows = (await auditAs("admin", "limit=100&who=inv-a")).filter(
        (r) => r.filters.http_status === 429,
      );
      expect(rows.length).toBeGreaterThanOrEqual(2);
    } finally {
      await limited.close();
    }
  });

  it("caps concurrent exports: 429 beyond the cap, a slot frees when an export ends or is dropped", async () => {
    await store.writeChanges(
      Array.from({ length: 30_000 }, (_, i) => ({ op: "upsert" as const, suspect: suspect(100_000 + i) })),
      { runId: "big", versionOf: (_c, i) => BigInt(i + 1) },
    );
    const capped = await server({ limits: { maxExports: 1 } });
    await capped.listen({ port: 0, host: "127.0.0.1" });
    const { port } = capped.server.address() as { port: number };
    let held: IncomingMessage | undefined;
    try {
      // The first export starts and is left unread: the server blocks on the socket.
      held = await new Promise<IncomingMessage>((resolve, reject) => {
        const req = request(
          { host: "127.0.0.1", port, path: "/api/v1/suspects/export.csv?run_id=big", headers: auth("admin") },
          (res) => {
            res.pause();
            resolve(res);
          },
        );
        req.on("error", reject);
        req.end();
      });
      expect(held.statusCode).toBe(200);
      const second = await raw(port, "/api/v1/suspects/export.csv?limit=1", auth("invA"));
      expect(second.status).toBe(429);
      expect(JSON.parse(second.body)).toMatchObject({ error: "too_many_exports" });
      held.destroy();
      let third = await raw(port, "/api/v1/suspects/export.csv?limit=2", auth("invA"));
      for (let i = 0; i < 50 && third.status === 429; i++) {
        await new Promise((r) => setTimeout(r, 100));
        third = await raw(port, "/api/v1/suspects/export.csv?limit=2", auth("invA"));
      }
      expect(third.status).toBe(200);
      expect(third.body.split("\r\n").filter(Boolean)).toHaveLength(3);
    } finally {
      held?.destroy();
      await capped.close();
    }
  });
});
