// The archive from the input's own bytes (migration 005, store.archive) writes exactly the rows of
// the JS row path (writeSettlements / writeDeaths): a generated stream plus edge lines, once as
// NDJSON lines (JSONEachRow, the embedded path) and once as Confluent-framed Kafka values
// (AvroConfluent through the real registry, the worker's path, with evolved writer schemas).
// Each path writes its own chdb data directory (one open at a time in a process); the archive
// tables are compared whole. A line ClickHouse refuses as data falls back to the JS rows.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { type AvroRecord, avroType, type Settlement, settlementSchema } from "../../schemas/index.ts";
import type { EngineEvent } from "../../services/engine/engine.ts";
import { generate } from "../../services/generate/generate.ts";
import { fileEvents } from "../../services/ingest/ndjson-source.ts";
import { AvroSerde } from "../../services/kafka/serde.ts";
import { topicNames } from "../../services/kafka/topics.ts";
import { type ArchiveFallback, type ArchiveRecord, ndjsonArchiveBytes } from "../../services/store/index.ts";
import { archiveTables, writeJsArchive } from "../fixtures/archive.ts";
import { tempDir } from "./harness.ts";
import { evolvedSettlementSchema, registerUnder } from "./registry.ts";

async function readNdjson(file: string, kind: EngineEvent["kind"]): Promise<ArchiveRecord[]> {
  const out: ArchiveRecord[] = [];
  const bad: string[] = [];
  for await (const batch of fileEvents(file, kind, (b) => bad.push(`${b.line}: ${b.reason}`))) {
    for (const e of batch) out.push({ event: e.event, raw: ndjsonArchiveBytes(e.text, e.event.value) });
  }
  expect(bad).toEqual([]);
  return out;
}

