// Every rule of the registry can be checked before payment: for a generated case of each rule (the
// detector's own generator scheme), checking the labelled settlement against what its person had
// before it gets that rule's finding, as ingesting it then does. Derived from the registry, so a new
// detector is covered by its own scheme, with no edit here.
import { beforeAll, describe, expect, it } from "vitest";
import { DETECTORS, loadCatalogs } from "../../detectors/index.ts";
import type { DeathRecord, Settlement } from "../../schemas/index.ts";
import { checkOnEngine, checkSettlement } from "../../services/engine/check.ts";
import { activate, Engine, type EngineEvent } from "../../services/engine/engine.ts";
import { generate } from "../../services/generate/generate.ts";
import { testPersonStore } from "../fixtures/person-store.ts";

interface Label {
  detector: string;
  rule: string;
  settlement_id: string;
}

const detectors = activate(DETECTORS, loadCatalogs());
const options = { detectors, retentionDays: 400 };
const everyRule = DETECTORS.flatMap((d) => Object.keys(d.rules).map((r) => `${d.id}/${r}`)).sort();

describe("check of each registered rule's generated cases", () => {
  const settlements: Settlement[] = [];
  const deaths: DeathRecord[] = [];
  const labels: Label[] = [];

  beforeAll(async () => {
    await generate({
      settlements: 30_000,
      seed: "check-rules",
      schemeRate: 0.1,
      emit: {
        settlement: (l) => void settlements.push(JSON.parse(l) as Settlement),
        death: (l) => void deaths.push(JSON.parse(l) as DeathRecord),
        label: (l) => void labels.push(JSON.parse(l) as Label),
      },
    });
  }, 120_000);

  it("finds each rule on a case checked against the evidence that arrived before it, as ingesting it then does", () => {
    const position = new Map(settlements.map((s, i) => [s.settlement_id, i]));
    const found = new Set<string>();
    for (const label of labels) {
      const rule = `${label.detector}/${label.rule}`;
      if (found.has(rule)) continue;
      const at = position.get(label.settlement_id);
      const proposed = at === undefined ? undefined : settlements[at];
      if (proposed?.event_type !== "SETTLE") continue;
      // What had arrived for the person before the settlement: earlier lines, deaths reported before it.
      const evidence = {
        settlements: settlements.slice(0, at).filter((s) => s.person_id === proposed.person_id),
        deaths: deaths.filter(
          (d) => d.person_id === proposed.person_id && d.reported_at <= proposed.settled_at,
        ),
      };
      const answer = checkSettlement(proposed, evidence, options);
      const checked = answer.findings.some((f) => `${f.detector}/${f.rule}` === rule);
      // Ingesting the same events, then the settlement, in one engine: the stream's verdict.
      const engine = new Engine({
        store: testPersonStore(),
        detectors,
        retentionDays: options.retentionDays,
      });
      const events: EngineEvent[] = [
        ...evidence.settlements.map((value): EngineEvent => ({ kind: "settlement", value })),
        ...evidence.deaths.map((value): EngineEvent => ({ kind: "death", value })),
      ];
      for (const e of events) engine.process(e);
      const ingested = engine
        .process({ kind: "settlement", value: proposed })
        .some((c) => c.op === "upsert" && `${c.suspect.detector}/${c.suspect.rule}` === rule);
      expect(checked, `${rule} on ${label.settlement_id}`).toBe(ingested);
      if (checked) found.add(rule);
    }
    expect([...found].sort()).toEqual(everyRule);
  });

  it("gets from the live engine that processed the stream the replay's answer, for re-checks of its settlements", () => {
    const engine = new Engine({ store: testPersonStore(), detectors, retentionDays: options.retentionDays });
    const events: EngineEvent[] = [
      ...settlements.map((value): EngineEvent => ({ kind: "settlement", value })),
      ...deaths.map((value): EngineEvent => ({ kind: "death", value })),
    ].sort((a, b) => eventAt(a).localeCompare(eventAt(b)));
    for (const e of events) engine.process(e);
    const of = new Map<string, { settlements: Settlement[]; deaths: DeathRecord[] }>();
    const evidenceOf = (person: string) => {
      const had = of.get(person);
      if (had) return had;
      const fresh = { settlements: [] as Settlement[], deaths: [] as DeathRecord[] };
      of.set(person, fresh);
      return fresh;
    };
    for (const s of settlements) evidenceOf(s.person_id).settlements.push(s);
    for (const d of deaths) evidenceOf(d.person_id).deaths.push(d);
    let flagged = 0;
    for (const proposed of settlements.filter((s) => s.event_type === "SETTLE").slice(-3_000)) {
      const replayed = checkSettlement(proposed, evidenceOf(proposed.person_id), options);
      expect(checkOnEngine(proposed, engine, detectors), proposed.settlement_id).toEqual(replayed);
      if (replayed.decision !== "PASS") flagged++;
    }
    expect(flagged).toBeGreaterThan(10);
  });
});

const eventAt = (e: EngineEvent) => (e.kind === "settlement" ? e.value.settled_at : e.value.reported_at);
