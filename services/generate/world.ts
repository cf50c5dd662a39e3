// The simulated world: population, institutions, per-person state that keeps the background
// clean by construction, settlement rendering, and the planned-event calendar. Pure
// computation: output goes to a Sink, so the caller decides where lines are written.
import type { Catalogs } from "../../detectors/catalog.ts";
import type { DeathRecord, Diagnosis, LineItem, Settlement } from "../../schemas/index.ts";
import { ageOn, dateOf, dayOfMs, isoCst, msOf, yearOf } from "./calendar.ts";
import type { Diag, Item, Pools, Sex } from "./pools.ts";
import { AliasTable, type Rng } from "./prng.ts";
import { DISTRICTS, PHARMACY_CHAINS, STREETS, TOWNS } from "./reference-data.ts";

/** Days after the service period in which reversals, resubmissions and death reports still arrive. */
export const TAIL_DAYS = 30;
/** Longest service period: with the tail, event time stays well inside the 400-day retention. */
export const MAX_DAYS = 366;
/** Background yearly out-of-pocket ceiling (fen): under the 15,000-yuan monitoring threshold. */
export const OOP_CAP_FEN = 1_490_000;
/** high_out_of_pocket thresholds (fen), as configured by default in the detector. */
export const OOP_THRESHOLDS_FEN = [1_500_000, 3_000_000] as const;

const REVERSAL_RATE = 0.015;
const RESUBMIT_SHARE = 0.4;
const LATE_WRITE_RATE = 0.01;
const EARLY_REVERSAL_SHARE = 0.15;

export const F_NO_BG_STAYS = 1;
export const F_NO_CAP = 2;
export const F_NO_REVERSE = 4;
export const F_SCHEME = 8;
/** No background settlements at all: a detector scheme's person has only what the scheme plans. */
export const F_NO_BACKGROUND = 16;

type VisitType = Settlement["visit_type"];
type Reason = NonNullable<Settlement["discharge_reason"]>;

export interface Institution {
  index: number;
  id: string;
  name: string;
  district: number;
  kind: "HOSPITAL" | "CLINIC" | "PHARMACY";
  level: 1 | 2 | 3;
  priceFactor: number;
  mch: boolean;
}

export interface StayRef {
  inst: number;
  adm: number;
  dis: number;
}
interface VisitRef {
  inst: number;
  day: number;
}
interface Dyn {
  stays: StayRef[];
  visits: VisitRef[];
}

export interface LineSpec {
  item: Item;
  qty: number;
  day: number;
}

export interface LabelSpec {
  detector: string;
  rule: string;
  /** Roles (in the scheme) of the related settlements, in settlement_ids[1..] order. */
  related: string[];
}

export type Fate = "keep" | "reverse" | "resubmit";

export interface SchemeCtx {
  id: number;
  type: string;
  variant: string;
  person: number;
  ids: Map<string, string>;
  items: Map<string, LineItem[]>;
  /** Labels waiting for a related settlement that has not been rendered yet. */
  pending: { label: LabelSpec; settlementId: string }[];
}

export interface Spec {
  p: number;
  inst: number;
  type: VisitType;
  adm: number;
  dis: number;
  reason: Reason | null;
  diag: Diag;
  /** Replaces the generated diagnoses. */
  diagnoses?: Diagnosis[];
  extraDiagnoses?: Diagnosis[];
  extraLines?: LineSpec[];
  /** Copy the lines of an earlier settlement in the same scheme. */
  copy?: { role: string; mode: "all" | "one" };
  /** Only the daily / registration lines and the forced ones. */
  bare?: boolean;
  scheme?: { ctx: SchemeCtx; role: string; labels: LabelSpec[]; fate: Fate };
}

type Planned =
  | { kind: "settle"; sec: number; spec: Spec }
  | { kind: "reversal"; sec: number; original: Settlement }
  | { kind: "resubmit"; sec: number; original: Settlement; labels?: { ctx: SchemeCtx; labels: LabelSpec[] } }
  | { kind: "death"; sec: number; record: DeathRecord };

export interface Label {
  detector: string;
  rule: string;
  settlement_id: string;
  related: string[];
  person_id: string;
  scheme: string;
}

export interface Sink {
  settlement(line: string, writeMs: number): void;
  death(line: string): void;
  label(label: Label): void;
}

export interface WorldStats {
  settlements: number;
  reversals: number;
  resubmissions: number;
  deaths: number;
  lateWritten: number;
  reversalsBeforeSettlement: number;
  stays: number;
  inHospitalDeaths: number;
  retractedSchemes: number;
  resubmittedSchemes: number;
}

export interface WorldOptions {
  rng: Rng;
  pools: Pools;
  catalogs: Catalogs;
  persons: number;
  day0: number;
  days: number;
  sink: Sink;
  /** Numbers already taken by an earlier stream this one continues (default none). */
  idsAfter?: IdCounters;
}

/** The last person number and settlement / visit sequence numbers a stream used. */
export interface IdCounters {
  persons: number;
  settlements: number;
  visits: number;
}

const KINDS = ["OUTPATIENT", "PHARMACY", "INPATIENT"] as const;
/** Daily stay lines (bed, nursing, ward round): never the line a scheme copies. */
const DAILY_CODES = new Set(["001108000010000", "001202000010000", "001202000020000", "001103000010000"]);
const DEATH_SOURCES: DeathRecord["source"][] = ["CIVIL_AFFAIRS", "PUBLIC_SECURITY", "HEALTH", "OTHER"];

/** Cumulative distribution of visit times over the day, as (second of day, cumulative share). */
const DAY_PROFILE: readonly [number, number][] = [
  [7.5 * 3600, 0],
  [12 * 3600, 0.47],
  [13.5 * 3600, 0.52],
  [18 * 3600, 0.9],
  [21.5 * 3600, 1],
];

export function secondOfDayAt(u: number): number {
  for (let i = 1; i < DAY_PROFILE.length; i++) {
    const [s1, c1] = DAY_PROFILE[i] as [number, number];
    const [s0, c0] = DAY_PROFILE[i - 1] as [number, number];
    if (u <= c1) return Math.floor(s0 + ((u - c0) / (c1 - c0 || 1)) * (s1 - s0));
  }
  return 21 * 3600;
}

