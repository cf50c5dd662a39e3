// One spelling per path before routing, so that `/api/v1/%73uspects`, `/%61pi/v1/...`,
// `//api/v1/suspects` or `/ui/../api/v1/suspects` are authenticated, routed and audited
// exactly as the plain path: percent-encoded unreserved characters are decoded and dot
// segments removed (RFC 3986 §6.2.2), and runs of slashes collapsed. Reserved escapes such
// as %2F stay encoded (they are data, not structure), but a path that would be an API path
// once they are decoded is still treated as one (authenticated, audited, then a 404). A
// malformed escape is kept as literal text (`%zz` → `%25zz`), so it reaches the same hooks
// (authenticated, audited, a 404) instead of the router's bare 400.
const UNRESERVED = /[A-Za-z0-9\-._~]/;

function removeDotSegments(path: string): string {
  const segments = path.split("/").slice(1);
  const out: string[] = [];
  segments.forEach((s, i) => {
    const last = i === segments.length - 1;
    if (s === "." || s === "..") {
      if (s === "..") out.pop();
      if (last) out.push("");
    } else out.push(s);
  });
  return `/${out.join("/")}`;
}

/** A path the router can decode: a '%' that starts no valid escape (or UTF-8 sequence) becomes "%25". */
function decodable(path: string): string {
  const fixed = path.replace(/%(?![0-9A-Fa-f]{2})/g, "%25");
  try {
    decodeURIComponent(fixed);
    return fixed;
  } catch {
    return fixed.replace(/%(?!25)/g, "%25");
  }
}

function canonicalPath(path: string): string {
  const unescaped = path.replace(/%([0-9A-Fa-f]{2})/g, (m, hex: string) => {
    const c = String.fromCharCode(Number.parseInt(hex, 16));
    return UNRESERVED.test(c) ? c : m.toUpperCase();
  });
  const rooted = unescaped.startsWith("/") ? unescaped : `/${unescaped}`;
  return decodable(removeDotSegments(rooted.replace(/\/{2,}/g, "/")));
}

const splitAt = (url: string): number => {
  const i = url.search(/[?#]/);
  return i < 0 ? url.length : i;
};

/** The request target with its path canonical; an absolute-form target (`http://host/p`) keeps only its path. */
export function canonicalUrl(url: string): string {
  const target = /^[a-z][a-z0-9+.-]*:\/\//i.test(url)
    ? url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, "")
    : url;
  const at = splitAt(target);
  return canonicalPath(target.slice(0, at)) + target.slice(at);
}

const API_PATH = /^\/api(?:\/|$)/i;

function fullyDecoded(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/** Whether a (canonical) request target is under /api, in any letter case or once reserved escapes are decoded. */
export function isApiUrl(url: string): boolean {
  const path = url.slice(0, splitAt(url));
  return API_PATH.test(path) || API_PATH.test(canonicalPath(fullyDecoded(path)));
}
