// The serde's writer-schema cache against the real registry: an id the registry does not serve
// is waited for, then dead-lettered, then asked again later (it may have been registered since);
// an unreachable registry is never an answer; the cache is bounded.
import { describe, expect, inject, it, vi } from "vitest";
import { AvroSerde, RegistryUnavailableError, SchemaNotYetKnownError } from "../../services/kafka/serde.ts";
import { topicNames } from "../../services/kafka/topics.ts";
import { settlement } from "../fixtures/events.ts";
import { freePort, pipelineEnv, sleep } from "./harness.ts";
import { evolvedSettlementSchema, hardDeleteLatest, registerUnder } from "./registry.ts";

async function newSerde(options: ConstructorParameters<typeof AvroSerde>[2]) {
  const topics = topicNames(pipelineEnv("schema-cache").FUNDGUARD_TOPIC_PREFIX);
  const serde = new AvroSerde(inject("schemaRegistryUrl"), topics, options);
  await serde.register();
  const subject = AvroSerde.subject(topics.settlements);
  return { serde, subject, register: registerUnder(subject), lookups: vi.spyOn(serde.registry, "getSchema") };
}

describe("writer schemas from the registry", () => {
  it("an id not served yet is waited for, dead-lettered past the window, and asked again later", async () => {
    const { serde, subject, register, lookups } = await newSerde({ unknownWaitMs: 1_500 });
    const v = evolvedSettlementSchema();
    const id = await register(v.schema);
    await hardDeleteLatest(subject);
    const message = v.encode(id, settlement());

    const early = serde.decode("settlement", message);
    await expect(early).rejects.toBeInstanceOf(SchemaNotYetKnownError);
    await expect(early).rejects.toBeInstanceOf(RegistryUnavailableError);
    await sleep(1_600);
    const late = await serde.decode("settlement", message);
    expect(late).toEqual({
      ok: false,
      reason: `unknown schema id ${id} (not in the registry after waiting 1500 ms)`,
    });

    // Given up on: the next messages are answered without asking, until the recheck is due.
    const asked = lookups.mock.calls.length;
    expect(await serde.decode("settlement", message)).toEqual(late);
    expect(lookups.mock.calls.length).toBe(asked);
    // A wait in vain says the registry is not behind: for a window, another fresh id is not waited for.
    const other = evolvedSettlementSchema();
    const otherId = await register(other.schema);
    await hardDeleteLatest(subject);
    expect((await serde.decode("settlement", other.encode(otherId, settlement()))).ok).toBe(false);
    const askedNow = lookups.mock.calls.length;
    expect(await register(v.schema)).toBe(id); // registered after all (same content, same id)
    expect((await serde.decode("settlement", message)).ok).toBe(false);
    await sleep(1_600);
    const found = await serde.decode("settlement", message);
    expect(found.ok, JSON.stringify(found)).toBe(true);
    expect(lookups.mock.calls.length).toBe(askedNow + 1);
  });

  it("an id that cannot be a registration not seen yet is dead-lettered at the first 404", async () => {
    const { serde } = await newSerde({ unknownWaitMs: 60_000 });
    // Far beyond every id the registry serves: random bytes after a zero byte look like this.
    const id = 0x7fffff01;
    const t0 = Date.now();
    expect(await serde.decode("settlement", evolvedSettlementSchema().encode(id, settlement()))).toEqual({
      ok: false,
      reason: `unknown schema id ${id} (not in the registry, nor a registration it may not have seen yet)`,
    });
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it("an unreachable registry is never an answer about the message: every lookup fails until it answers", async () => {
    const topics = topicNames(pipelineEnv("schema-cache").FUNDGUARD_TOPIC_PREFIX);
    const serde = new AvroSerde(`http://127.0.0.1:${await freePort()}`, topics, { unknownWaitMs: 0 });
    const message = evolvedSettlementSchema().encode(1, settlement());
    for (let i = 0; i < 3; i++) {
      const r = serde.decode("settlement", message);
      await expect(r).rejects.toBeInstanceOf(RegistryUnavailableError);
      await expect(r).rejects.not.toBeInstanceOf(SchemaNotYetKnownError);
    }
  });

  it("keeps at most maxEntries ids: the least recently used one is looked up again", async () => {
    const { serde, register, lookups } = await newSerde({ maxEntries: 2 });
    const vs = [evolvedSettlementSchema(), evolvedSettlementSchema(), evolvedSettlementSchema()];
    const messages: Buffer[] = [];
    for (const v of vs) messages.push(v.encode(await register(v.schema), settlement()));
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
