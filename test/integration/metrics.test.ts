// A live worker's Prometheus endpoint, and its graceful stop on SIGTERM.
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { addUser, UsersFileDirectory } from "../../services/api/auth.ts";
import { buildServer } from "../../services/api/server.ts";
import { generate } from "../../services/generate/generate.ts";
import { createLogger } from "../../services/log.ts";
import { Metrics } from "../../services/metrics.ts";
import { chdbConfig, openStore } from "../../services/store/index.ts";
import {
  cli,
  freePort,
  killStrays,
  pipelineEnv,
  sleep,
  spawnCli,
  tempDir,
  metricTotal as total,
} from "./harness.ts";

afterEach(killStrays);

describe("worker metrics", () => {
  it("exposes consumption, suspects, dead letters, latency, lag and state; SIGTERM stops it cleanly", async () => {
    const g = await generate({
      outDir: join(tempDir("metrics"), "in"),
      settlements: 5_000,
      seed: 9,
      schemeRate: 0.1,
    });
    const port = await freePort();
    const env = pipelineEnv("metrics", {
      FUNDGUARD_METRICS_PORT: String(port),
      FUNDGUARD_COMMIT_INTERVAL_MS: "200",
    });
    const replay = await cli(
      ["replay", "--settlements", g.files.settlements, "--deaths", g.files.deaths],
      env,
    );
    const m = /replay: (\d+) settlements, (\d+) death records/.exec(replay.stderr);
    const events = Number(m?.[1]) + Number(m?.[2]);
    const worker = spawnCli(["worker"], env);
    let text = "";
    for (let i = 0; i < 300 && total(text, "fundguard_events_consumed_total") < events; i++) {
      await sleep(200);
      text = await fetch(`http://127.0.0.1:${port}/metrics`).then(
        (r) => r.text(),
        () => "",
      );
    }
    expect(total(text, "fundguard_events_consumed_total"), worker.stdoutAndErr()).toBe(events);
    expect(total(text, "fundguard_suspect_changes_total")).toBeGreaterThan(0);
    expect(text).toMatch(/fundguard_suspect_changes_total\{detector="pediatric_drug",op="upsert"/);
    expect(text).toContain("fundguard_dead_letters_total");
    expect(total(text, "fundguard_batch_duration_seconds_count")).toBeGreaterThan(0);
    expect(text).toContain("fundguard_sink_duration_seconds_bucket");
    expect(text).toContain("fundguard_consumer_lag{");
    expect(total(text, "fundguard_state_persons")).toBeGreaterThan(0);
    expect(text).toContain("process_cpu_seconds_total");

    worker.kill("SIGTERM");
    const r = await worker.result;
    expect(r.code, r.stderr).toBe(0);
  });
});

describe("server metrics", () => {
  it("counts API requests by route and status at /metrics, for a metrics token", async () => {
    const store = await openStore(chdbConfig(join(tempDir("srv-metrics"), "data")));
    const usersFile = join(tempDir("srv-users"), "users.json");
    // /metrics is not public: a scraper reads it with a token of role metrics.
    const { token } = await addUser(usersFile, { name: "prometheus", role: "metrics" });
    const users = await UsersFileDirectory.open(usersFile);
    const app = await buildServer({
      store,
      users,
      log: createLogger("test", "silent"),
      metrics: new Metrics("serve"),
    });
    try {
      expect((await app.inject({ url: "/api/v1/suspects" })).statusCode).toBe(401);
      const res = await app.inject({ url: "/metrics", headers: { authorization: `Bearer ${token}` } });
      expect(res.statusCode).toBe(200);
      expect(res.body).toMatch(
        /fundguard_http_requests_total\{method="GET",route="\/api\/v1\/suspects",status="401",service="serve"\} 1/,
      );
      expect(res.body).toContain("fundguard_http_request_duration_seconds_bucket");
    } finally {
      await app.close();
      await store.close();
    }
  });
});
