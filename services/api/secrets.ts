// What the audit log and the logs keep of a request never includes a credential: parameters
// named like one lose their value, and fundguard tokens (or the very token the caller sent)
// are cut out of any other text — paths, query strings, notes, user agents, CLI arguments.
const REDACTED_SECRET = "[redacted]";

const SECRET_NAME =
  /^(?:token|access_token|id_token|refresh_token|api_?key|key|password|passwd|secret|auth|authorization|bearer)$/i;
const TOKEN_SHAPE = /fg_[A-Za-z0-9_-]{8,}/g;

const isSecretName = (name: string): boolean => SECRET_NAME.test(name);

/** Percent-decoded form-style (`+` is a space); the input itself when it is not valid. */
export function decoded(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, " "));
  } catch {
    return s;
  }
}

/** `text` with token-shaped runs and every `known` secret (8 characters or more) replaced. */
export function redactText(text: string, known: readonly string[] = []): string {
  let out = text.replace(TOKEN_SHAPE, REDACTED_SECRET);
  for (const k of known) if (k.length >= 8) out = out.split(k).join(REDACTED_SECRET);
  return out;
}

/** A raw query string with secret parameters' values, and any part hiding a token when decoded, redacted. */
export function redactQuery(query: string, known: readonly string[] = []): string {
  return query
    .split("&")
    .map((part) => {
      const eq = part.indexOf("=");
      const name = decoded(eq < 0 ? part : part.slice(0, eq));
      if (eq >= 0 && isSecretName(name)) return `${part.slice(0, eq)}=${REDACTED_SECRET}`;
      const plain = decoded(part);
      return redactText(plain, known) === plain ? redactText(part, known) : REDACTED_SECRET;
    })
    .join("&");
}

/** A deep copy of `value` with secret-named keys' values and token-shaped text redacted. */
export function redactDeep(value: unknown, known: readonly string[] = []): unknown {
  if (typeof value === "string") return redactText(value, known);
  if (Array.isArray(value)) return value.map((v) => redactDeep(v, known));
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value))
    out[k] = isSecretName(k) && v !== undefined && v !== null ? REDACTED_SECRET : redactDeep(v, known);
  return out;
}
