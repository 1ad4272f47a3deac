/**
 * The name a connection gives itself with CLIENT SETNAME. Redis refuses a name holding anything
 * but `!`..`~` (no spaces, no non-ASCII bytes), and a node id may be any Unicode text, so the name
 * is percent-encoded. The encoding is reversible (`decodeURIComponent`), so an operator reading
 * CLIENT LIST can tell every node id apart.
 */

// Everything outside '!'..'~', and '%' itself (so that a decoded name is the text it came from).
const NOT_NAME = /[^!-$&-~]/gu;

/**
 * `text` as a legal Redis client name: every character outside `!`..`~`, and `%`, replaced by the
 * `%XX` escapes of its UTF-8 bytes, as `encodeURIComponent` writes them (`ü-node` becomes
 * `%C3%BC-node`); an ASCII name without spaces or `%` is unchanged.
 */
export function redisClientName(text: string): string {
  return text.replace(NOT_NAME, (char) => {
    let escaped = '';
    // Buffer, not encodeURIComponent: a lone surrogate becomes U+FFFD's bytes instead of throwing.
    for (const byte of Buffer.from(char, 'utf8')) {
      escaped += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    }
    return escaped;
  });
}
