// Bounds on an Avro body, checked before avsc reads it. avsc allocates an array of the length a
// block claims and then reads that many entries, so a 100-byte record claiming 3·10⁸ diagnoses
// exhausts a worker's memory before any check runs. This walks the writer schema over the bytes
// without materialising anything: every count and length against the bytes left and the
// contract's limits, every union and enum index in range, and the record ending where the body
// ends. Its cost is one pass over the bytes; what passes, avsc reads within the body's size.
import type avro from "avsc";
import type { FieldLimits } from "./limits.ts";

/** Why a body was refused; `overLimit` when it is well-formed but beyond the contract's limits. */
export class AvroBoundsError extends Error {
  constructor(
    message: string,
    readonly overLimit = false,
  ) {
    super(message);
  }
}

interface Cursor {
  readonly buf: Buffer;
  pos: number;
  /** Array and map entries so far: at most one per byte, however small an entry is. */
  entries: number;
  depth: number;
}

type Walk = (c: Cursor) => void;

/** Nesting deeper than this is refused: only a recursive writer schema can reach it. */
const MAX_DEPTH = 64;

const left = (c: Cursor) => c.buf.length - c.pos;

function truncated(path: string, c: Cursor): AvroBoundsError {
  return new AvroBoundsError(`${path}: truncated at byte ${c.pos} of ${c.buf.length}`);
}

/** avsc's bound for a long read as a number (its isSafeLong). */
const MAX_EXACT_LONG = 9007199254740990;

/** A zig-zag varint, as Avro writes int and long; precision past 2^53 is irrelevant to a bound. */
function readLong(c: Cursor, path: string): number {
  let n = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (c.pos >= c.buf.length) throw truncated(path, c);
    const b = c.buf[c.pos++] as number;
    n += (b & 0x7f) * scale;
    if (b < 0x80) return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
    scale *= 128;
  }
  throw new AvroBoundsError(`${path}: malformed varint at byte ${c.pos}`);
}

function skip(n: number, path: string): Walk {
  return (c) => {
    if (left(c) < n) throw truncated(path, c);
    c.pos += n;
  };
}

/** The fewest bytes a value of `t` takes (0 for null and records of nulls). */
function minBytes(t: avro.Type, seen = new Set<avro.Type>()): number {
  const name = t.typeName;
  if (name === "null") return 0;
  if (name === "float") return 4;
  if (name === "double") return 8;
  if (name === "fixed") return (t as avro.types.FixedType).size;
  if (name.startsWith("logical:")) return minBytes((t as avro.types.LogicalType).underlyingType, seen);
  if (name.startsWith("union")) {
    const branches = (t as avro.types.UnwrappedUnionType).types;
    return 1 + Math.min(...branches.map((b) => minBytes(b, seen)));
  }
  if (name === "record" || name === "error") {
    if (seen.has(t)) return 0; // recursive: the walk's depth limit bounds it instead
    seen.add(t);
    const fields = (t as avro.types.RecordType).fields;
    const sum = fields.reduce((s, f) => s + minBytes(f.type, seen), 0);
    seen.delete(t);
    return sum;
  }
  return 1; // boolean, int, long, enum, string, bytes (a length), array and map (an end marker)
}

function lengthOf(c: Cursor, path: string, what: string): number {
  const n = readLong(c, path);
  if (n < 0) throw new AvroBoundsError(`${path}: negative ${what} ${n}`);
  if (n > left(c)) throw new AvroBoundsError(`${path}: ${what} ${n} exceeds the ${left(c)} bytes left`);
  return n;
}

/** Strings, map keys included, are held to the limit. */
function stringWalk(path: string, max: number): Walk {
  return (c) => {
    const n = lengthOf(c, path, "string length");
    if (n > max) {
      throw new AvroBoundsError(
        `${path}: string of ${n} bytes is longer than the limit of ${max} bytes`,
        true,
      );
    }
    c.pos += n;
  };
}

/** Array and map blocks: counts, optional block sizes, and the entries each block claims. */
function blocks(path: string, entryMin: number, maxEntries: number | undefined, entry: Walk): Walk {
  const min = Math.max(1, entryMin);
  return (c) => {
    let total = 0;
    for (let n = readLong(c, path); n !== 0; n = readLong(c, path)) {
      let end = -1;
      if (n < 0) {
        n = -n;
        const size = lengthOf(c, path, "block size");
        end = c.pos + size;
      }
      if (n * min > left(c)) {
        throw new AvroBoundsError(`${path}: a block of ${n} entries cannot fit in the ${left(c)} bytes left`);
      }
      total += n;
      if (maxEntries !== undefined && total > maxEntries) {
        throw new AvroBoundsError(`${path}: more than the limit of ${maxEntries} entries`, true);
      }
      c.entries += n;
      if (c.entries > c.buf.length) {
        throw new AvroBoundsError(`${path}: more entries than the ${c.buf.length}-byte body could hold`);
      }
      for (let i = 0; i < n; i++) entry(c);
      if (end >= 0 && c.pos !== end)
        throw new AvroBoundsError(`${path}: block size does not match its entries`);
    }
  };
}

