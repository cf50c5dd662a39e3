// Avro in the Confluent wire format (magic byte 0, 4-byte schema id, Avro body) with a real registry.
// Decoding resolves each writer schema into our reader schema, so producers may evolve BACKWARD-compatibly.
// A body is checked against the contract's limits before avsc reads it (schemas/avro-bounds.ts).
import { COMPATIBILITY, SchemaRegistry, SchemaType } from "@kafkajs/confluent-schema-registry";
import type avro from "avsc";
import { AvroBoundsError, avroBounds } from "../../schemas/avro-bounds.ts";
import {
  type AvroRecord,
  avroType,
  DEFAULT_LIMITS,
  type DeathRecord,
  deathRecordSchema,
  fieldLimits,
  type Limits,
  type Settlement,
  type Suspect,
  settlementSchema,
  suspectSchema,
} from "../../schemas/index.ts";
import type { EngineEvent } from "../engine/engine.ts";
import { type Parsed, type Validators, validators } from "../ingest/validate.ts";
import type { OutMessage } from "./produce.ts";
import { SchemaCache, type SchemaCacheOptions } from "./schema-cache.ts";
import type { Topics } from "./topics.ts";
import type { FetchedRecord } from "./transport.ts";

export { RegistryUnavailableError, SchemaNotYetKnownError } from "./schema-cache.ts";

export type InputKind = "settlement" | "death";

/** The topics whose value subjects register() registers (plain strings: a lane thread gets a copy). */
export type SubjectTopics = Pick<Topics, "settlements" | "deaths" | "suspects">;

/** How bodies of one writer schema are read: its resolution into our schema and its bounds check. */
interface WriterReader {
  resolver: avro.Resolver;
  bounds: (body: Buffer) => void;
}

export interface SerdeOptions extends SchemaCacheOptions {
  /** The contract's limits decoded bodies are held to (default: DEFAULT_LIMITS). */
  limits?: Limits;
}

export class AvroSerde {
  readonly registry: SchemaRegistry;
  private readonly readers = {
    settlement: avroType(settlementSchema),
    death: avroType(deathRecordSchema),
  };
  private readonly resolvers: SchemaCache<WriterReader>;
  private readonly validate: Validators;
  private readonly limits: Limits;
  private ids: Record<InputKind | "suspect", number> | undefined;

  get suspectSchemaId(): number {
    if (!this.ids) throw new Error("call register() first");
    return this.ids.suspect;
  }

  constructor(
    registryUrl: string,
    private readonly topics: SubjectTopics,
    o: SerdeOptions = {},
  ) {
    this.registry = new SchemaRegistry({ host: registryUrl, retry: { retries: 3 } });
    this.resolvers = new SchemaCache(o);
    this.limits = o.limits ?? DEFAULT_LIMITS;
    this.validate = validators(this.limits);
  }

  static subject(topic: string): string {
    return `${topic}-value`;
  }

  /** Registers the three schemas under TopicNameStrategy subjects with BACKWARD compatibility. */
  async register(): Promise<Record<InputKind | "suspect", number>> {
    const reg = (topic: string, schema: AvroRecord) =>
      this.registry
        .register(
          { type: SchemaType.AVRO, schema: JSON.stringify(schema) },
          { subject: AvroSerde.subject(topic), compatibility: COMPATIBILITY.BACKWARD },
        )
        .then((r) => r.id);
    // One at a time: registries backed by a SQL store can race on first use (seen with Apicurio on H2).
    const settlement = await reg(this.topics.settlements, settlementSchema);
    const death = await reg(this.topics.deaths, deathRecordSchema);
    const suspect = await reg(this.topics.suspects, suspectSchema);
    this.ids = { settlement, death, suspect };
    for (const id of Object.values(this.ids)) this.resolvers.served(id);
    return this.ids;
  }

  encode(kind: "settlement", value: Settlement): Buffer;
  encode(kind: "death", value: DeathRecord): Buffer;
  encode(kind: InputKind, value: Settlement | DeathRecord): Buffer {
    if (!this.ids) throw new Error("call register() before encode()");
    const body = this.readers[kind].toBuffer(value);
    const header = Buffer.alloc(5);
    header.writeInt32BE(this.ids[kind], 1);
    return Buffer.concat([header, body]);
  }

