// The audit log writer: every API call becomes one `audit_log` row. Calls that arrive while
// an INSERT is running are written together by the next one (group commit), so a busy API
// costs one INSERT per round, not one per request, and a response is released only after
// its audit row is written.
import type { Store } from "../store/index.ts";
import { chTime } from "./filters.ts";

export interface AuditRecord {
  who: string;
  route: string;
  filters: Record<string, unknown>;
  rows: number;
  at: number;
}

interface Pending {
  record: AuditRecord;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class AuditWriter {
  private queue: Pending[] = [];
  private running: Promise<void> | null = null;

  constructor(private readonly store: Store) {}

  write(record: AuditRecord): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ record, resolve, reject });
      if (!this.running) this.running = this.drain();
    });
  }

  /** Resolves when everything queued so far is written. */
  async flush(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        try {
          await this.store.client.insert({
            table: "audit_log",
            format: "JSONEachRow",
            values: batch.map(({ record: r }) => ({
              at: chTime(r.at),
              who: r.who,
              route: r.route,
              filters: JSON.stringify(r.filters),
              rows: r.rows,
            })),
            clickhouse_settings: { async_insert: 0 },
          });
          for (const p of batch) p.resolve();
        } catch (err) {
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.running = null;
    }
  }
}