export class World {
  readonly rng: Rng;
  readonly pools: Pools;
  readonly catalogs: Catalogs;
  readonly n: number;
  readonly day0: number;
  readonly days: number;
  /** Last day with services. */
  readonly lastServiceDay: number;
  /** Last day with any event (reversals, resubmissions, death reports). */
  readonly lastEventDay: number;
  readonly startYear: number;

  // Static person attributes, in typed arrays: O(population) memory, no per-person objects.
  readonly sex: Uint8Array; // 0 M, 1 F
  readonly birth: Int32Array;
  readonly resident: Uint8Array; // 1 RESIDENT, 0 EMPLOYEE
  readonly district: Uint16Array;
  readonly death: Int32Array; // day of death, or NO_DEATH
  readonly chronic: Int16Array; // index in pools.diagnoses, -1 none
  readonly flags: Uint8Array;
  private readonly weight: Float64Array;
  private readonly lastMs: Float64Array;
  /** Committed out-of-pocket fen per person per calendar year of the span (3 slots). */
  private readonly oop: Float64Array;
  private alias: AliasTable | undefined;

  readonly institutions: Institution[] = [];
  private readonly districtHospitals: number[][] = [];
  private readonly cityHospitals = new Map<string, number[]>();
  private readonly districtClinics: number[][] = [];
  private readonly districtPharmacies: number[][] = [];
  private readonly cityMch = new Map<string, number>();

  private readonly dyn = new Map<number, Dyn>();
  private readonly schedule: Planned[][];
  private readonly sink: Sink;
  private readonly diagByCode = new Map<string, Diag>();
  /** Candidate diagnoses per (kind, sex, age): [list, cumulative weights]. */
  private readonly diagChoice = new Map<number, { list: Diag[]; weights: number[] }>();

  committed = 0;
  /** Labels still waiting for a related settlement (must be 0 at the end). */
  pendingLabels = 0;
  /** The simulation's current day: per-person state before it is pruned. */
  today: number;
  private settlementSeq: number;
  private visitSeq: number;
  /** Person numbers start after this one. */
  private readonly personBase: number;
  private schemeSeq = 0;
  readonly stats: WorldStats = {
    settlements: 0,
    reversals: 0,
    resubmissions: 0,
    deaths: 0,
    lateWritten: 0,
    reversalsBeforeSettlement: 0,
    stays: 0,
    inHospitalDeaths: 0,
    retractedSchemes: 0,
    resubmittedSchemes: 0,
  };
  firstEventMs = Number.POSITIVE_INFINITY;
  lastEventMs = Number.NEGATIVE_INFINITY;

  static readonly NO_DEATH = 0x7fffffff;

  constructor(o: WorldOptions) {
    this.rng = o.rng;
    this.pools = o.pools;
    this.catalogs = o.catalogs;
    this.n = o.persons;
    this.day0 = o.day0;
    this.days = o.days;
    this.lastServiceDay = o.day0 + o.days - 1;
    this.lastEventDay = this.lastServiceDay + TAIL_DAYS;
    this.startYear = yearOf(o.day0);
    this.today = o.day0 - 1;
    this.sink = o.sink;
    this.personBase = o.idsAfter?.persons ?? 0;
    this.settlementSeq = o.idsAfter?.settlements ?? 0;
    this.visitSeq = o.idsAfter?.visits ?? 0;
    this.sex = new Uint8Array(this.n);
    this.birth = new Int32Array(this.n);
    this.resident = new Uint8Array(this.n);
    this.district = new Uint16Array(this.n);
    this.death = new Int32Array(this.n).fill(World.NO_DEATH);
    this.chronic = new Int16Array(this.n).fill(-1);
    this.flags = new Uint8Array(this.n);
    this.weight = new Float64Array(this.n);
    this.lastMs = new Float64Array(this.n).fill(Number.NEGATIVE_INFINITY);
    this.oop = new Float64Array(this.n * 3);
    this.schedule = Array.from({ length: o.days + TAIL_DAYS }, () => []);
    for (const d of o.pools.diagnoses) this.diagByCode.set(d.code, d);
    this.buildInstitutions();
  }

  // ---------------------------------------------------------------- institutions

  private addInstitution(
    district: number,
    kind: Institution["kind"],
    level: Institution["level"],
    name: string,
    number: number,
    mch = false,
  ): number {
    const d = DISTRICTS[district] as (typeof DISTRICTS)[number];
    const index = this.institutions.length;
    this.institutions.push({
      index,
      id: `${kind === "PHARMACY" ? "P" : "H"}${d.code}${String(number).padStart(5, "0")}`,
      name,
      district,
      kind,
      level,
      priceFactor: level === 3 ? 1.15 : level === 2 ? 1 : 0.85,
      mch,
    });
    return index;
  }

  private buildInstitutions(): void {
    const rng = this.rng;
    const clinics = Math.min(20, Math.max(2, Math.round(this.n / 6000)));
    const pharmacies = Math.min(30, Math.max(3, Math.round(this.n / 4000)));
    const seenCity = new Set<string>();
    DISTRICTS.forEach((d, i) => {
      const hospitals: number[] = [];
      const city = this.cityHospitals.get(d.city) ?? [];
      if (!seenCity.has(d.city)) {
        seenCity.add(d.city);
        city.push(this.addInstitution(i, "HOSPITAL", 3, `${d.city}市第一人民医院`, 1));
        city.push(this.addInstitution(i, "HOSPITAL", 3, `${d.city}市中医院`, 2));
        const mch = this.addInstitution(i, "HOSPITAL", 3, `${d.city}市妇幼保健院`, 3, true);
        city.push(mch);
        this.cityMch.set(d.city, mch);
        this.cityHospitals.set(d.city, city);
      }
      const county = d.name.endsWith("县");
      hospitals.push(this.addInstitution(i, "HOSPITAL", 2, `${d.city}市${d.name}人民医院`, 11));
      hospitals.push(this.addInstitution(i, "HOSPITAL", 2, `${d.city}市${d.name}中医医院`, 12));
      this.districtHospitals.push(hospitals);
      const cl: number[] = [];
      const streets = rng.sample(STREETS, clinics);
      const towns = rng.sample(TOWNS, clinics);
      for (let k = 0; k < clinics; k++) {
        const name =
          county && k % 2 === 0
            ? `${d.name}${towns[k % towns.length] ?? "城关"}镇卫生院`
            : k % 3 === 2
              ? `${d.name}${streets[k % streets.length] ?? "人民路"}诊所`
              : `${d.name}${streets[k % streets.length] ?? "人民路"}社区卫生服务中心`;
        cl.push(this.addInstitution(i, "CLINIC", 1, name, 10001 + k));
      }
      this.districtClinics.push(cl);
      const ph: number[] = [];
      for (let k = 0; k < pharmacies; k++) {
        const chain = rng.pick(PHARMACY_CHAINS);
        const street = rng.pick(STREETS);
        ph.push(this.addInstitution(i, "PHARMACY", 1, `${chain}(${d.name}${street}店)`, 20001 + k));
      }
      this.districtPharmacies.push(ph);
    });
  }

