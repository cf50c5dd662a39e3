// GET /api/v1/stream over a real socket and embedded chdb, with nothing but the store between
// the writer and the server (the poll `serve` relies on): suspects stored after a connection
// opened reach it scoped to the user's regions and run, person ids masked as the list masks
// them, `matching` decided by the list's filters, the filters' count moving; a filter the list
// refuses is refused here; machine roles may not stream; each stream is audited at both ends.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildServer, usersFromList } from "../../services/api/index.ts";
import { EmbeddedPipeline } from "../../services/embedded/pipeline.ts";
import { createLogger } from "../../services/log.ts";
import { chdbConfig, openStore, type Store } from "../../services/store/index.ts";
import { stay } from "../fixtures/events.ts";

const T = {
  admin: "fg_stream_admin_0123456789",
  invA: "fg_stream_inv_a_0123456789",
  his: "fg_stream_his_0123456789ab",
};
const A = "341502";
const B = "341503";
const inA = { region_code: A, institution_id: "H34150200123", institution_name: "六安市人民医院" };
const inB = { region_code: B, institution_id: "H34150300456", institution_name: "裕安区人民医院" };

const dir = mkdtempSync(join(tmpdir(), "fundguard-api-stream-"));
let store: Store;
let app: Awaited<ReturnType<typeof buildServer>>;
let base = "";
let pipeline: EmbeddedPipeline;

beforeAll(async () => {
  store = await openStore(chdbConfig(join(dir, "data")));
  app = await buildServer({
    store,
    users: usersFromList([
      { name: "admin", role: "admin", token: T.admin },
      { name: "inv-a", role: "investigator", regions: [A], token: T.invA },
      { name: "his", role: "his", token: T.his },
    ]),
    log: createLogger("api-stream-test", "silent"),
    maskKey: "k",
    streamPollMs: 200,
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const addr = app.server.address();
  if (!addr || typeof addr === "string") throw new Error("no address");
  base = `http://127.0.0.1:${addr.port}`;
  pipeline = new EmbeddedPipeline(store);
});

afterAll(async () => {
  await app?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Two stays ten days apart at one hospital: one readmission finding, stored as the pipeline stores. */
async function readmission(person: string, where: typeof inA): Promise<void> {
  for (const [a, d, n] of [
    ["2025-05-01", "2025-05-05", 1],
    ["2025-05-10", "2025-05-14", 2],
  ] as const) {
    const s = stay(a, d, { settlement_id: `${person}-${n}`, person_id: person, ...where });
    pipeline.publish({ kind: "settlement", value: s }, JSON.stringify(s));
  }
  await pipeline.process();
}

interface StreamItem {
  suspect_id: string;
  person_id: string;
  region_code: string;
  rule: string;
  case_status: string;
}
interface Event {
  name: string;
  data: { items?: StreamItem[]; matching?: string[]; total: number };
}

/** An open stream: its events as they come, parsed; `close` ends it. */
async function open(token: string, query = "") {
  const ctrl = new AbortController();
  const res = await fetch(`${base}/api/v1/stream${query}`, {
    headers: { authorization: `Bearer ${token}` },
    signal: ctrl.signal,
  });
  const events: Event[] = [];
  let buf = "";
  const reading = (async () => {
    if (!res.ok || !res.body) return;
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body) {
        buf += decoder.decode(chunk as Uint8Array, { stream: true });
        for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const name = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (name && data) events.push({ name, data: JSON.parse(data) });
        }
      }
    } catch {
      // aborted by close()
    }
  })();
  const until = async (pred: (e: Event[]) => boolean) => {
    for (let i = 0; i < 150 && !pred(events); i++) await new Promise((r) => setTimeout(r, 100));
    expect(pred(events), JSON.stringify(events)).toBe(true);
  };
  return {
    res,
    events,
    until,
    close: async () => {
      ctrl.abort();
      await reading;
    },
  };
}

const items = (events: Event[]) => events.flatMap((e) => e.data.items ?? []);

describe("GET /api/v1/stream", () => {
  it("sends suspects stored after it opened, scoped and masked per user; `matching` follows the filters", async () => {
    await readmission("P-BEFORE", inA);
    const admin = await open(T.admin);
    const invA = await open(T.invA);
    const filtered = await open(T.admin, "?region=341503");
    expect(admin.res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    await admin.until((e) => e.some((x) => x.name === "hello"));
    await invA.until((e) => e.some((x) => x.name === "hello"));
    await filtered.until((e) => e.some((x) => x.name === "hello"));
    expect(admin.events[0]?.data.total).toBe(1);

    await readmission("P-STREAM-A", inA);
    await readmission("P-STREAM-B", inB);
    await admin.until((e) => items(e).length >= 2);
    await invA.until((e) => items(e).length >= 1);
    await filtered.until((e) => items(e).length >= 2);
    // Only what was stored after the stream opened, once each.
    expect(
      items(admin.events)
        .map((s) => s.person_id)
        .sort(),
    ).toEqual(["P-STREAM-A", "P-STREAM-B"]);
    expect(admin.events.at(-1)?.data.total).toBe(3);
    // The investigator of region A: the A finding only, its person masked as the list masks it.
    const mine = items(invA.events);
    expect(mine.map((s) => [s.region_code, s.rule, s.case_status])).toEqual([[A, "readmission", "new"]]);
    expect(mine[0]?.person_id).toMatch(/^~[0-9a-f]{16}$/);
    const list = await fetch(`${base}/api/v1/suspects?person=${mine[0]?.person_id}`, {
      headers: { authorization: `Bearer ${T.invA}` },
    });
    expect(((await list.json()) as { items: StreamItem[] }).items.map((s) => s.suspect_id)).toEqual([
      mine[0]?.suspect_id,
    ]);
    // Filtered to region B: both arrive, only B's matches, and the count is the filter's.
    const b = items(filtered.events).find((s) => s.region_code === B);
    expect(filtered.events.flatMap((e) => e.data.matching ?? [])).toEqual([b?.suspect_id]);
    expect(filtered.events.at(-1)?.data.total).toBe(1);
    await Promise.all([admin.close(), invA.close(), filtered.close()]);

    // Audited at both ends, with the suspects sent.
    await new Promise((r) => setTimeout(r, 300));
    const audit = await fetch(`${base}/api/v1/audit?route=GET /api/v1/stream&limit=100`, {
      headers: { authorization: `Bearer ${T.admin}` },
    });
    const rows = (
      (await audit.json()) as { items: { who: string; rows: number; filters: { phase: string } }[] }
    ).items;
    const of = (who: string) =>
      rows
        .filter((r) => r.who === who)
        .map((r) => [r.filters.phase, r.rows])
        .sort();
    expect(of("inv-a")).toEqual([
      ["end", 1],
      ["start", 0],
    ]);
  });

  it("refuses what the list refuses, and machine roles", async () => {
    const raw = await fetch(`${base}/api/v1/stream?person=P-STREAM-A`, {
      headers: { authorization: `Bearer ${T.invA}` },
    });
    expect(raw.status).toBe(400);
    expect((await fetch(`${base}/api/v1/stream`)).status).toBe(401);
    const his = await fetch(`${base}/api/v1/stream`, { headers: { authorization: `Bearer ${T.his}` } });
    expect(his.status).toBe(403);
    expect(
      (
        await fetch(`${base}/api/v1/stream?severity=LOUD`, {
          headers: { authorization: `Bearer ${T.admin}` },
        })
      ).status,
    ).toBe(400);
  });
});
