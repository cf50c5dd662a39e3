// Hostile Kafka input against the real broker and registry: records whose Avro claims more than its
// bytes hold (array counts of 3·10⁸ and 2⁴⁰), truncated records, trailing garbage and fields beyond
// the contract's limits, among good ones. Each bad record is dead-lettered once with its reason; the
// worker neither stalls nor grows its heap (it runs with a 256 MiB cap), and the good records are
// detected exactly as `detect` finds them.
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Suspect } from "../../schemas/index.ts";
import { generate } from "../../services/generate/generate.ts";
import { DLQ_HEADERS } from "../../services/kafka/deadletter.ts";
import { death, line } from "../fixtures/events.ts";
import { diagnoses, flagged, varint } from "../fixtures/hostile.ts";
import { canonical } from "../fixtures/run.ts";
import { cli, exported, killStrays, spawnCli, tempDir } from "./harness.ts";
import { kafkaPipeline, readTopic, recordCount } from "./kafka-kit.ts";

afterEach(killStrays);

const minimalItems = (n: number) =>
  Array.from({ length: n }, (_, i) =>
    line({ line_no: i, item_code: "A", item_name: "", quantity: 1, unit_price_fen: 0 }),
  );

/** Peak resident memory of a running process so far, in MiB (Linux). */
const peakMiB = (pid: number) => {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : 0;
};

