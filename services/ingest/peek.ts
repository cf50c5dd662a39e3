// Reading a key field of an NDJSON event without parsing the line, so that a dispatcher can
// route and order lines at the speed of a string search and leave parsing to its workers.

const isSpace = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

/**
 * The value of the string field `key`, read from the raw line; undefined when the line is not in
 * the plain shape this reads (an escape in the value, odd spacing), and the caller parses it instead.
 *
 * With `unique` (a full scan of the line) it is exact for any valid event: in valid JSON a raw
 * `"key"` cannot occur inside a string (its quotes would be escaped), so a single occurrence that
 * follows `{` or `,` and precedes `:` is the top-level key, and a value with no backslash is its
 * decoded text. Without it, the first such occurrence is taken (a nested or repeated key may win).
 */
export function peekString(line: string, key: string, unique: boolean): string | undefined {
  const needle = `"${key}"`;
  const at = line.indexOf(needle);
  if (at < 0 || (unique && line.indexOf(needle, at + needle.length) >= 0)) return undefined;
  let i = at - 1;
  while (i >= 0 && isSpace(line.charCodeAt(i))) i--;
  const before = line.charCodeAt(i);
  if (before !== 0x7b && before !== 0x2c) return undefined;
  let j = at + needle.length;
  while (isSpace(line.charCodeAt(j))) j++;
  if (line.charCodeAt(j++) !== 0x3a) return undefined;
  while (isSpace(line.charCodeAt(j))) j++;
  if (line.charCodeAt(j) !== 0x22) return undefined;
  const end = line.indexOf('"', j + 1);
  if (end < 0) return undefined;
  const value = line.slice(j + 1, end);
  return value.includes("\\") ? undefined : value;
}
