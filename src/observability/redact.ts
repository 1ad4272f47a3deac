/**
 * Credential redaction for anything that leaves the process: logs, health, errors, HTTP bodies.
 */

/** What a redacted secret is replaced with. */
export const REDACTED = '***';

const SECRET_PARAM = /([?&;](?:password|pass|pwd|token|secret|auth)=)[^&;#\s]*/gi;
// scheme://user:password@ in free text; the password part is greedy so an unencoded `@` in it
// is still covered (the last `@` of the authority ends it), but it never crosses a space, a quote
// or the start of the path.
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/?#@:"'<>]*):([^\s/?#"'<>]*)@/gi;

/**
 * `url` with its password replaced by `***`: `redis://user:pass@host` → `redis://user:***@host`,
 * `redis://:pass@host` → `redis://:***@host`. Password query parameters are masked too.
 * Anything else is returned as is; never throws.
 */
export function redactUrl(url: string): string {
  let out = url;
  const scheme = out.indexOf('://');
  if (scheme !== -1) {
    const start = scheme + 3;
    // The authority ends at the first `/`, `?` or `#` after the last `@` that precedes them all.
    let end = out.length;
    for (const c of ['/', '?', '#']) {
      const i = out.indexOf(c, start);
      if (i !== -1 && i < end) end = i;
    }
    let at = out.lastIndexOf('@', end - 1);
    if (at < start) {
      // An unencoded `/`, `?` or `#` in the password: fall back to the last `@` of the string.
      at = out.lastIndexOf('@');
      if (at < start) at = -1;
    }
    if (at !== -1) {
      const userinfo = out.slice(start, at);
      const colon = userinfo.indexOf(':');
      if (colon !== -1) {
        out = `${out.slice(0, start)}${userinfo.slice(0, colon)}:${REDACTED}${out.slice(at)}`;
      }
    }
  }
  return out.replace(SECRET_PARAM, `$1${REDACTED}`);
}

/** `text` with the password of every URL in it, and every password query parameter, masked. */
export function redactSecrets(text: string): string {
  if (!text.includes('://') && !text.includes('=')) return text;
  return text
    .replace(URL_USERINFO, (_m, scheme: string, user: string) => `${scheme}${user}:${REDACTED}@`)
    .replace(SECRET_PARAM, `$1${REDACTED}`);
}