  private cityOf(p: number): string {
    return (DISTRICTS[this.district[p] as number] as (typeof DISTRICTS)[number]).city;
  }

  /** Hospitals a person would use: their district's and their city's. */
  hospitalsFor(p: number): number[] {
    return [
      ...(this.districtHospitals[this.district[p] as number] ?? []),
      ...(this.cityHospitals.get(this.cityOf(p)) ?? []),
    ];
  }

  pickHospital(
    p: number,
    opts: { severe?: boolean; maternity?: boolean; exclude?: readonly number[] } = {},
  ): number {
    if (opts.maternity && this.rng.chance(0.7)) {
      const mch = this.cityMch.get(this.cityOf(p));
      if (mch !== undefined && !opts.exclude?.includes(mch)) return mch;
    }
    const list = this.hospitalsFor(p).filter(
      (h) => !opts.exclude?.includes(h) && !(this.institutions[h] as Institution).mch,
    );
    const pool = list.length > 0 ? list : this.hospitalsFor(p).filter((h) => !opts.exclude?.includes(h));
    return this.rng.weighted(pool, (h) =>
      (this.institutions[h] as Institution).level === 3 ? (opts.severe ? 2 : 1) : 1.2,
    );
  }

  pickClinic(p: number): number {
    const own = this.district[p] as number;
    const d = this.rng.chance(0.9) ? own : this.rng.int(0, DISTRICTS.length - 1);
    return this.rng.pick(this.districtClinics[d] as number[]);
  }

  pickPharmacy(p: number, exclude?: number): number {
    const own = this.district[p] as number;
    const d = this.rng.chance(0.9) ? own : this.rng.int(0, DISTRICTS.length - 1);
    const list = (this.districtPharmacies[d] as number[]).filter((x) => x !== exclude);
    return this.rng.pick(list.length > 0 ? list : (this.districtPharmacies[d] as number[]));
  }

  pickOutpatientPlace(p: number, child: boolean): number {
    return this.rng.chance(child ? 0.55 : 0.45)
      ? this.pickHospital(p, { maternity: child })
      : this.pickClinic(p);
  }

  // ---------------------------------------------------------------- population

  personId(p: number): string {
    return `P${String(this.personBase + p + 1).padStart(10, "0")}`;
  }

  private personIndex(personId: string): number {
    return Number(personId.slice(1)) - 1 - this.personBase;
  }

  /** The numbers used so far, for a stream that continues this one. */
  get idsUsed(): IdCounters {
    return { persons: this.personBase + this.n, settlements: this.settlementSeq, visits: this.visitSeq };
  }

  hasFlag(p: number, flag: number): boolean {
    return ((this.flags[p] as number) & flag) !== 0;
  }

  sexOf(p: number): Sex {
    return this.sex[p] === 0 ? "M" : "F";
  }

  ageAt(p: number, day: number): number {
    return ageOn(this.birth[p] as number, day);
  }

  diag(code: string): Diag {
    const d = this.diagByCode.get(code);
    if (!d) throw new Error(`unknown diagnosis ${code}`);
    return d;
  }

  /** A random member of the insured population (not yet a scheme). */
  randomPerson(p: number): void {
    const rng = this.rng;
    this.chronic[p] = -1;
    this.death[p] = World.NO_DEATH;
    this.flags[p] = 0;
    const band = rng.float();
    const age =
      band < 0.16
        ? rng.int(0, 14)
        : band < 0.78
          ? rng.int(15, 59)
          : Math.min(99, 60 + Math.floor(-12 * Math.log(1 - rng.float())));
    this.setBasics(p, rng.chance(0.51) ? "M" : "F", this.day0 - age * 365 - rng.int(0, 364));
    this.district[p] = rng.int(0, DISTRICTS.length - 1);
    const years = this.ageAt(p, this.day0);
    this.resident[p] = years < 18 ? 1 : years < 60 ? (rng.chance(0.55) ? 0 : 1) : rng.chance(0.45) ? 0 : 1;
    if (years >= 35 && rng.chance(Math.min(0.7, (years - 30) / 80))) {
      const options = this.pools.diagnoses.filter(
        (d) => d.chronic && years >= d.ages[0] && years <= d.ages[1] && (!d.sex || d.sex === this.sexOf(p)),
      );
      if (options.length > 0)
        this.chronic[p] = this.pools.diagnoses.indexOf(
          rng.weighted(options, (d) => (d.op ?? 0) + (d.rx ?? 0)),
        );
    }
    const rate = years < 15 ? 0.0005 : years < 60 ? 0.002 : years < 75 ? 0.015 : 0.06;
    if (rng.chance((rate * this.days) / 365)) this.death[p] = this.day0 + rng.int(0, this.days - 1);
  }

  setBasics(p: number, sex: Sex, birthDay: number): void {
    this.sex[p] = sex === "M" ? 0 : 1;
    this.birth[p] = birthDay;
  }

