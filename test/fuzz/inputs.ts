/**
 * What the coverage-guided fuzz targets share with the property tests, kept free of fixtures and
 * fast-check so the bundled targets load nothing else: the CDC input format and the config env.
 */

/**
 * The coverage-guided fuzzers' input format for an entry: each item as a 2-byte little-endian
 * length and its bytes; a short tail is a last item of what remains.
 */
export function encodeFuzzInput(fields: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const item of fields) {
    const len = Buffer.alloc(2);
    len.writeUInt16LE(Math.min(item.length, 0xffff));
    parts.push(len, item.subarray(0, 0xffff));
  }
  return Buffer.concat(parts);
}

/** Inverse of {@link encodeFuzzInput}; total: every byte string decodes to some field list. */
export function decodeFuzzInput(data: Buffer): Buffer[] {
  const fields: Buffer[] = [];
  let at = 0;
  while (at < data.length) {
    if (at + 2 > data.length) {
      fields.push(data.subarray(at));
      break;
    }
    const len = data.readUInt16LE(at);
    at += 2;
    fields.push(data.subarray(at, Math.min(data.length, at + len)));
    at += len;
  }
  return fields;
}

/** The environment the fuzzers interpolate with (some references stay unset on purpose). */
export const FUZZ_ENV: Readonly<Record<string, string>> = {
  NODE_ID: 'node-a',
  PASSWORD: 'hunter2',
  TOKEN: 'secret-token',
  EMPTY: '',
  WEIRD: '${NODE_ID}: [',
};