describe("archive from raw bytes", () => {
  it("NDJSON lines through JSONEachRow give the JS path's rows, edge lines included", async () => {
    const dir = tempDir("archive-ndjson");
    const g = await generate({ outDir: join(dir, "in"), settlements: 3_000, seed: 11 });
    const lines = readFileSync(g.files.settlements, "utf8").split("\n").filter(Boolean);
    const base = (i: number) => JSON.parse(lines[i] as string) as Record<string, unknown>;
    const edge = (i: number, id: string): Record<string, unknown> => ({
      ...base(i),
      settlement_id: `EDGE-${id}`,
    });

    const integral = JSON.stringify(edge(1, "INTEGRAL"))
      .replace(/"total_fen":(-?\d+)/, '"total_fen":$1.0')
      .replace(/"line_no":(\d+)/, '"line_no":$1e0')
      .replace(/"amount_fen" *: *(-?\d+)/, '"amount_fen" : $1.00');
    const extra: Record<string, unknown> = {
      ...edge(2, "EXTRA"),
      producer_note: "added by a newer producer",
      seq: 7,
    };
    const items = (extra.items as Record<string, unknown>[]).map((it) => ({ ...it, batch_no: "B1" }));
    const omitted = edge(3, "OMITTED");
    delete omitted.original_settlement_id;
    delete omitted.discharge_reason;
    const edgeFile = join(dir, "edge.ndjson");
    writeFileSync(
      edgeFile,
      `${integral}\n${JSON.stringify({ ...extra, items })}\n${JSON.stringify(edge(4, "CRLF"))}\r\n${JSON.stringify(omitted)}\n`,
    );
    // JSON.parse keeps the last of two equal keys; ClickHouse refuses the line (Code 117): the fallback.
    const duplicateFile = join(dir, "duplicate.ndjson");
    writeFileSync(
      duplicateFile,
      `${JSON.stringify(edge(5, "DUP")).replace("{", '{"settlement_id":"EDGE-first",')}\n`,
    );

    const generated = [
      ...(await readNdjson(g.files.settlements, "settlement")),
      ...(await readNdjson(g.files.deaths, "death")),
    ];
    const edges = await readNdjson(edgeFile, "settlement");
    const duplicate = await readNdjson(duplicateFile, "settlement");
    expect(edges).toHaveLength(4);
    expect(integral).toMatch(/"total_fen":-?\d+\.0,/);

    const fallbacks: ArchiveFallback[][] = [];
    const raw = await archiveTables(join(dir, "raw"), async (store) => {
      for (const records of [generated, edges, duplicate]) {
        fallbacks.push(await store.archive(records, "JSONEachRow"));
      }
    });
    const js = await archiveTables(join(dir, "js"), (store) =>
      writeJsArchive(
        store,
        [...generated, ...edges, ...duplicate].map((r) => r.event),
      ),
    );

    expect(fallbacks.slice(0, 2)).toEqual([[], []]);
    expect(fallbacks[2]).toEqual([
      expect.objectContaining({ table: "settlements_in", message: expect.stringContaining("Code: 117") }),
    ]);
    expect(raw.settlements.length).toBe(
      new Set(
        generated
          .filter((r) => r.event.kind === "settlement")
          .map((r) => (r.event.value as Settlement).settlement_id),
      ).size + 5,
    );
    expect(raw.deaths.length).toBeGreaterThan(0);
    expect(raw).toEqual(js);
    const omittedRow = raw.settlements.find(
      (r) => (r as Settlement).settlement_id === "EDGE-OMITTED",
    ) as Record<string, unknown>;
    expect([omittedRow.original_settlement_id, omittedRow.discharge_reason]).toEqual([null, null]);
  });

  it("Kafka values through AvroConfluent give the JS path's rows, evolved writer schemas included", async () => {
    const dir = tempDir("archive-avro");
    const registryUrl = inject("schemaRegistryUrl");
    const topics = topicNames(`archive-raw-${Date.now()}.`);
    const serde = new AvroSerde(registryUrl, topics);
    await serde.register();
    const subject = AvroSerde.subject(topics.settlements);

    const g = await generate({ outDir: join(dir, "in"), settlements: 3_000, seed: 12 });
    const events = [
      ...(await readNdjson(g.files.settlements, "settlement")),
      ...(await readNdjson(g.files.deaths, "death")),
    ].map((r) => r.event);
    // A newer producer (one more field), then one whose schema drops the two optional fields.
    const newer = evolvedSettlementSchema();
    const newerId = await registerUnder(subject)(newer.schema);
    const older: AvroRecord = {
      ...settlementSchema,
      fields: settlementSchema.fields.filter(
        (f) => f.name !== "original_settlement_id" && f.name !== "discharge_reason",
      ),
    };
    const olderId = await registerUnder(subject)(older);
    const olderType = avroType(older);
    const frame = (id: number, body: Buffer) => {
      const header = Buffer.alloc(5);
      header.writeInt32BE(id, 1);
      return Buffer.concat([header, body]);
    };
    const settle = events.filter((e) => e.kind === "settlement" && e.value.event_type === "SETTLE");
    const messages: { kind: EngineEvent["kind"]; bytes: Buffer }[] = events.map((e) => ({
      kind: e.kind,
      bytes: e.kind === "settlement" ? serde.encode("settlement", e.value) : serde.encode("death", e.value),
    }));
    for (const [i, e] of settle.slice(0, 20).entries()) {
      const s = { ...(e.value as Settlement), settlement_id: `EVOLVED-${i}` };
      messages.push({
        kind: "settlement",
        bytes: i % 2 === 0 ? newer.encode(newerId, s) : frame(olderId, olderType.toBuffer(s)),
      });
    }

    // What the worker keeps: the exact value of each record that decoded and validated.
    const records: ArchiveRecord[] = [];
    for (const m of messages) {
      const decoded = await serde.decode(m.kind, m.bytes);
      if (!decoded.ok) throw new Error(decoded.reason);
      records.push({ event: { kind: m.kind, value: decoded.value } as EngineEvent, raw: m.bytes });
    }
    let fallbacks: ArchiveFallback[] = [];
    const raw = await archiveTables(join(dir, "raw"), async (store) => {
      fallbacks = await store.archive(records, "AvroConfluent", { registryUrl });
    });
    const js = await archiveTables(join(dir, "js"), (store) =>
      writeJsArchive(
        store,
        records.map((r) => r.event),
      ),
    );

    expect(fallbacks).toEqual([]);
    expect(
      raw.settlements.filter((r) => (r as Settlement).settlement_id.startsWith("EVOLVED-")),
    ).toHaveLength(20);
    expect(raw.deaths.length).toBeGreaterThan(0);
    expect(raw).toEqual(js);
  });
});