  /** Finishes population set-up: sampling weights and the background plans of dying persons. */
  finishPopulation(): void {
    const rng = this.rng;
    for (let p = 0; p < this.n; p++) {
      const age = this.ageAt(p, this.day0);
      const base = age < 15 ? 0.9 : age < 60 ? 0.6 : 1.4;
      this.weight[p] = base * (this.chronic[p] !== -1 ? 1.8 : 1) * rng.lognormal(1, 0.5);
      if (this.death[p] !== World.NO_DEATH && !this.hasFlag(p, F_SCHEME))
        this.planDeath(p, this.death[p] as number, rng.chance(0.4));
    }
    this.alias = new AliasTable(this.weight);
  }

  drawPerson(): number {
    return (this.alias as AliasTable).draw(this.rng);
  }

  /** Death record(s) for `p`, and optionally a terminal stay ending in death on that day. */
  planDeath(p: number, day: number, inHospital: boolean, delayDays?: number): number {
    const rng = this.rng;
    this.death[p] = day;
    if (inHospital) {
      const age = this.ageAt(p, day);
      const options = this.pools.diagnoses.filter(
        (d) => d.terminal && age >= d.ages[0] - 10 && (!d.sex || d.sex === this.sexOf(p)),
      );
      if (options.length > 0) {
        const diag = rng.pick(options);
        const los = rng.int(diag.los?.[0] ?? 3, diag.los?.[1] ?? 10);
        const adm = Math.max(this.day0, day - los);
        const inst = this.pickHospital(p, { severe: true });
        if (this.stayOk(p, inst, adm, day)) {
          const settleDay = Math.min(this.lastEventDay, day + rng.int(0, 3));
          this.plan(settleDay, rng.int(9 * 3600, 16 * 3600), {
            p,
            inst,
            type: "INPATIENT",
            adm,
            dis: day,
            reason: "DEATH",
            diag,
          });
          this.stats.inHospitalDeaths++;
        }
      }
    }
    const delay = delayDays ?? rng.int(14, Math.min(56, this.lastEventDay - day));
    const source = rng.pick(DEATH_SOURCES);
    this.planDeathRecord(p, day, source, day + delay);
    // Now and then a second department reports the same death later (still within 8 weeks).
    if (rng.chance(0.05) && delay < 56 && day + delay + 1 <= this.lastEventDay) {
      const again = rng.int(day + delay + 1, Math.min(this.lastEventDay, day + 56));
      this.planDeathRecord(p, day, rng.pick(DEATH_SOURCES.filter((s) => s !== source)), again);
    }
    return day + delay;
  }

  planDeathRecord(p: number, deathDay: number, source: DeathRecord["source"], reportDay: number): void {
    const sec = this.rng.int(8 * 3600, 18 * 3600);
    const record: DeathRecord = {
      person_id: this.personId(p),
      death_date: dateOf(deathDay),
      source,
      reported_at: isoCst(msOf(reportDay, sec)),
    };
    this.at(reportDay).push({ kind: "death", sec, record });
  }

  // ---------------------------------------------------------------- per-person state

  private dynOf(p: number): Dyn {
    const today = this.today;
    let d = this.dyn.get(p);
    if (!d) {
      d = { stays: [], visits: [] };
      this.dyn.set(p, d);
      return d;
    }
    if (d.visits.length > 0 && d.visits.some((v) => v.day < today))
      d.visits = d.visits.filter((v) => v.day >= today);
    if (d.stays.length > 0 && d.stays.some((s) => s.dis < today - 200))
      d.stays = d.stays.filter((s) => s.dis >= today - 200);
    return d;
  }

  private peekDyn(p: number): Dyn | undefined {
    if (!this.dyn.has(p)) return undefined;
    const d = this.dynOf(p);
    if (d.stays.length === 0 && d.visits.length === 0) {
      this.dyn.delete(p);
      return undefined;
    }
    return d;
  }

  /** Drops per-person state that can no longer matter (past visits, stays older than the horizons). */
  sweep(): void {
    for (const p of [...this.dyn.keys()]) this.peekDyn(p);
  }

  get activePersons(): number {
    return this.dyn.size;
  }

  /** A new stay keeps the background clean: no overlap, no readmission within 15 days, ≤ 3 stays in 180 days, no visit inside. */
  stayOk(p: number, inst: number, adm: number, dis: number, extra: readonly StayRef[] = []): boolean {
    const d = this.peekDyn(p);
    const stays = d ? [...d.stays, ...extra] : [...extra];
    for (const s of stays) {
      if (adm < s.dis && s.adm < dis) return false;
      if (adm === s.adm) return false;
      if (s.inst === inst) {
        if (adm <= s.dis && s.adm <= dis) return false;
        if (s.dis <= adm && adm - s.dis <= 16) return false;
        if (dis <= s.adm && s.adm - dis <= 16) return false;
      }
    }
    if (d) {
      for (const v of d.visits) {
        if (adm < v.day && v.day < dis) return false;
        if (v.inst === inst && adm <= v.day && v.day <= dis) return false;
      }
    }
    const admissions = stays.map((s) => s.adm);
    admissions.push(adm);
    admissions.sort((a, b) => a - b);
    for (let i = 0; i + 3 < admissions.length; i++) {
      if ((admissions[i + 3] as number) - (admissions[i] as number) <= 181) return false;
    }
    return true;
  }

  /** An outpatient or pharmacy visit: not inside a stay, and one settlement per institution per day. */
  visitOk(p: number, inst: number, day: number): boolean {
    if (day > (this.death[p] as number)) return false;
    const d = this.peekDyn(p);
    if (!d) return true;
    for (const s of d.stays) {
      if (s.adm < day && day < s.dis) return false;
      if (s.inst === inst && s.adm <= day && day <= s.dis) return false;
    }
    for (const v of d.visits) if (v.inst === inst && v.day === day) return false;
    return true;
  }

  registerStay(p: number, inst: number, adm: number, dis: number): void {
    this.dynOf(p).stays.push({ inst, adm, dis });
  }

  registerVisit(p: number, inst: number, day: number): void {
    this.dynOf(p).visits.push({ inst, day });
  }

  // ---------------------------------------------------------------- planning

  private at(day: number): Planned[] {
    if (day <= this.today)
      throw new Error(`internal error: planning for ${dateOf(day)}, which is already under way`);
    const list = this.schedule[day - this.day0];
    if (!list) throw new Error(`day ${dateOf(day)} is outside the generated span`);
    return list;
  }

