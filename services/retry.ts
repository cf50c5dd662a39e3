// Waiting out an unavailable dependency: capped exponential backoff with jitter, retried until it
// answers or the caller stops. Pure policy plus one loop, so every consumer loop uses the same one.

export interface BackoffPolicy {
  /** Ceiling of the first delay. */
  initialMs: number;
  /** No delay is longer than this. */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 200, maxMs: 30_000 };

/** The default policy with another cap (FUNDGUARD_BACKOFF_MAX_MS). */
export const backoffUpTo = (maxMs: number): BackoffPolicy => ({
  initialMs: Math.min(DEFAULT_BACKOFF.initialMs, maxMs),
  maxMs,
});

/**
 * The delay before retry `attempt` (1 for the first): the ceiling doubles from `initialMs` up to
 * `maxMs`, and the delay is drawn from its upper half ("equal jitter"), so workers that failed
 * together spread out, yet none retries in a tight loop.
 */
export function backoffDelay(
  policy: BackoffPolicy,
  attempt: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(Math.max(attempt, 1) - 1, 52));
  return ceiling / 2 + (random() * ceiling) / 2;
}

/** Resolves after `ms`, or rejects with the signal's reason once it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * A wait that calls `tick` at least every `sliceMs` (a Kafka consumer's heartbeat), so a member
 * waiting out an outage inside its batch handler stays in its group.
 */
export function tickingWait(tick: () => Promise<void>, sliceMs = 1_000) {
  return async (ms: number, signal?: AbortSignal): Promise<void> => {
    const until = Date.now() + ms;
    for (let left = ms; left > 0; left = until - Date.now()) {
      await sleep(Math.min(sliceMs, left), signal);
      await tick();
    }
  };
}

/** Settles as `p` does, calling `tick` every `sliceMs` until then. */
export async function awaitTicking<T>(p: Promise<T>, tick: () => Promise<void>, sliceMs = 1_000): Promise<T> {
  let settled = false;
  const done = p.finally(() => {
    settled = true;
  });
  while (!settled) {
    await Promise.race([done.catch(() => undefined), sleep(sliceMs)]);
    if (!settled) await tick();
  }
  return done;
}

export interface RetryOptions {
  policy: BackoffPolicy;
  /** Errors worth waiting out (default: all); any other is thrown at once. */
  retryable?: (e: unknown) => boolean;
  /** Called before each wait, with the failure and the delay chosen. */
  onRetry?: (e: unknown, attempt: number, delayMs: number) => void;
  /** Stops the retries: the pending wait rejects with the signal's reason. */
  signal?: AbortSignal;
  wait?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
}

/** Runs `op` until it succeeds; between failures waits as the policy says. No attempt limit. */
export async function retry<T>(op: () => Promise<T>, o: RetryOptions): Promise<T> {
  const wait = o.wait ?? sleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await op();
    } catch (e) {
      if (o.signal?.aborted) throw o.signal.reason;
      if (o.retryable && !o.retryable(e)) throw e;
      const delay = backoffDelay(o.policy, attempt, o.random);
      o.onRetry?.(e, attempt, delay);
      await wait(delay, o.signal);
    }
  }
}
