// The text-level defences of the API: one canonical spelling per path, no credential in what
// is logged or audited (pino's redaction included), and the safe defaults of the environment.
import { Writable } from "node:stream";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { canonicalUrl, isApiUrl } from "../../services/api/paths.ts";
import { redactDeep, redactQuery, redactText } from "../../services/api/secrets.ts";
import { loadEnv } from "../../services/config/env.ts";
import { loggerOptions } from "../../services/log.ts";

describe("canonical paths", () => {
  const SAME_AS_SUSPECTS = [
    "/api/v1/%73uspects",
    "/api/v1/%73%75%73%70%65%63%74%73",
    "/%61pi/v1/suspects",
    "/%41%50%49/../api/v1/suspects",
    "//api/v1/suspects",
    "/api//v1///suspects",
    "/ui/../api/v1/suspects",
    "/api/v1/./suspects",
    "/api/v1/x/../suspects",
    "/api/v1/suspects/%2e%2e/suspects",
    "/api/v1/suspects/%2E%2E/suspects",
    "/../../api/v1/suspects",
    "http://evil.example/api/v1/suspects",
  ];
  it.each(SAME_AS_SUSPECTS)("%s is /api/v1/suspects", (url) => {
    expect(canonicalUrl(url)).toBe("/api/v1/suspects");
    expect(isApiUrl(canonicalUrl(url))).toBe(true);
  });

  it("keeps the query as sent, and reserved escapes encoded", () => {
    expect(canonicalUrl("/api/v1/%73uspects?detector=%73x&a=..")).toBe("/api/v1/suspects?detector=%73x&a=..");
    expect(canonicalUrl("/api/v1/suspects%2fexport.csv")).toBe("/api/v1/suspects%2Fexport.csv");
    // Malformed escapes become literal text, so the router decodes every path (no bare 400).
    expect(canonicalUrl("/api/v1/%zz/%")).toBe("/api/v1/%25zz/%25");
    expect(canonicalUrl("/api/v1/suspects/%E0%A4%A?x=%zz")).toBe("/api/v1/suspects/%25E0%25A4%25A?x=%zz");
    expect(canonicalUrl("/")).toBe("/");
    expect(canonicalUrl("/ui/app.js")).toBe("/ui/app.js");
  });

  it("treats as API whatever is /api in any case or once reserved escapes are decoded", () => {
    for (const url of ["/api", "/API/v1/suspects", "/api%2Fv1%2Fsuspects", "/api%2fv1", "/Api?x=1"])
      expect(isApiUrl(canonicalUrl(url)), url).toBe(true);
    for (const url of ["/", "/apix", "/ui/app.js", "/healthz", "/metrics", "/ap%69x"])
      expect(isApiUrl(canonicalUrl(url)), url).toBe(false);
  });
});

describe("secrets are stripped", () => {
  const token = "fg_AAAAbbbbCCCCddddEEEEffffGGGGhhhhIIIIjjjjKKK";
  it("from query strings: secret-named parameters and any part hiding a token", () => {
    expect(redactQuery(`detector=x&token=${token}&ACCESS_TOKEN=abc&%74oken=def&api_key=1`)).toBe(
      "detector=x&token=[redacted]&ACCESS_TOKEN=[redacted]&%74oken=[redacted]&api_key=[redacted]",
    );
    expect(redactQuery(`institution=${encodeURIComponent(token)}`)).toBe("[redacted]");
    expect(redactQuery(`institution=%66g_${"a".repeat(20)}`)).toBe("[redacted]");
    expect(redactQuery("institution=H1&person=P1")).toBe("institution=H1&person=P1");
  });

  it("from text and nested values, including the very token the caller sent", () => {
    expect(redactText(`note with ${token} inside`)).toBe("note with [redacted] inside");
    expect(redactText("Bearer not-fg-shaped-secret", ["not-fg-shaped-secret"])).toBe("Bearer [redacted]");
    expect(redactDeep({ a: [{ password: "x", note: token }], Authorization: "Bearer y", n: 1 })).toEqual({
      a: [{ password: "[redacted]", note: "[redacted]" }],
      Authorization: "[redacted]",
      n: 1,
    });
  });

  it("from pino log lines by path", () => {
    let out = "";
    const sink = new Writable({
      write(chunk, _enc, done) {
        out += String(chunk);
        done();
      },
    });
    const log = pino(loggerOptions("test", "info"), sink);
    log.info({ headers: { authorization: `Bearer ${token}` }, token }, "one");
    log.info({ req: { headers: { authorization: `Bearer ${token}`, cookie: "s=1" } } }, "two");
    log.info({ query: { token, detector: "x" }, user: { password: "hunter2" } }, "three");
    expect(out.split("\n").filter(Boolean)).toHaveLength(3);
    expect(out).not.toContain(token);
    expect(out).not.toContain("hunter2");
    expect(out).not.toContain("s=1");
    expect(out).toContain('"detector":"x"');
  });
});

describe("safe defaults of the environment", () => {
  it("listens on loopback, tokens live 90 days, limits are set, no proxy is trusted", () => {
    const env = loadEnv({});
    expect(env.HOST).toBe("127.0.0.1");
    expect(env.FUNDGUARD_TOKEN_TTL_DAYS).toBe(90);
    expect(env.FUNDGUARD_TRUST_PROXY).toBe(false);
    expect([
      env.FUNDGUARD_RATE_LIMIT_TOKEN,
      env.FUNDGUARD_RATE_LIMIT_ADDRESS,
      env.FUNDGUARD_MAX_EXPORTS,
    ]).toEqual([6000, 12000, 2]);
    expect(loadEnv({ HOST: "0.0.0.0", FUNDGUARD_TRUST_PROXY: "127.0.0.1, 10.0.0.0/8" })).toMatchObject({
      HOST: "0.0.0.0",
      FUNDGUARD_TRUST_PROXY: ["127.0.0.1", "10.0.0.0/8"],
    });
    expect(() => loadEnv({ FUNDGUARD_TOKEN_TTL_DAYS: "0" })).toThrow(/FUNDGUARD_TOKEN_TTL_DAYS/);
    expect(() => loadEnv({ FUNDGUARD_USER: "a b" })).toThrow(/FUNDGUARD_USER/);
  });
});
