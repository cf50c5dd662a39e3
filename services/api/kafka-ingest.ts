// The distributed mode's ingest destination: the input topics, as `fundguard replay` writes them
// (Avro in the Confluent wire format with the registry's ids, keyed by person_id so a person's
// events share a partition), through the transport's idempotent, acks=all producer.
import type { EngineEvent } from "../engine/engine.ts";
import type { AvroSerde } from "../kafka/serde.ts";
import type { Topics } from "../kafka/topics.ts";
import type { KafkaTransport, OutRecord, TransportProducer } from "../kafka/transport.ts";
import type { IngestDestination } from "./ingest.ts";

/** Records per produce request: a large body goes in several, each acknowledged before the next. */
const SEND_RECORDS = 5_000;

export class KafkaIngest implements IngestDestination {
  private readonly producer: TransportProducer;
  /** One send at a time: concurrent requests keep each person's events in arrival order. */
  private queue: Promise<unknown> = Promise.resolve();

  /** `serde` must be registered (AvroSerde.register) before the first write. */
  constructor(
    transport: KafkaTransport,
    private readonly serde: AvroSerde,
    private readonly topics: Topics,
  ) {
    this.producer = transport.producer();
  }

  write(events: readonly EngineEvent[]): Promise<void> {
    const run = this.queue.then(() => this.send(events));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async send(events: readonly EngineEvent[]): Promise<void> {
    for (let i = 0; i < events.length; i += SEND_RECORDS) {
      const records = events.slice(i, i + SEND_RECORDS).map(
        (e): OutRecord => ({
          topic: e.kind === "settlement" ? this.topics.settlements : this.topics.deaths,
          key: e.value.person_id,
          value:
            e.kind === "settlement"
              ? this.serde.encode("settlement", e.value)
              : this.serde.encode("death", e.value),
        }),
      );
      await this.producer.send(records);
    }
  }

  async close(): Promise<void> {
    await this.queue;
    await this.producer.close();
  }
}
