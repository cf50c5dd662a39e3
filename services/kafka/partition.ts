// Where Java clients (and kafkajs's DefaultPartitioner) put a keyed record, so topics written by any
// producer stay co-partitioned: toPositive(murmur2(key)) % partitions, from @platformatic/kafka's port.
import { compatibilityPartitioner } from "@platformatic/kafka";

export function keyPartition(key: Buffer, partitions: number): number {
  return compatibilityPartitioner(undefined as never, key) % partitions;
}
