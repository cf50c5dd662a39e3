// Which dependency a process is waiting out, for /healthz, the metrics and the logs.
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { type BackoffPolicy, type RetryOptions, retry } from "./retry.ts";

const DEPENDENCIES = ["store", "registry", "broker"] as const;
export type Dependency = (typeof DEPENDENCIES)[number];

export interface Outage {
  dependency: Dependency;
  reason: string;
  since: string;
  retries: number;
}

export type HealthReport = { status: "ok" } | { status: "degraded"; degraded: Outage[] };

export interface HealthOptions {
  log: Logger;
  policy: BackoffPolicy;
  metrics?: Metrics;
  /**
   * Where this instance's failures and recoveries go instead of its own report, log and metrics: a
   * lane thread forwards them to the process's Health, which /healthz reads.
   */
  forward?: OutageListener;
}

/** Told when a dependency starts failing (each retry) and when it works again. */
export interface OutageListener {
  failing(dependency: Dependency, e: unknown, attempt: number, delayMs: number): void;
  recovered(dependency: Dependency): void;
}

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

export class Health implements OutageListener {
  private readonly down = new Map<Dependency, Outage>();

  constructor(private readonly o: HealthOptions) {
    for (const dependency of DEPENDENCIES) o.metrics?.degraded.set({ dependency }, 0);
  }

  report(): HealthReport {
    if (this.down.size === 0) return { status: "ok" };
    return { status: "degraded", degraded: [...this.down.values()].map((o) => ({ ...o })) };
  }

  /** `op` retried with the backoff policy while `dependency` fails; degraded meanwhile. */
  async retry<T>(
    dependency: Dependency,
    op: () => Promise<T>,
    o: Omit<RetryOptions, "policy" | "onRetry"> = {},
  ): Promise<T> {
    let failed = false;
    const listener = this.o.forward ?? this;
    const result = await retry(op, {
      ...o,
      policy: this.o.policy,
      onRetry: (e, attempt, delayMs) => {
        failed = true;
        listener.failing(dependency, e, attempt, delayMs);
      },
    });
    if (failed) listener.recovered(dependency);
    return result;
  }

  failing(dependency: Dependency, e: unknown, attempt: number, delayMs: number): void {
    const reason = messageOf(e);
    const outage = this.down.get(dependency);
    if (outage) {
      outage.reason = reason;
      outage.retries++;
    } else {
      this.down.set(dependency, { dependency, reason, since: new Date().toISOString(), retries: 1 });
      this.o.metrics?.degraded.set({ dependency }, 1);
    }
    this.o.metrics?.retries.inc({ dependency });
    this.o.log.warn(
      { dependency, attempt, retry_in_ms: Math.round(delayMs), err: e },
      `${dependency} unavailable: waiting it out`,
    );
  }

  recovered(dependency: Dependency): void {
    const outage = this.down.get(dependency);
    if (!outage) return;
    this.down.delete(dependency);
    this.o.metrics?.degraded.set({ dependency }, 0);
    this.o.log.info(
      { dependency, since: outage.since, retries: outage.retries },
      `${dependency} available again`,
    );
  }
}
