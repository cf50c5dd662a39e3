// Prometheus metrics shared by the worker, the sink and the server (prom-client).
import { createServer, type Server } from "node:http";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { HealthReport } from "./health.ts";

export class Metrics {
  readonly registry = new Registry();
  readonly eventsConsumed = new Counter({
    name: "fundguard_events_consumed_total",
    help: "Input events consumed, by topic",
    labelNames: ["topic"],
    registers: [this.registry],
  });
  readonly deadLetters = new Counter({
    name: "fundguard_dead_letters_total",
    help: "Input messages sent to the dead-letter topic",
    labelNames: ["topic"],
    registers: [this.registry],
  });
  readonly suspectChanges = new Counter({
    name: "fundguard_suspect_changes_total",
    help: "Suspect changes emitted, by detector and operation (upsert, retract)",
    labelNames: ["detector", "op"],
    registers: [this.registry],
  });
  readonly tooLate = new Counter({
    name: "fundguard_events_too_late_total",
    help: "Events older than the state retention behind the newest event of their partition",
    registers: [this.registry],
  });
  readonly batchSeconds = new Histogram({
    name: "fundguard_batch_duration_seconds",
    help: "Time to decode, validate and evaluate one fetched batch",
    buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly flushSeconds = new Histogram({
    name: "fundguard_sink_duration_seconds",
    help: "Time to durably write a flush (suspects, dead letters, state) and commit offsets",
    buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly archiveFallbacks = new Counter({
    name: "fundguard_archive_fallback_total",
    help: "Flushes whose archive ClickHouse refused as raw bytes (a parse error), written through JS rows instead, by table",
    labelNames: ["table"],
    registers: [this.registry],
  });
  readonly lag = new Gauge({
    name: "fundguard_consumer_lag",
    help: "Messages behind the end of the input partitions assigned to this process",
    labelNames: ["topic", "partition"],
    registers: [this.registry],
  });
  readonly statePersons = new Gauge({
    name: "fundguard_state_persons",
    help: "Persons with retained state in this process",
    registers: [this.registry],
  });
  readonly degraded = new Gauge({
    name: "fundguard_degraded",
    help: "1 while this process waits out an unavailable dependency (store, registry, broker)",
    labelNames: ["dependency"],
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: "fundguard_retries_total",
    help: "Retries of a failed call to a dependency, after a backoff",
    labelNames: ["dependency"],
    registers: [this.registry],
  });

  readonly httpRequests = new Counter({
    name: "fundguard_http_requests_total",
    help: "HTTP requests served, by route and status",
    labelNames: ["method", "route", "status"],
    registers: [this.registry],
  });
  readonly httpSeconds = new Histogram({
    name: "fundguard_http_request_duration_seconds",
    help: "HTTP request latency, by route",
    labelNames: ["route"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  constructor(service: string) {
    this.registry.setDefaultLabels({ service });
    collectDefaultMetrics({ register: this.registry });
  }

  /**
   * Serves GET /metrics on `port` (0 picks a free port), and GET /healthz from `health`: 200 when
   * ok, 503 while degraded, JSON either way.
   */
  async listen(port: number, host = "0.0.0.0", health?: () => HealthReport): Promise<Server> {
    const server = createServer(async (req, res) => {
      if (req.url === "/healthz" && health) {
        const report = health();
        res.writeHead(report.status === "ok" ? 200 : 503, { "content-type": "application/json" });
        res.end(JSON.stringify(report));
        return;
      }
      if (req.url !== "/metrics") {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "content-type": this.registry.contentType });
      res.end(await this.registry.metrics());
    });
    await new Promise<void>((resolve) => server.listen(port, host, resolve));
    return server;
  }
}
