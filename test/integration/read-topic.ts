// Reading a whole topic back in tests: its records with keys, values and headers as strings.
import type { Kafka } from "kafkajs";

export interface ReadRecord {
  key: string;
  value: Buffer | null;
  headers: Record<string, string>;
}

/** The first `count` records of `topic` (all partitions), failing after `ms` with how many arrived. */
export async function readTopic(
  kafka: Kafka,
  topic: string,
  count: number,
  ms = 60_000,
): Promise<ReadRecord[]> {
  const consumer = kafka.consumer({ groupId: `read-${topic}-${Date.now()}`, maxBytesPerPartition: 16 << 20 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const out: ReadRecord[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`only ${out.length} of ${count} records on ${topic}`)),
        ms,
      );
      consumer
        .run({
          eachMessage: async ({ message }) => {
            const headers: Record<string, string> = {};
            for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
            out.push({ key: message.key?.toString() ?? "", value: message.value, headers });
            if (out.length >= count) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return out;
}