function compile(
  t: avro.Type,
  path: string,
  limits: FieldLimits,
  memo: Map<avro.Type, Walk>,
  maxEntries?: number,
): Walk {
  const name = t.typeName;
  switch (name) {
    case "null":
      return () => undefined;
    case "boolean":
      return skip(1, path);
    case "int":
      return (c) => {
        readLong(c, path);
      };
    case "long":
      return (c) => {
        // avsc refuses what a double cannot hold exactly: say so here, with the field's path.
        const v = readLong(c, path);
        if (Math.abs(v) > MAX_EXACT_LONG)
          throw new AvroBoundsError(
            `${path}: long beyond ±${MAX_EXACT_LONG}, more than a JavaScript number holds exactly`,
          );
      };
    case "float":
      return skip(4, path);
    case "double":
      return skip(8, path);
    case "fixed":
      return skip((t as avro.types.FixedType).size, path);
    case "bytes":
      return (c) => {
        c.pos += lengthOf(c, path, "length");
      };
    case "string":
      return stringWalk(path, limits.maxStringLength);
    case "enum": {
      const count = (t as avro.types.EnumType).symbols.length;
      return (c) => {
        const i = readLong(c, path);
        if (i < 0 || i >= count) throw new AvroBoundsError(`${path}: enum index ${i} out of range`);
      };
    }
    case "array": {
      const items = (t as avro.types.ArrayType).itemsType;
      const item = compile(items, `${path}[]`, limits, memo);
      return blocks(path, minBytes(items), maxEntries, item);
    }
    case "map": {
      const values = (t as avro.types.MapType).valuesType as avro.Type;
      const key = stringWalk(`${path}{}`, limits.maxStringLength);
      const value = compile(values, `${path}{}`, limits, memo);
      return blocks(path, 1 + minBytes(values), maxEntries, (c) => {
        key(c);
        value(c);
      });
    }
    case "record":
    case "error":
      return record(t as avro.types.RecordType, path, limits, memo);
  }
  if (name.startsWith("union")) {
    const branches = (t as avro.types.UnwrappedUnionType).types.map((b) => compile(b, path, limits, memo));
    return (c) => {
      const i = readLong(c, path);
      const branch = branches[i];
      if (!branch) throw new AvroBoundsError(`${path}: union index ${i} out of range`);
      branch(c);
    };
  }
  if (name.startsWith("logical:")) {
    return compile((t as avro.types.LogicalType).underlyingType, path, limits, memo, maxEntries);
  }
  throw new Error(`${path}: Avro type ${name} is not supported`);
}

function record(
  t: avro.types.RecordType,
  path: string,
  limits: FieldLimits,
  memo: Map<avro.Type, Walk>,
): Walk {
  const known = memo.get(t);
  if (known) return known;
  let fields: Walk[] = [];
  const walk: Walk = (c) => {
    if (++c.depth > MAX_DEPTH) throw new AvroBoundsError(`${path}: nested deeper than ${MAX_DEPTH} levels`);
    for (const f of fields) f(c);
    c.depth--;
  };
  memo.set(t, walk); // before the fields, so a recursive schema refers back to this walk
  const top = memo.size === 1;
  const prefix = path === "" ? "" : `${path}.`;
  fields = t.fields.map((f) =>
    compile(f.type, `${prefix}${f.name}`, limits, memo, top ? limits.maxEntries[f.name] : undefined),
  );
  return walk;
}

/**
 * A check of bodies written with `writer` (a record schema): throws AvroBoundsError saying
 * where and why a body is refused. `limits.maxEntries` applies to the top-level fields it names.
 */
export function avroBounds(writer: avro.Type, limits: FieldLimits): (body: Buffer) => void {
  const walk = compile(writer, "", limits, new Map());
  return (buf) => {
    const c: Cursor = { buf, pos: 0, entries: 0, depth: 0 };
    walk(c);
    if (c.pos !== buf.length)
      throw new AvroBoundsError(`${buf.length - c.pos} trailing bytes after the record`);
  };
}
