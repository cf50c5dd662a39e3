// NDJSON files → Kafka topics, validated, Avro-encoded, through the transport's idempotent producer.
// Records go to their key's partition as Java clients place them, so each request carries a full
// record batch per partition; the next requests are encoded while one is in flight.
import { statSync } from "node:fs";
import type { Limits } from "../../schemas/limits.ts";
import { type BadLine, fileEvents } from "../ingest/ndjson-source.ts";
import { keyPartition } from "../kafka/partition.ts";
import { type OutMessage, produceRequests, sendRequest } from "../kafka/produce.ts";
import type { AvroSerde } from "../kafka/serde.ts";
import type { Topics } from "../kafka/topics.ts";
import type { KafkaTransport } from "../kafka/transport.ts";

export interface ProduceFilesOptions {
  transport: KafkaTransport;
  serde: AvroSerde;
  topics: Topics;
  settlements?: string;
  deaths?: string;
  onBad: (b: BadLine) => void;
  /** Bytes read of all files, of the total: for a progress bar. */
  onProgress?: (read: number, total: number) => void;
  /** Records encoded before they are cut into requests (each partition's share ≤ one record batch). */
  batchSize?: number;
  limits?: Limits;
}

export interface ProduceSummary {
  settlements: number;
  deaths: number;
  badLines: number;
}

export async function produceFiles(o: ProduceFilesOptions): Promise<ProduceSummary> {
  const files = [
    { path: o.settlements, kind: "settlement" as const, topic: o.topics.settlements },
    { path: o.deaths, kind: "death" as const, topic: o.topics.deaths },
  ].filter((f): f is typeof f & { path: string } => f.path !== undefined);
  const total = files.reduce((sum, f) => sum + statSync(f.path).size, 0);
  const summary: ProduceSummary = { settlements: 0, deaths: 0, badLines: 0 };
  const admin = o.transport.admin();
  const partitions = new Map<string, number>();
  try {
    for (const f of files) partitions.set(f.topic, await admin.partitions(f.topic));
  } finally {
    await admin.close();
  }
  const producer = o.transport.producer();
  const batchSize = o.batchSize ?? 10_000;
  let doneBytes = 0;
  // One send at a time keeps each key's records in order; the reading and encoding go on meanwhile.
  let inFlight: Promise<void> = Promise.resolve();
  try {
    for (const f of files) {
      const n = partitions.get(f.topic) ?? 0;
      if (n === 0) throw new Error(`${f.topic}: no such topic`);
      let pending: OutMessage[] = [];
      const send = async () => {
        if (pending.length === 0) return;
        const requests = produceRequests([{ topic: f.topic, messages: pending }]);
        pending = [];
        await inFlight;
        inFlight = (async () => {
          for (const r of requests) await sendRequest(producer, r);
        })();
        // Observed by the next send or at the end; never an unhandled rejection meanwhile.
        inFlight.catch(() => undefined);
      };
      const onBad = (b: BadLine) => {
        summary.badLines++;
        o.onBad(b);
      };
      const read = { limits: o.limits, onRead: (b: number) => o.onProgress?.(doneBytes + b, total) };
      for await (const events of fileEvents(f.path, f.kind, onBad, read)) {
        for (const { event } of events) {
          const value = o.serde.encodeEvent(event);
          const key = Buffer.from(event.value.person_id);
          pending.push({ key, value, partition: keyPartition(key, n) });
          if (f.kind === "settlement") summary.settlements++;
          else summary.deaths++;
          if (pending.length >= batchSize) await send();
        }
      }
      await send();
      doneBytes += statSync(f.path).size;
      o.onProgress?.(doneBytes, total);
    }
    await inFlight;
  } finally {
    await producer.close();
  }
  return summary;
}
