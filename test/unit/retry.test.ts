// The backoff policy and the retry loop every consumer uses to wait out a dependency, and the
// health report built from them.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Health } from "../../services/health.ts";
import { createLogger } from "../../services/log.ts";
import { Metrics } from "../../services/metrics.ts";
import {
  awaitTicking,
  backoffDelay,
  backoffUpTo,
  DEFAULT_BACKOFF,
  retry,
  sleep,
  tickingWait,
} from "../../services/retry.ts";

const policy = { initialMs: 100, maxMs: 1_000 };

describe("backoffDelay", () => {
  it("doubles the ceiling from the initial delay up to the cap", () => {
    const ceilings = [1, 2, 3, 4, 5, 6, 50, 10_000].map((a) => backoffDelay(policy, a, () => 1));
    expect(ceilings).toEqual([100, 200, 400, 800, 1_000, 1_000, 1_000, 1_000]);
  });

  it("draws from the upper half of the ceiling: never 0, never above the cap", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, r) => {
          const ceiling = backoffDelay(policy, attempt, () => 1);
          const d = backoffDelay(policy, attempt, () => r);
          return d >= ceiling / 2 && d <= ceiling && d <= policy.maxMs && d >= policy.initialMs / 2;
        },
      ),
    );
  });

  it("spreads workers that failed together", () => {
    const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(policy, 4)));
    expect(delays.size).toBeGreaterThan(40);
  });

  it("backoffUpTo keeps the default start under a smaller cap", () => {
    expect(backoffUpTo(5_000)).toEqual({ initialMs: DEFAULT_BACKOFF.initialMs, maxMs: 5_000 });
    expect(backoffUpTo(100)).toEqual({ initialMs: 100, maxMs: 100 });
  });
});

describe("retry", () => {
  it("retries until the call succeeds, waiting the policy's delays in between", async () => {
    let calls = 0;
    const waits: number[] = [];
    const seen: number[] = [];
    const result = await retry(
      async () => {
        if (++calls < 5) throw new Error(`down ${calls}`);
        return "up";
      },
      {
        policy,
        random: () => 1,
        wait: async (ms) => {
          waits.push(ms);
        },
        onRetry: (_e, attempt) => seen.push(attempt),
      },
    );
    expect(result).toBe("up");
    expect(waits).toEqual([100, 200, 400, 800]);
    expect(seen).toEqual([1, 2, 3, 4]);
  });

  it("throws an error that is not worth waiting out at once", async () => {
    let calls = 0;
    const bug = new TypeError("a bug");
    await expect(
      retry(
        async () => {
          calls++;
          throw bug;
        },
        { policy, retryable: (e) => !(e instanceof TypeError) },
      ),
    ).rejects.toBe(bug);
    expect(calls).toBe(1);
  });

  it("a stop ends the wait with the stop's reason and calls nothing more", async () => {
    const stop = new AbortController();
    const reason = new Error("stopping");
    let calls = 0;
    const run = retry(
      async () => {
        calls++;
        throw new Error("down");
      },
      { policy: { initialMs: 60_000, maxMs: 60_000 }, signal: stop.signal },
    );
    await sleep(20);
    stop.abort(reason);
    await expect(run).rejects.toBe(reason);
    expect(calls).toBe(1);
  });
});

describe("waiting in a consumer group", () => {
  it("tickingWait heartbeats about once per slice while it waits, and waits the whole time", async () => {
    const t0 = Date.now();
    const ticks: number[] = [];
    await tickingWait(async () => {
      ticks.push(Date.now());
    }, 50)(300);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(295);
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    const gaps = ticks.map((t, i) => t - (i === 0 ? t0 : (ticks[i - 1] as number)));
    // Slack for a loaded machine; the point is that no gap approaches a session timeout.
    expect(Math.max(...gaps)).toBeLessThan(200);
  });

  it("a heartbeat that fails (a rebalance) ends the wait with its error", async () => {
    const rebalance = new Error("The group is rebalancing");
    await expect(
      tickingWait(async () => {
        throw rebalance;
      }, 10)(1_000),
    ).rejects.toBe(rebalance);
  });

  it("awaitTicking heartbeats until the promise settles, and settles as it does", async () => {
    let ticks = 0;
    const tick = async () => {
      ticks++;
    };
    expect(
      await awaitTicking(
        sleep(100).then(() => 7),
        tick,
        20,
      ),
    ).toBe(7);
    expect(ticks).toBeGreaterThanOrEqual(3);
    const failed = new Error("flush failed");
    await expect(
      awaitTicking(
        sleep(30).then(() => Promise.reject(failed)),
        tick,
        10,
      ),
    ).rejects.toBe(failed);
    ticks = 0;
    expect(await awaitTicking(Promise.resolve(1), tick, 10)).toBe(1);
    expect(ticks).toBe(0);
  });
});

describe("Health", () => {
  const monitored = () => {
    const metrics = new Metrics("test");
    const log = createLogger("test", "silent");
    return { metrics, health: new Health({ log, metrics, policy: { initialMs: 5, maxMs: 5 } }) };
  };

  it("is degraded, with the reason, while a dependency is retried; ok again once it answers", async () => {
    const { metrics, health } = monitored();
    expect(health.report()).toEqual({ status: "ok" });
    let calls = 0;
    let during: ReturnType<Health["report"]> | undefined;
    let gauge = "";
    const result = await health.retry("store", async () => {
      calls++;
      if (calls === 3) {
        during = health.report();
        gauge = await metrics.registry.metrics();
      }
      if (calls < 4) throw new Error(`Too many parts (${calls})`);
      return calls;
    });
    expect(result).toBe(4);
    expect(during).toMatchObject({
      status: "degraded",
      degraded: [{ dependency: "store", reason: "Too many parts (2)", retries: 2 }],
    });
    expect(gauge).toMatch(/fundguard_degraded\{dependency="store",service="test"\} 1/);
    expect(health.report()).toEqual({ status: "ok" });
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/fundguard_retries_total\{dependency="store",service="test"\} 3/);
    expect(text).toMatch(/fundguard_degraded\{dependency="store",service="test"\} 0/);
    expect(text).toMatch(/fundguard_degraded\{dependency="registry",service="test"\} 0/);
  });

  it("/healthz answers 503 with the report while degraded, 200 when ok", async () => {
    const { metrics, health } = monitored();
    const server = await metrics.listen(0, "127.0.0.1", () => health.report());
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/healthz`;
    try {
      let seen: { status: number; body: unknown } | undefined;
      let calls = 0;
      await health.retry("registry", async () => {
        if (calls++ === 0) throw new Error("connect ECONNREFUSED");
        const res = await fetch(url);
        seen = { status: res.status, body: await res.json() };
      });
      expect(seen?.status).toBe(503);
      expect(seen?.body).toMatchObject({
        status: "degraded",
        degraded: [{ dependency: "registry", reason: "connect ECONNREFUSED", retries: 1 }],
      });
      const res = await fetch(url);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: "ok" });
    } finally {
      server.close();
    }
  });
});
