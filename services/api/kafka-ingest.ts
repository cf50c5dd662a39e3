// The distributed mode's ingest destination: the input topics, as `fundguard replay` writes them
// (Avro in the Confluent wire format with the registry's ids, keyed by person_id so a person's
// events share a partition), through the transport's idempotent, acks=all producer.
import type { EngineEvent } from "../engine/engine.ts";
import { type OutMessage, produceRequests, sendRequest } from "../kafka/produce.ts";
import type { AvroSerde } from "../kafka/serde.ts";
import type { Topics } from "../kafka/topics.ts";
import type { KafkaTransport, TransportProducer } from "../kafka/transport.ts";
import type { IngestDestination } from "./ingest.ts";

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
    const byTopic = new Map<string, OutMessage[]>();
    for (const e of events) {
      const topic = e.kind === "settlement" ? this.topics.settlements : this.topics.deaths;
      const value = this.serde.encodeEvent(e);
      let messages = byTopic.get(topic);
      if (!messages) {
        messages = [];
        byTopic.set(topic, messages);
      }
      messages.push({ key: e.value.person_id, value });
    }
    // Cut so that no partition's record batch exceeds the broker's limit, whatever the keys hash to.
    const requests = produceRequests([...byTopic].map(([topic, messages]) => ({ topic, messages })));
    for (const r of requests) await sendRequest(this.producer, r);
  }

  async close(): Promise<void> {
    await this.queue;
    await this.producer.close();
  }
}