  /** An input event under its kind's schema. */
  encodeEvent(e: EngineEvent): Buffer {
    return e.kind === "settlement" ? this.encode("settlement", e.value) : this.encode("death", e.value);
  }

  /** Decodes and validates one message; a reason on failure says what is wrong with the message. */
  async decode<K extends InputKind>(
    kind: K,
    bytes: Buffer | null,
  ): Promise<Parsed<K extends "settlement" ? Settlement : DeathRecord>> {
    const max = this.limits.maxMessageBytes;
    if (bytes && bytes.length > max) {
      return {
        ok: false,
        reason: `contract violation: message of ${bytes.length} bytes is larger than the limit of ${max} bytes (FUNDGUARD_MAX_MESSAGE_BYTES)`,
      };
    }
    if (!bytes || bytes.length < 5 || bytes[0] !== 0) {
      return { ok: false, reason: "not Confluent wire format: missing magic byte 0 and schema id" };
    }
    const id = bytes.readInt32BE(1);
    const reader = await this.resolver(kind, id);
    if (typeof reader === "string") return { ok: false, reason: reader };
    let value: unknown;
    try {
      const body = bytes.subarray(5);
      reader.bounds(body);
      value = this.readers[kind].fromBuffer(body, reader.resolver, true);
    } catch (e) {
      const over = e instanceof AvroBoundsError && e.overLimit;
      const reason = over ? "contract violation" : `Avro decode failed with schema id ${id}`;
      return { ok: false, reason: `${reason}: ${(e as Error).message}` };
    }
    return this.validate[kind](value) as Parsed<K extends "settlement" ? Settlement : DeathRecord>;
  }

  /** Throws RegistryUnavailableError (or SchemaNotYetKnownError) when the answer must be waited for. */
  private resolver(kind: InputKind, id: number): Promise<WriterReader | string> {
    return this.resolvers.get(`${kind}:${id}`, id, () =>
      this.registry.getSchema(id).then((writer) => {
        try {
          const w = writer as avro.Type;
          return {
            resolver: this.readers[kind].createResolver(w),
            bounds: avroBounds(w, fieldLimits(kind, this.limits)),
          };
        } catch (e) {
          return `schema id ${id} cannot be read as ${kind}: ${(e as Error).message}`;
        }
      }),
    );
  }
}

/** A suspect change on `suspects.v1`: the contract's suspect record, with the change in headers. */
export interface SuspectChange {
  op: "upsert" | "retract";
  version: number;
  suspect: Suspect;
  /** Hash of the detector config that decided the change (header `fundguard-config-hash`). */
  configHash?: string;
}

const suspectType = avroType(suspectSchema);
export const SUSPECT_HEADERS = {
  op: "fundguard-op",
  version: "fundguard-version",
  configHash: "fundguard-config-hash",
} as const;

export function encodeSuspectChange(schemaId: number, c: SuspectChange): OutMessage {
  const header = Buffer.alloc(5);
  header.writeInt32BE(schemaId, 1);
  const body = suspectType.toBuffer({ ...c.suspect, evidence: JSON.stringify(c.suspect.evidence) });
  const headers: Record<string, string> = {
    [SUSPECT_HEADERS.op]: c.op,
    [SUSPECT_HEADERS.version]: String(c.version),
  };
  if (c.configHash) headers[SUSPECT_HEADERS.configHash] = c.configHash;
  return { key: c.suspect.person_id, value: Buffer.concat([header, body]), headers };
}

/** Suspect changes are written by our own workers with our own schema, so no resolution is needed. */
export function decodeSuspectChange(m: Pick<FetchedRecord, "value" | "headers">): SuspectChange {
  if (m.value?.[0] !== 0) throw new Error("suspect change is not in Confluent wire format");
  const raw = suspectType.fromBuffer(m.value.subarray(5)) as Omit<Suspect, "evidence"> & { evidence: string };
  const op = m.headers?.[SUSPECT_HEADERS.op]?.toString();
  const version = Number(m.headers?.[SUSPECT_HEADERS.version]?.toString());
  if ((op !== "upsert" && op !== "retract") || !Number.isSafeInteger(version)) {
    throw new Error("suspect change without valid op/version headers");
  }
  const configHash = m.headers?.[SUSPECT_HEADERS.configHash]?.toString();
  const suspect = { ...raw, evidence: JSON.parse(raw.evidence) };
  return configHash ? { op, version, suspect, configHash } : { op, version, suspect };
}
