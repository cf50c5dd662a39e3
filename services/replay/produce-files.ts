// NDJSON files → Kafka topics, validated, Avro-encoded, batched through an idempotent producer.
import { statSync } from "node:fs";
import type { Kafka, Message } from "kafkajs";
import type { Limits } from "../../schemas/limits.ts";
import { type BadLine, fileEvents } from "../ingest/ndjson-source.ts";
import { idempotentProducer, sendAll } from "../kafka/client.ts";
import type { AvroSerde } from "../kafka/serde.ts";
import type { Topics } from "../kafka/topics.ts";

export interface ProduceFilesOptions {
  kafka: Kafka;
  serde: AvroSerde;
  topics: Topics;
  settlements?: string;
  deaths?: string;
  onBad: (b: BadLine) => void;
  /** Bytes read of all files, of the total: for a progress bar. */
  onProgress?: (read: number, total: number) => void;
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
  const producer = idempotentProducer(o.kafka);
  await producer.connect();
  const batchSize = o.batchSize ?? 5_000;
  let doneBytes = 0;
  try {
    for (const f of files) {
      let pending: Message[] = [];
      const send = async () => {
        if (pending.length === 0) return;
        await sendAll(producer, [{ topic: f.topic, messages: pending }]);
        pending = [];
      };
      const onBad = (b: BadLine) => {
        summary.badLines++;
        o.onBad(b);
      };
      const read = { limits: o.limits, onRead: (b: number) => o.onProgress?.(doneBytes + b, total) };
      for await (const events of fileEvents(f.path, f.kind, onBad, read)) {
        for (const { event } of events) {
          const value =
            event.kind === "settlement"
              ? o.serde.encode("settlement", event.value)
              : o.serde.encode("death", event.value);
          pending.push({ key: event.value.person_id, value });
          if (f.kind === "settlement") summary.settlements++;
          else summary.deaths++;
          if (pending.length >= batchSize) await send();
        }
      }
      await send();
      doneBytes += statSync(f.path).size;
      o.onProgress?.(doneBytes, total);
    }
  } finally {
    await producer.disconnect();
  }
  return summary;
}
