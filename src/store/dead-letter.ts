/**
 * What the dead-letter stream `dlq:<peer>` keeps of a quarantined entry (docs/PROTOCOL.md), capped
 * in entries and bytes whatever a peer sends. Pure.
 */

/** Field values up to this size are kept whole in a dead letter; larger ones by their size only. */
export const DEAD_LETTER_VALUE_BYTES = 1024;
/** Field names up to this size are kept in a dead letter; a longer name is a `_field` size only. */
const DEAD_LETTER_NAME_BYTES = 64;

/**
 * What a dead letter keeps of an entry's fields: each field whose name and value are small, and for
 * a larger value its name with `_bytes` appended and its size (`data_bytes 31457280`), so a hostile
 * entry is never copied whole into the local Redis and a dead letter stays under
 * {@link DEAD_LETTER_ENTRY_BYTES} (3 KiB of values, at most 16 fields). The caller drops the entry itself, so
 * its bytes are freed once decoded.
 */
export function deadLetterFields(fields: readonly Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  let budget = 3 * DEAD_LETTER_VALUE_BYTES;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!;
    const value = fields[i + 1]!;
    if (name.length > DEAD_LETTER_NAME_BYTES) {
      out.push(Buffer.from('_field_bytes'), Buffer.from(String(name.length + value.length)));
    } else if (value.length <= DEAD_LETTER_VALUE_BYTES && value.length <= budget) {
      // Copied: a view would keep the whole reply it came in alive.
      out.push(Buffer.from(name), Buffer.from(value));
      budget -= value.length;
    } else {
      out.push(Buffer.from(`${name.toString('latin1')}_bytes`), Buffer.from(String(value.length)));
    }
    if (out.length >= 32) break;
  }
  if (fields.length % 2 === 1)
    out.push(Buffer.from('_odd_field_bytes'), Buffer.from(String(fields.at(-1)!.length)));
  return out;
}

/** Bound on the bytes one dead letter keeps (values, names, sizes and the `_` fields): 6 KiB. */
export const DEAD_LETTER_ENTRY_BYTES = 6 * 1024;
/** Bound on the bytes of a peer's dead-letter stream's kept fields: 16 MiB. */
export const DEAD_LETTER_MAX_BYTES = 16 * 1024 * 1024;
/** Entries a peer's dead-letter stream keeps (exact trimming): 16 MiB / 6 KiB each = 2,730. */
export const DEAD_LETTER_MAXLEN = Math.floor(DEAD_LETTER_MAX_BYTES / DEAD_LETTER_ENTRY_BYTES);
/** An `_error` text is cut to this many characters. */
export const DEAD_LETTER_ERROR_CHARS = 256;