  /** Plans a settlement (registered in the person's state now, rendered on `settleDay`). */
  plan(settleDay: number, sec: number, spec: Spec): void {
    if (spec.type === "INPATIENT") this.registerStay(spec.p, spec.inst, spec.adm, spec.dis);
    else this.registerVisit(spec.p, spec.inst, spec.adm);
    this.at(settleDay).push({ kind: "settle", sec, spec });
    this.committed++;
  }

  newScheme(type: string, variant: string, p: number): SchemeCtx {
    return { id: ++this.schemeSeq, type, variant, person: p, ids: new Map(), items: new Map(), pending: [] };
  }

  /** The events planned for `day`, in time order (stable for equal times). */
  takeDay(day: number): Planned[] {
    const list = this.schedule[day - this.day0];
    if (!list) throw new Error(`day ${dateOf(day)} is outside the generated span`);
    this.schedule[day - this.day0] = [];
    return list.sort((a, b) => a.sec - b.sec);
  }

  // ---------------------------------------------------------------- background

  private diagFor(p: number, kind: 0 | 1 | 2, age: number): Diag | undefined {
    const rng = this.rng;
    const chronic = this.chronic[p] as number;
    if (chronic >= 0 && kind !== 2 && rng.chance(0.65)) {
      const d = this.pools.diagnoses[chronic] as Diag;
      if ((kind === 0 ? d.op : d.rx) && (kind === 0 || (d.drugs?.length ?? 0) > 0)) return d;
    }
    const key = kind * 1000 + (this.sex[p] as number) * 200 + Math.min(age, 110);
    let choice = this.diagChoice.get(key);
    if (!choice) {
      const list = this.pools.diagnoses.filter((d) => {
        const w = kind === 0 ? d.op : kind === 1 ? d.rx : d.ip;
        return (
          (w ?? 0) > 0 &&
          age >= d.ages[0] &&
          age <= d.ages[1] &&
          (!d.sex || d.sex === this.sexOf(p)) &&
          (kind !== 1 || (d.drugs ?? []).some((k) => this.pools.has(k)))
        );
      });
      choice = { list, weights: list.map((d) => (kind === 0 ? d.op : kind === 1 ? d.rx : d.ip) ?? 0) };
      this.diagChoice.set(key, choice);
    }
    if (choice.list.length === 0) return undefined;
    return choice.list[rng.weightedIndex(choice.weights)];
  }

  /** One background visit for `p` at `ms` on `day`; returns false when it would not be clean. */
  background(p: number, day: number, ms: number): boolean {
    const rng = this.rng;
    if (day > (this.death[p] as number) || ms <= (this.lastMs[p] as number)) return false;
    if (this.hasFlag(p, F_NO_BACKGROUND)) return false;
    const age = this.ageAt(p, day);
    const chronic = this.chronic[p] !== -1;
    const elderly = age >= 60;
    const ipShare = age < 15 ? 0.035 : chronic ? (elderly ? 0.07 : 0.05) : elderly ? 0.06 : 0.03;
    const rxShare = age < 15 ? 0.11 : chronic ? 0.48 : 0.28;
    const u = rng.float();
    const kind: 0 | 1 | 2 = u < ipShare ? 2 : u < ipShare + rxShare ? 1 : 0;
    if (kind === 2) return this.backgroundStay(p, day, age);
    const diag = this.diagFor(p, kind, age);
    if (!diag) return false;
    const inst = kind === 1 ? this.pickPharmacy(p) : this.pickOutpatientPlace(p, age < 15);
    if (!this.visitOk(p, inst, day)) return false;
    const spec: Spec = { p, inst, type: KINDS[kind], adm: day, dis: day, reason: null, diag };
    if (!this.settle(spec, ms, true)) return false;
    this.registerVisit(p, inst, day);
    this.committed++;
    return true;
  }

  private backgroundStay(p: number, day: number, age: number): boolean {
    const rng = this.rng;
    if (this.hasFlag(p, F_NO_BG_STAYS)) return false;
    const diag = this.diagFor(p, 2, age);
    if (!diag) return false;
    let dis = Math.min(this.lastServiceDay, day + rng.int(diag.los?.[0] ?? 3, diag.los?.[1] ?? 8));
    let reason: Reason = rng.chance(0.97) ? "NORMAL" : "OTHER";
    const death = this.death[p] as number;
    if (death <= dis) {
      dis = death;
      reason = "DEATH";
    }
    const maternity = diag.code.startsWith("O");
    const inst = this.pickHospital(p, { severe: diag.severe ?? false, maternity });
    if (!this.stayOk(p, inst, day, dis)) return false;
    // A few stays end in a transfer to a higher-level hospital, admitted there the same day.
    let transfer: Spec | undefined;
    if (reason === "NORMAL" && rng.chance(0.03) && dis > day) {
      const inst2 = this.pickHospital(p, { severe: true, exclude: [inst] });
      const dis2 = Math.min(this.lastServiceDay, dis + rng.int(3, 12), death);
      const reason2: Reason = dis2 === death ? "DEATH" : "NORMAL";
      if (dis2 >= dis && this.stayOk(p, inst2, dis, dis2, [{ inst, adm: day, dis }])) {
        reason = "TRANSFER";
        transfer = { p, inst: inst2, type: "INPATIENT", adm: dis, dis: dis2, reason: reason2, diag };
      }
    }
    // The stay settles on its discharge day (a death possibly a little later): always after today.
    let settleDay = reason === "DEATH" ? Math.min(this.lastEventDay, dis + rng.int(0, 2)) : dis;
    if (settleDay <= this.today) {
      if (reason !== "DEATH") return false;
      settleDay = this.today + 1;
    }
    this.plan(settleDay, rng.int(9 * 3600, 16 * 3600 + 1800), {
      p,
      inst,
      type: "INPATIENT",
      adm: day,
      dis,
      reason,
      diag,
    });
    if (reason === "DEATH") this.stats.inHospitalDeaths++;
    if (transfer) {
      const settle2 =
        transfer.reason === "DEATH"
          ? Math.min(this.lastEventDay, transfer.dis + rng.int(0, 2))
          : transfer.dis;
      this.plan(settle2, rng.int(9 * 3600, 16 * 3600 + 1800), transfer);
    }
    return true;
  }

