// The serde's writer-schema cache against the real registry: an id the registry does not serve
// is waited for, then dead-lettered, then asked again later (it may have been registered since);
// an unreachable registry is never an answer; the cache is bounded.
import { COMPATIBILITY, SchemaRegistry, SchemaType } from "@kafkajs/confluent-schema-registry";
import { describe, expect, inject, it, vi } from "vitest";
import { type AvroRecord, avroType, settlementSchema } from "../../schemas/index.ts";
import { AvroSerde, RegistryUnavailableError, SchemaNotYetKnownError } from "../../services/kafka/serde.ts";
import { topicNames } from "../../services/kafka/topics.ts";
import { settlement } from "../fixtures/events.ts";
import { freePort, pipelineEnv, sleep } from "./harness.ts";

const registryUrl = () => inject("schemaRegistryUrl");

/** A settlement schema version of this test's own (an extra optional field), and a message in it. */
function version(): { schema: AvroRecord; encode: (id: number) => Buffer } {
  const field = `note_${Math.random().toString(36).slice(2, 10)}`;
  const extra = { name: field, type: ["null", "string"], default: null } as const;
  const schema = { ...settlementSchema, fields: [...settlementSchema.fields, extra] };
  const body = avroType(schema).toBuffer({ ...settlement({ settlement_id: field }), [field]: "x" });
  return {
    schema,
    encode: (id) => {
      const header = Buffer.alloc(5);
      header.writeInt32BE(id, 1);
      return Buffer.concat([header, body]);
    },
  };
}

function registryFor(subject: string) {
  const registry = new SchemaRegistry({ host: registryUrl() });
  return (schema: AvroRecord) =>
    registry
      .register(
        { type: SchemaType.AVRO, schema: JSON.stringify(schema) },
        { subject, compatibility: COMPATIBILITY.BACKWARD },
      )
      .then((r) => r.id);
}

/** Soft, then hard delete of the subject's latest version: its id then answers 404. */
async function hardDeleteLatest(subject: string): Promise<void> {
  const url = `${registryUrl()}/subjects/${encodeURIComponent(subject)}/versions`;
  const versions = (await (await fetch(url)).json()) as number[];
  for (const suffix of ["", "?permanent=true"]) {
    const res = await fetch(`${url}/${versions[versions.length - 1]}${suffix}`, { method: "DELETE" });
    expect(res.status, await res.text()).toBe(200);
  }
}

async function newSerde(options: ConstructorParameters<typeof AvroSerde>[2]) {
  const topics = topicNames(pipelineEnv("schema-cache").FUNDGUARD_TOPIC_PREFIX);
  const serde = new AvroSerde(registryUrl(), topics, options);
  await serde.register();
  const subject = AvroSerde.subject(topics.settlements);
  return { serde, subject, register: registryFor(subject), lookups: vi.spyOn(serde.registry, "getSchema") };
}

describe("writer schemas from the registry", () => {
  it("an id not served yet is waited for, dead-lettered past the window, and asked again later", async () => {
    const { serde, subject, register, lookups } = await newSerde({ unknownWaitMs: 1_500 });
    const v = version();
    const id = await register(v.schema);
    await hardDeleteLatest(subject);
    const message = v.encode(id);

    const early = serde.decode("settlement", message);
    await expect(early).rejects.toBeInstanceOf(SchemaNotYetKnownError);
    await expect(early).rejects.toBeInstanceOf(RegistryUnavailableError);
    await sleep(1_600);
    const late = await serde.decode("settlement", message);
    expect(late).toEqual({ ok: false, reason: `unknown schema id ${id} (not in the registry for 1500 ms)` });

    // Given up on: the next messages are answered without asking, until the recheck is due.
    const asked = lookups.mock.calls.length;
    expect(await serde.decode("settlement", message)).toEqual(late);
    expect(lookups.mock.calls.length).toBe(asked);
    expect(await register(v.schema)).toBe(id); // registered after all (same content, same id)
    expect((await serde.decode("settlement", message)).ok).toBe(false);
    await sleep(1_600);
    const found = await serde.decode("settlement", message);
    expect(found.ok, JSON.stringify(found)).toBe(true);
    expect(lookups.mock.calls.length).toBe(asked + 1);
  });

  it("an unreachable registry is never an answer about the message: every lookup fails until it answers", async () => {
    const topics = topicNames(pipelineEnv("schema-cache").FUNDGUARD_TOPIC_PREFIX);
    const serde = new AvroSerde(`http://127.0.0.1:${await freePort()}`, topics, { unknownWaitMs: 0 });
    const message = version().encode(1);
    for (let i = 0; i < 3; i++) {
      const r = serde.decode("settlement", message);
      await expect(r).rejects.toBeInstanceOf(RegistryUnavailableError);
      await expect(r).rejects.not.toBeInstanceOf(SchemaNotYetKnownError);
    }
  });

  it("keeps at most maxEntries ids: the least recently used one is looked up again", async () => {
    const { serde, register, lookups } = await newSerde({ maxEntries: 2 });
    const vs = [version(), version(), version()];
    const messages: Buffer[] = [];
    for (const v of vs) messages.push(v.encode(await register(v.schema)));
    const [a, b, c] = messages as [Buffer, Buffer, Buffer];
    const decode = async (m: Buffer) => {
      const before = lookups.mock.calls.length;
      expect((await serde.decode("settlement", m)).ok).toBe(true);
      return lookups.mock.calls.length - before;
    };
    expect([await decode(a), await decode(b), await decode(a)]).toEqual([1, 1, 0]);
    // c pushes out b, the least recently used; a stays.
    expect([await decode(c), await decode(a), await decode(b)]).toEqual([1, 0, 1]);
  });
});
