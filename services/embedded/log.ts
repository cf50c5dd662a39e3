// An in-process log with Kafka's partition and offset semantics, for the embedded mode: events are
// partitioned by key exactly as Kafka's default partitioner does, read in offset order per
// partition, and a consumer group's committed offsets say where processing resumes.
import { keyPartition } from "../kafka/partition.ts";

export class InProcessLog<V> {
  private readonly partitions: V[][];
  private readonly committed = new Map<string, number>();

  constructor(
    readonly topic: string,
    readonly partitionCount: number,
  ) {
    this.partitions = Array.from({ length: partitionCount }, () => []);
  }

  /** Appends under `key`'s partition (murmur2, as Kafka clients do); returns [partition, offset]. */
  append(key: string, value: V): [number, number] {
    const p = this.partitionOf(key);
    const log = this.partitions[p] as V[];
    log.push(value);
    return [p, log.length - 1];
  }

  /** The partition `key` goes to (murmur2, as Kafka clients do). */
  partitionOf(key: string): number {
    return keyPartition(Buffer.from(key), this.partitionCount);
  }

  endOffset(partition: number): number {
    return this.partitions[partition]?.length ?? 0;
  }

  /** Up to `max` records of `partition` from `offset` on. */
  read(partition: number, offset: number, max: number): V[] {
    return (this.partitions[partition] ?? []).slice(offset, offset + max);
  }

  commit(group: string, partition: number, offset: number): void {
    this.committed.set(`${group}:${partition}`, offset);
  }

  committedOffset(group: string, partition: number): number {
    return this.committed.get(`${group}:${partition}`) ?? 0;
  }

  lag(group: string): number {
    let lag = 0;
    for (let p = 0; p < this.partitionCount; p++) lag += this.endOffset(p) - this.committedOffset(group, p);
    return lag;
  }
}