  // ---------------------------------------------------------------- rendering

  private unitPrice(item: Item, inst: Institution): number {
    return item.category === "SERVICE" && !item.fixedPrice
      ? Math.round(item.price * inst.priceFactor)
      : item.price;
  }

  private qty(item: Item): number {
    const q = this.rng.int(item.qty[0], item.qty[1]);
    return item.halves && this.rng.chance(0.3) ? q + 0.5 : q;
  }

  private usable(keys: readonly string[] | undefined, sex: Sex): Item[] {
    const out: Item[] = [];
    for (const k of keys ?? []) {
      if (!this.pools.has(k)) continue;
      const it = this.pools.item(k);
      if (!it.sex || it.sex === sex) out.push(it);
    }
    return out;
  }

  /** A pediatric-catalog drug still allowed for `p` on every day up to `lastDay`. */
  private pediatricFor(p: number, lastDay: number): Item | undefined {
    const age = this.ageAt(p, lastDay);
    const options = this.pools.pediatric.filter((x) => (x.ageLimit as number) > age);
    return options.length > 0 ? this.rng.pick(options) : undefined;
  }

  private buildLines(spec: Spec): LineSpec[] {
    const rng = this.rng;
    const p = spec.p;
    const sex = this.sexOf(p);
    const inst = this.institutions[spec.inst] as Institution;
    const lines: LineSpec[] = [];
    const add = (item: Item, day: number, qty = this.qty(item)) => lines.push({ item, qty, day });
    const child = this.ageAt(p, spec.adm) < 15;
    const diag = spec.diag;

    if (spec.type === "OUTPATIENT") {
      const reg =
        inst.kind === "CLINIC"
          ? "reg_clinic"
          : inst.level === 3 && rng.chance(0.3)
            ? "reg_expert"
            : "reg_general";
      add(this.pools.item(reg), spec.adm, 1);
      if (!spec.bare) {
        for (const e of this.usable(diag.exams, sex)) if (rng.chance(child ? 0.3 : 0.45)) add(e, spec.adm, 1);
        for (const t of this.usable(diag.treat, sex)) if (rng.chance(0.6)) add(t, spec.adm, 1);
        const drugs = this.usable(diag.drugs, sex);
        for (const d of rng.sample(drugs, rng.int(1, Math.min(3, Math.max(1, drugs.length)))))
          add(d, spec.adm);
        if (child && diag.pediatric && rng.chance(0.6)) {
          const ped = this.pediatricFor(p, spec.adm);
          if (ped) add(ped, spec.adm);
        }
      }
    } else if (spec.type === "PHARMACY") {
      if (!spec.bare) {
        const drugs = this.usable(diag.drugs, sex);
        if (child && diag.pediatric && rng.chance(0.7)) {
          const ped = this.pediatricFor(p, spec.adm);
          if (ped) add(ped, spec.adm);
        }
        if (lines.length === 0 || rng.chance(0.4)) {
          for (const d of rng.sample(drugs, rng.int(1, Math.min(3, Math.max(1, drugs.length)))))
            add(d, spec.adm);
        }
      }
    } else {
      const last = spec.dis > spec.adm ? spec.dis - 1 : spec.adm;
      const nurse = this.pools.item(diag.severe ? "nurse1" : "nurse2");
      for (let x = spec.adm; x <= last; x++) {
        add(this.pools.item("bed"), x, 1);
        add(nurse, x, 1);
        add(this.pools.item("ip_exam"), x, 1);
      }
      if (!spec.bare) {
        for (const e of this.usable(diag.ipExams ?? diag.exams, sex)) add(e, spec.adm, 1);
        const opDay = Math.min(spec.adm + 1, last);
        const procedures = this.usable(diag.procedures, sex);
        for (const pr of procedures) {
          if (pr.key === "rehab" || pr.key === "chemo") {
            for (let x = opDay; x <= Math.min(last, opDay + 4); x++) add(pr, x, 1);
          } else add(pr, opDay, 1);
        }
        if (procedures.length > 0) for (const m of this.usable(diag.materials, sex)) add(m, opDay);
        const drugs = this.usable(diag.ipDrugs ?? diag.drugs, sex);
        const chosen = rng.sample(drugs, rng.int(Math.min(2, drugs.length), Math.min(4, drugs.length)));
        const los = last - spec.adm + 1;
        let ivDays = 0;
        for (const d of chosen) {
          const start = spec.adm + rng.int(0, Math.min(1, los - 1));
          const run = rng.int(1, Math.max(1, last - start + 1));
          for (let x = start; x < start + run; x++) add(d, x);
          if (d.name.includes("注射")) ivDays = Math.max(ivDays, run);
        }
        for (let x = spec.adm; x < spec.adm + ivDays && x <= last; x++) {
          add(this.pools.item("infusion"), x, 1);
          add(this.pools.item("nacl"), x, 1);
          add(this.pools.item("infusion_set"), x, 1);
        }
        if (child && diag.pediatric && rng.chance(0.6)) {
          const ped = this.pediatricFor(p, last);
          if (ped) for (let x = spec.adm; x <= Math.min(last, spec.adm + 3); x++) add(ped, x);
        }
      }
    }
    if (spec.extraLines) lines.push(...spec.extraLines);
    return lines;
  }

  private fundShare(spec: Spec, total: number, selfPay: number, inst: Institution): number {
    const rng = this.rng;
    const p = spec.p;
    const resident = this.resident[p] === 1;
    const retired = !resident && this.ageAt(p, spec.adm) >= 60;
    const covered = total - selfPay;
    if (spec.type === "PHARMACY") {
      if (rng.chance(resident ? 0.6 : 0.4)) return 0; // personal account or cash
      return Math.floor(covered * (resident ? 0.4 : 0.5));
    }
    if (spec.type === "OUTPATIENT") {
      let ratio = resident ? 0.5 : retired ? 0.7 : 0.6;
      ratio += inst.level === 1 ? 0.1 : inst.level === 3 ? -0.1 : 0;
      return Math.floor(covered * ratio);
    }
    const deductible =
      (inst.level === 3 ? 100_000 : inst.level === 2 ? 60_000 : 30_000) * (resident ? 1.2 : 1);
    let ratio = resident
      ? inst.level === 3
        ? 0.65
        : inst.level === 2
          ? 0.75
          : 0.85
      : inst.level === 3
        ? 0.85
        : 0.88;
    if (retired) ratio += 0.04;
    const eligible = covered * 0.92 - deductible;
    return Math.max(0, Math.floor(eligible * ratio));
  }

