// Request limits of the API: a fixed one-minute window per source address (every request,
// authenticated or not, so token guessing and floods cost the sender) and per token (what one
// credential may pull), with @fastify/rate-limit's in-memory store; and a cap on exports
// streaming at once, each of which holds a ClickHouse read open for its whole length.
import type { IncomingMessage, ServerResponse } from "node:http";
import rateLimit from "@fastify/rate-limit";
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest, RawServerDefault } from "fastify";
import type { AccessLimits } from "../config/env.ts";

const WINDOW_MS = 60_000;

interface Verdict {
  limited: boolean;
  retryAfterSeconds: number;
}

/** Registers the plugin and returns the two checks, to run from the authentication hook. */
export async function rateLimiters<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, L>,
  limits: AccessLimits,
) {
  await app.register(rateLimit, { global: false, timeWindow: WINDOW_MS });
  const byAddress = app.createRateLimit({ max: limits.perAddress });
  const byToken = app.createRateLimit({
    max: limits.perToken,
    keyGenerator: (req: FastifyRequest) => `token:${req.fg.tokenHash}`,
  });
  const verdict = (r: Awaited<ReturnType<typeof byAddress>>): Verdict =>
    r.isAllowed || !r.isExceeded
      ? { limited: false, retryAfterSeconds: 0 }
      : { limited: true, retryAfterSeconds: r.ttlInSeconds };
  return {
    address: async (req: FastifyRequest) => verdict(await byAddress(req)),
    token: async (req: FastifyRequest) => verdict(await byToken(req)),
  };
}

/** Export slots: `take()` is false when every slot is busy; `release` is safe to call more than once. */
export class ExportSlots {
  private busy = 0;

  constructor(private readonly max: number) {}

  take(): (() => void) | null {
    if (this.busy >= this.max) return null;
    this.busy++;
    let held = true;
    return () => {
      if (held) this.busy--;
      held = false;
    };
  }
}
