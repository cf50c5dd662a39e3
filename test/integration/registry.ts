// Schema registry moves of the tests: a producer's own schema version, registered, and taken back.
import { COMPATIBILITY, SchemaRegistry, SchemaType } from "@kafkajs/confluent-schema-registry";
import { expect, inject } from "vitest";
import { type AvroRecord, avroType, type Settlement, settlementSchema } from "../../schemas/index.ts";

/**
 * A later settlement schema version (one more optional field, a name of its own, so no other test
 * shares its content or id), as an upgraded producer has; `encode` writes the wire format.
 */
export function evolvedSettlementSchema(): {
  schema: AvroRecord;
  encode: (id: number, s: Settlement) => Buffer;
} {
  const field = `producer_note_${Math.random().toString(36).slice(2, 10)}`;
  const extra = { name: field, type: ["null", "string"], default: null } as const;
  const schema = { ...settlementSchema, fields: [...settlementSchema.fields, extra] };
  const type = avroType(schema);
  return {
    schema,
    encode: (id, s) => {
      const header = Buffer.alloc(5);
      header.writeInt32BE(id, 1);
      return Buffer.concat([header, type.toBuffer({ ...s, [field]: "upgraded producer" })]);
    },
  };
}

/** Registers schemas under `subject` (BACKWARD), as a producer does; resolves to the id. */
export function registerUnder(subject: string): (schema: AvroRecord) => Promise<number> {
  const registry = new SchemaRegistry({ host: inject("schemaRegistryUrl") });
  return (schema) =>
    registry
      .register(
        { type: SchemaType.AVRO, schema: JSON.stringify(schema) },
        { subject, compatibility: COMPATIBILITY.BACKWARD },
      )
      .then((r) => r.id);
}

/**
 * Removes the subject's latest version for good (soft, then hard delete): its id answers 404
 * until the same content is registered again, which gives back the same id.
 */
export async function hardDeleteLatest(subject: string): Promise<void> {
  const url = `${inject("schemaRegistryUrl")}/subjects/${encodeURIComponent(subject)}/versions`;
  const versions = (await (await fetch(url)).json()) as number[];
  for (const suffix of ["", "?permanent=true"]) {
    const res = await fetch(`${url}/${versions[versions.length - 1]}${suffix}`, { method: "DELETE" });
    expect(res.status, await res.text()).toBe(200);
  }
}