  private makeDiagnoses(spec: Spec): Diagnosis[] {
    if (spec.diagnoses) return spec.diagnoses;
    const out: Diagnosis[] = [{ code: spec.diag.code, name: spec.diag.name, primary: true }];
    const c = this.chronic[spec.p] as number;
    if (c >= 0 && spec.type !== "PHARMACY" && this.rng.chance(0.5)) {
      const d = this.pools.diagnoses[c] as Diag;
      if (d.code !== spec.diag.code) out.push({ code: d.code, name: d.name, primary: false });
    }
    if (spec.extraDiagnoses) out.push(...spec.extraDiagnoses);
    return out;
  }

  private build(spec: Spec, ms: number, settlementId: string, visitId: string): Settlement {
    const p = spec.p;
    const inst = this.institutions[spec.inst] as Institution;
    let items: LineItem[];
    if (spec.copy) {
      const ctx = spec.scheme?.ctx;
      const source = ctx?.items.get(spec.copy.role);
      if (!source || source.length === 0)
        throw new Error(`scheme ${ctx?.type}: nothing to copy from ${spec.copy.role}`);
      const own =
        spec.copy.mode === "one"
          ? this.buildLines({ ...spec, bare: true }).map((l) => this.lineItem(l, inst, 0))
          : [];
      const candidates = source.filter((l) => !DAILY_CODES.has(l.item_code));
      const picked =
        spec.copy.mode === "all" ? source : [this.rng.pick(candidates.length > 0 ? candidates : source)];
      items = [...own, ...picked.map((l) => ({ ...l }))];
    } else {
      items = this.buildLines(spec).map((l) => this.lineItem(l, inst, 0));
    }
    if (items.length === 0)
      items = [this.lineItem({ item: this.pools.item("reg_general"), qty: 1, day: spec.adm }, inst, 0)];
    let total = 0;
    let selfPay = 0;
    items.forEach((l, i) => {
      l.line_no = i + 1;
      total += l.amount_fen;
      if (this.pools.selfPay.some((s) => s.code === l.item_code)) selfPay += l.amount_fen;
    });
    const fund = Math.min(total - 1, this.fundShare(spec, total, selfPay, inst));
    return {
      settlement_id: settlementId,
      event_type: "SETTLE",
      original_settlement_id: null,
      visit_id: visitId,
      person_id: this.personId(p),
      gender: this.sexOf(p),
      birth_date: dateOf(this.birth[p] as number),
      insurance_type: this.resident[p] === 1 ? "RESIDENT" : "EMPLOYEE",
      institution_id: inst.id,
      institution_name: inst.name,
      region_code: (DISTRICTS[inst.district] as (typeof DISTRICTS)[number]).code,
      visit_type: spec.type,
      admission_date: dateOf(spec.adm),
      discharge_date: dateOf(spec.dis),
      discharge_reason: spec.type === "INPATIENT" ? spec.reason : null,
      settled_at: isoCst(ms),
      diagnoses: this.makeDiagnoses(spec),
      items,
      total_fen: total,
      fund_paid_fen: Math.max(0, fund),
    };
  }

  private lineItem(l: LineSpec, inst: Institution, lineNo: number): LineItem {
    const unit = this.unitPrice(l.item, inst);
    return {
      line_no: lineNo,
      item_code: l.item.code,
      item_name: l.item.name,
      category: l.item.category,
      quantity: l.qty,
      unit_price_fen: unit,
      amount_fen: Math.round(l.qty * unit),
      service_date: dateOf(l.day),
    };
  }

  private nextSettlementId(inst: Institution, day: number): string {
    const code = (DISTRICTS[inst.district] as (typeof DISTRICTS)[number]).code;
    return `JS${code}${dateOf(day).replaceAll("-", "")}${String(++this.settlementSeq).padStart(9, "0")}`;
  }

  private nextVisitId(spec: Spec, inst: Institution): string {
    const prefix = spec.type === "INPATIENT" ? "ZY" : spec.type === "OUTPATIENT" ? "MZ" : "GY";
    return `${prefix}${inst.id.slice(1)}${String(++this.visitSeq).padStart(9, "0")}`;
  }

  private slot(day: number): number {
    return Math.min(2, Math.max(0, yearOf(day) - this.startYear));
  }

  private track(ms: number): void {
    if (ms < this.firstEventMs) this.firstEventMs = ms;
    if (ms > this.lastEventMs) this.lastEventMs = ms;
  }

  /** The time a planned event of `p` really happens: never at or before the person's previous settlement. */
  private plannedMs(p: number, day: number, sec: number): number {
    const ms = msOf(day, sec);
    const last = this.lastMs[p] as number;
    return ms > last ? ms : last + this.rng.int(60, 900) * 1000;
  }