describe("hostile Avro input", () => {
  it("dead-letters each bad record once with its reason, keeps memory flat and detects the good ones exactly", async () => {
    const maxMessageBytes = 768 << 10;
    const { env, topics, kafka, serde } = await kafkaPipeline("hostile", {
      FUNDGUARD_MAX_MESSAGE_BYTES: String(maxMessageBytes),
    });
    const dir = tempDir("hostile");

    const g = await generate({ outDir: dir, settlements: 1_500, seed: "hostile", schemeRate: 0.1 });
    const detected = await cli(
      ["detect", "--settlements", g.files.settlements, "--deaths", g.files.deaths],
      env,
    );
    const expected = canonical(
      detected.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as Suspect),
    );
    expect(expected.length).toBeGreaterThan(10);

    // The good stream goes in through `replay` in two halves, with bad NDJSON lines it must skip.
    const lines = readFileSync(g.files.settlements, "utf8").split("\n").filter(Boolean);
    const half = Math.floor(lines.length / 2);
    const first = join(dir, "first.ndjson");
    const ndjsonBad = [
      JSON.stringify(flagged("N1", { institution_name: "中".repeat(300_000) })),
      JSON.stringify(flagged("N2", { diagnoses: diagnoses(1_001) })),
    ];
    writeFileSync(first, [...lines.slice(0, 100), ...ndjsonBad, ...lines.slice(100, half)].join("\n"));
    const second = join(dir, "second.ndjson");
    writeFileSync(second, lines.slice(half).join("\n"));

    const empty = serde.encode(
      "settlement",
      flagged("E", { diagnoses: [], items: [], total_fen: 0, fund_paid_fen: 0 }),
    );
    // The body ends with the empty diagnoses and items, then two zero longs.
    const withArrays = (diag: Buffer, items: Buffer) =>
      Buffer.concat([empty.subarray(0, empty.length - 4), diag, items, Buffer.from([0, 0])]);
    const good = (id: string) => serde.encode("settlement", flagged(id));
    const decodeFailed = (detail: string) => new RegExp(`^Avro decode failed with schema id \\d+: ${detail}`);
    const HOSTILE: [string, "settlement" | "death", Buffer, RegExp][] = [
      [
        "diagnoses count 3e8",
        "settlement",
        withArrays(varint(3e8), varint(0)),
        decodeFailed("diagnoses: a block of 300000000 entries cannot fit"),
      ],
      [
        "diagnoses count 2^40",
        "settlement",
        withArrays(varint(2 ** 40), varint(0)),
        decodeFailed("diagnoses: a block of 1099511627776 entries cannot fit"),
      ],
      [
        "items count 3e8",
        "settlement",
        withArrays(varint(0), varint(3e8)),
        decodeFailed("items: a block of 300000000 entries cannot fit"),
      ],
      [
        "sized block of 2^40 bytes",
        "settlement",
        withArrays(Buffer.concat([varint(-3), varint(2 ** 40)]), varint(0)),
        decodeFailed("diagnoses: block size 1099511627776 exceeds"),
      ],
      [
        "truncated record",
        "settlement",
        good("T").subarray(0, -9),
        decodeFailed(".*(truncated at byte|exceeds the \\d+ bytes left)"),
      ],
      [
        "trailing garbage",
        "settlement",
        Buffer.concat([good("G"), randomBytes(16)]),
        decodeFailed("16 trailing bytes after the record"),
      ],
      [
        "70,000-byte string",
        "settlement",
        serde.encode("settlement", flagged("S", { institution_name: "x".repeat(70_000) })),
        /^contract violation: institution_name: string of 70000 bytes is longer than the limit of 65536 bytes$/,
      ],
      [
        "1,001 diagnoses",
        "settlement",
        serde.encode("settlement", flagged("D", { diagnoses: diagnoses(1_001) })),
        /^contract violation: diagnoses: more than the limit of 1000 entries$/,
      ],
      [
        "20,001 items",
        "settlement",
        serde.encode("settlement", flagged("I", { items: minimalItems(20_001) })),
        /^contract violation: items: more than the limit of 20000 entries$/,
      ],
      [
        "message over the limit",
        "settlement",
        serde.encode("settlement", flagged("M", { diagnoses: diagnoses(900, "x".repeat(1_000)) })),
        new RegExp(
          `^contract violation: message of \\d+ bytes is larger than the limit of ${maxMessageBytes} bytes`,
        ),
      ],
      [
        "truncated death record",
        "death",
        serde.encode("death", death("2025-01-01", { person_id: "HOSTILE-DEATH" })).subarray(0, -3),
        decodeFailed(".*(truncated at byte|exceeds the \\d+ bytes left)"),
      ],
      [
        "death record with trailing garbage",
        "death",
        Buffer.concat([
          serde.encode("death", death("2025-01-01", { person_id: "HOSTILE-DEATH" })),
          Buffer.from([7]),
        ]),
        decodeFailed("1 trailing bytes after the record"),
      ],
    ];
    const bad: { key: string; topic: string; value: Buffer; reason: RegExp }[] = [];
    for (let copy = 0; copy < 3; copy++) {
      for (const [name, kind, value, reason] of HOSTILE) {
        const topic = kind === "settlement" ? topics.settlements : topics.deaths;
        bad.push({ key: `${name}#${copy}`, topic, value, reason });
      }
    }

    const replayed = await cli(["replay", "--settlements", first, "--deaths", g.files.deaths], env);
    expect(
      [...replayed.stderr.matchAll(/^.*first\.ndjson:(\d+): skipped: (.*)$/gm)].map((m) => [m[1], m[2]]),
    ).toEqual([
      ["101", expect.stringMatching(/^line of \d+ bytes is longer than the limit of 786432 bytes/)],
      ["102", expect.stringMatching(/^contract violation: diagnoses: more than the limit of 1000 entries/)],
    ]);
    const producer = kafka.producer();
    await producer.connect();
    // One by one: the large ones together would exceed the broker's record-batch limit.
    for (const b of bad) await producer.send({ topic: b.topic, messages: [{ key: b.key, value: b.value }] });
    await producer.disconnect();
    await cli(["replay", "--settlements", second], env);

    // A worker that allocated what the bad records claim would exceed its 256 MiB heap and die.
    const capped = { ...env, NODE_OPTIONS: "--max-old-space-size=256" };
    const t0 = Date.now();
    const worker = spawnCli(["worker", "--until-caught-up"], capped);
    let peak = 0;
    const sampler = setInterval(() => {
      if (worker.pid && worker.exitCode === null) peak = Math.max(peak, peakMiB(worker.pid));
    }, 200);
    // A stalled worker (allocating, collecting garbage) is stopped and reported rather than waited for.
    const stop = setTimeout(() => worker.kill("SIGKILL"), 120_000);
    const result = await worker.result;
    clearTimeout(stop);
    clearInterval(sampler);
    expect(Date.now() - t0, "the worker stalled").toBeLessThan(120_000);
    expect(result.code, result.stderr).toBe(0);
    // The engine and embedded chdb of 1,500 settlements take about 400 MiB; one 3·10⁸-entry claim, gigabytes.
    expect(peak, `peak RSS ${Math.round(peak)} MiB`).toBeLessThan(1_024);

    const letters = await readTopic(kafka, topics.deadletter, bad.length);
    expect(await recordCount(kafka, topics.deadletter)).toBe(bad.length);
    const byKey = new Map(letters.map((l) => [l.key, l]));
    expect(byKey.size).toBe(bad.length);
    for (const b of bad) {
      const letter = byKey.get(b.key);
      expect(letter?.headers[DLQ_HEADERS.reason], b.key).toMatch(b.reason);
      expect(letter?.headers[DLQ_HEADERS.topic]).toBe(b.topic);
      expect(letter?.value?.equals(b.value), b.key).toBe(true);
    }

    await cli(["sink", "--until-caught-up"], capped);
    expect(await exported(env)).toEqual(expected);
  }, 300_000);
});
