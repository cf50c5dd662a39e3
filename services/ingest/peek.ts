// Reading a key field of an NDJSON event from its raw bytes, without decoding or parsing the line,
// so that a dispatcher can route and order lines at the speed of a byte search and leave decoding
// and parsing to its workers.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

const isSpace = (c: number | undefined) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

/** The `"key"` needle a peek searches for; made once per key. */
export const keyNeedle = (key: string): Buffer => Buffer.from(`"${key}"`, "latin1");

/**
 * Where the value of the string field named by `needle` lies in `line` (UTF-8 bytes of one
 * NDJSON line), as [start, end); undefined when the line is not in the plain shape this reads (an
 * escape or a non-ASCII byte in the value, odd syntax), and the caller parses it instead.
 *
 * With `unique` it is exact for any valid event: in valid JSON a raw `"key"` cannot occur inside
 * a string (its quotes would be escaped), so a single occurrence that follows `{` or `,` and
 * precedes `:` is the top-level key, and plain ASCII bytes are the value's text. Without it, the
 * first such occurrence is taken (a nested or repeated key may win).
 */
export function peekValue(line: Buffer, needle: Buffer, unique: boolean): [number, number] | undefined {
  const at = line.indexOf(needle);
  if (at < 0 || (unique && line.indexOf(needle, at + needle.length) >= 0)) return undefined;
  let i = at - 1;
  while (i >= 0 && isSpace(line[i])) i--;
  if (line[i] !== 0x7b && line[i] !== 0x2c) return undefined;
  let j = at + needle.length;
  while (isSpace(line[j])) j++;
  if (line[j++] !== 0x3a) return undefined;
  while (isSpace(line[j])) j++;
  if (line[j] !== QUOTE) return undefined;
  const start = j + 1;
  for (let k = start; k < line.length; k++) {
    const c = line[k] as number;
    if (c === QUOTE) return [start, k];
    if (c === BACKSLASH || c >= 0x80) return undefined;
  }
  return undefined;
}