  /**
   * Renders, accounts and writes one settlement. With `mayReject`, returns false (writing nothing)
   * when the person's yearly out-of-pocket budget has no room for it.
   */
  settle(spec: Spec, ms: number, mayReject: boolean): boolean {
    const rng = this.rng;
    const p = spec.p;
    const day = dayOfMs(ms);
    const inst = this.institutions[spec.inst] as Institution;
    const noCap = this.hasFlag(p, F_NO_CAP);

    let fate: Fate = spec.scheme ? spec.scheme.fate : "keep";
    if (!spec.scheme && !this.hasFlag(p, F_NO_REVERSE) && rng.chance(REVERSAL_RATE)) {
      fate = rng.chance(RESUBMIT_SHARE) ? "resubmit" : "reverse";
    }
    let revDay = 0;
    let resDay = 0;
    if (fate !== "keep") {
      if (day >= this.lastEventDay - 1) fate = "keep";
      else {
        revDay = Math.min(this.lastEventDay - 1, day + rng.int(1, 7));
        resDay = Math.min(this.lastEventDay, revDay + rng.int(0, 3));
      }
    }

    const s = this.build(spec, ms, "", "");
    const natural = s.total_fen - s.fund_paid_fen;
    const oopLabels: number[] = [];
    if (noCap) {
      const idx = p * 3 + this.slot(day);
      const before = this.oop[idx] as number;
      const after = before + natural;
      for (const t of OOP_THRESHOLDS_FEN) if (before < t && after >= t) oopLabels.push(t);
      this.oop[idx] = after;
    } else if (fate !== "reverse") {
      const idx = p * 3 + this.slot(fate === "resubmit" ? resDay : day);
      const remaining = OOP_CAP_FEN - (this.oop[idx] as number);
      let o = natural;
      if (o > remaining) {
        if (mayReject) return false;
        o = Math.max(1, remaining);
      }
      s.fund_paid_fen = s.total_fen - o;
      this.oop[idx] = (this.oop[idx] as number) + o;
    }
    s.settlement_id = this.nextSettlementId(inst, day);
    s.visit_id = this.nextVisitId(spec, inst);
    this.lastMs[p] = ms;
    this.stats.settlements++;
    if (spec.type === "INPATIENT") this.stats.stays++;

    let writeMs = ms;
    if (fate !== "keep") {
      const revSec = rng.int(8 * 3600, 17 * 3600);
      const revMs = msOf(revDay, revSec);
      if (revDay - day <= 3 && rng.chance(EARLY_REVERSAL_SHARE)) {
        writeMs = revMs + rng.int(60, 3 * 3600) * 1000;
        this.stats.reversalsBeforeSettlement++;
      }
      this.at(revDay).push({ kind: "reversal", sec: revSec, original: s });
      this.committed++;
      if (fate === "resubmit") {
        const resSec =
          resDay === revDay
            ? rng.int(revSec + 60, Math.max(revSec + 120, 20 * 3600))
            : rng.int(8 * 3600, 17 * 3600);
        const labels =
          spec.scheme && spec.scheme.labels.length > 0
            ? { ctx: spec.scheme.ctx, labels: spec.scheme.labels }
            : undefined;
        this.at(resDay).push({ kind: "resubmit", sec: resSec, original: s, ...(labels ? { labels } : {}) });
        this.committed++;
      }
    }
    if (writeMs === ms && rng.chance(LATE_WRITE_RATE)) {
      writeMs = ms + rng.int(3600, 4 * 86_400) * 1000;
      this.stats.lateWritten++;
    }

    if (spec.scheme) {
      const { ctx, role, labels } = spec.scheme;
      this.settleRole(ctx, role, s);
      if (fate === "keep") for (const l of labels) this.emitLabel(ctx, l, s.settlement_id);
      else if (fate === "reverse" && labels.length > 0) this.stats.retractedSchemes++;
      else if (labels.length > 0) this.stats.resubmittedSchemes++;
    }
    for (const _ of oopLabels.slice(0, 1)) {
      this.sink.label({
        detector: "high_out_of_pocket",
        rule: "high_out_of_pocket",
        settlement_id: s.settlement_id,
        related: [],
        person_id: s.person_id,
        scheme: `high_out_of_pocket/${oopLabels.map((t) => t / 100).join("+")}`,
      });
    }
    this.track(ms);
    this.sink.settlement(JSON.stringify(s), writeMs);
    return true;
  }

  /** Writes a scheme's label once every related settlement has its id (a nested stay may settle first). */
  private emitLabel(ctx: SchemeCtx, l: LabelSpec, settlementId: string): void {
    if (l.related.some((r) => !ctx.ids.has(r))) {
      ctx.pending.push({ label: l, settlementId });
      this.pendingLabels++;
      return;
    }
    this.sink.label({
      detector: l.detector,
      rule: l.rule,
      settlement_id: settlementId,
      related: l.related.map((r) => ctx.ids.get(r) as string),
      person_id: this.personId(ctx.person),
      scheme: `${ctx.type}/${ctx.variant}`,
    });
  }

  private settleRole(ctx: SchemeCtx, role: string, s: Settlement): void {
    ctx.ids.set(role, s.settlement_id);
    ctx.items.set(role, s.items);
    if (ctx.pending.length === 0) return;
    const waiting = ctx.pending;
    ctx.pending = [];
    this.pendingLabels -= waiting.length;
    for (const w of waiting) this.emitLabel(ctx, w.label, w.settlementId);
  }

  /** Runs one planned event. */
  runPlanned(e: Planned, day: number): void {
    switch (e.kind) {
      case "settle": {
        const ms = this.plannedMs(e.spec.p, day, e.sec);
        this.settle(e.spec, ms, false);
        return;
      }
      case "reversal": {
        const o = e.original;
        const p = this.personIndex(o.person_id);
        const ms = this.plannedMs(p, day, e.sec);
        this.lastMs[p] = ms;
        const inst = this.institutions.find((i) => i.id === o.institution_id) as Institution;
        const r: Settlement = {
          ...o,
          settlement_id: this.nextSettlementId(inst, day),
          event_type: "REVERSAL",
          original_settlement_id: o.settlement_id,
          settled_at: isoCst(ms),
          items: [],
          total_fen: -o.total_fen,
          fund_paid_fen: -o.fund_paid_fen,
        };
        this.stats.reversals++;
        this.track(ms);
        this.sink.settlement(JSON.stringify(r), ms);
        return;
      }
      case "resubmit": {
        const o = e.original;
        const p = this.personIndex(o.person_id);
        const ms = this.plannedMs(p, day, e.sec);
        this.lastMs[p] = ms;
        const inst = this.institutions.find((i) => i.id === o.institution_id) as Institution;
        const s: Settlement = {
          ...o,
          settlement_id: this.nextSettlementId(inst, day),
          settled_at: isoCst(ms),
        };
        this.stats.resubmissions++;
        this.stats.settlements++;
        if (e.labels) for (const l of e.labels.labels) this.emitLabel(e.labels.ctx, l, s.settlement_id);
        this.track(ms);
        this.sink.settlement(JSON.stringify(s), ms);
        return;
      }
      case "death": {
        this.stats.deaths++;
        this.track(msOf(day, e.sec));
        this.sink.death(JSON.stringify(e.record));
        return;
      }
    }
  }
}
