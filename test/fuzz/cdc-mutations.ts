/**
 * Structured mutations of CDC entries for fuzzing: what a torn write, a bit flip, a buggy peer or a
 * hostile one could put in a stream, starting from the shared vectors. Used by the fast-check
 * properties and to seed the coverage-guided corpus.
 */
import fc from 'fast-check';
import { compress } from 'zstd-napi';
import { invalidVectors, validVectors } from '../helpers/vectors.js';

/** A CDC entry as XREAD returns it: `[name, value, name, value, …]`. */
export type Fields = Buffer[];

const FIELD_NAMES = ['op', 'key', 'hash', 'data', 'meta'];
const OPS = ['PUT', 'put', 'DEL', 'DELETE', 'delete', 'del', 'Put', 'PUTX', '', 'P\u0000T'];
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** Every shared vector, valid and invalid. */
export const ALL_VECTORS: readonly Fields[] = [...validVectors, ...invalidVectors].map(
  (v) => v.fields,
);

const bytes = (max = 256): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));

/** Odd JSON values for meta fields: wrong types, huge, negative, fractional, nested. */
const oddJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    -1,
    0,
    1.5,
    2 ** 53,
    2 ** 64,
    Number.MAX_VALUE,
    '',
    '1',
    null,
    true,
    [],
    {},
    'json',
    'binary',
    'text',
  ),
  fc.jsonValue({ maxDepth: 2 }),
);

/** One meta JSON document, from plausible to nonsense. */
export const metaArb: fc.Arbitrary<Buffer> = fc.oneof(
  fc
    .record(
      {
        content_type: oddJson,
        version: oddJson,
        updated_at: oddJson,
        trace_parent: oddJson,
        origin: oddJson,
      },
      { requiredKeys: [] },
    )
    .map((m) => Buffer.from(JSON.stringify(m))),
  fc.jsonValue().map((j) => Buffer.from(JSON.stringify(j) ?? 'null')),
  fc.string().map((s) => Buffer.from(s)),
  bytes(),
);

/** A zstd frame, valid or damaged, of content from empty to highly compressible and large. */
export const zstdArb: fc.Arbitrary<Buffer> = fc
  .tuple(
    fc.oneof(
      bytes(512),
      fc.integer({ min: 0, max: 2_000_000 }).map((n) => Buffer.alloc(n, 0x61)),
    ),
    fc.oneof(
      fc.constant('intact' as const),
      fc.constant('truncate' as const),
      fc.constant('flip' as const),
      fc.constant('append' as const),
    ),
    fc.nat(),
    fc.integer({ min: 0, max: 255 }),
  )
  .map(([content, how, at, byte]) => {
    const frame = compress(content);
    switch (how) {
      case 'intact':
        return frame;
      case 'truncate':
        return frame.subarray(0, at % (frame.length + 1));
      case 'flip': {
        const copy = Buffer.from(frame);
        const i = 4 + (at % Math.max(1, copy.length - 4));
        if (i < copy.length) copy[i] = byte;
        return copy;
      }
      case 'append':
        return Buffer.concat([frame, Buffer.from([byte, byte, byte])]);
    }
  });

/** A mutation applied to a field list. */
type Mutation = (fields: Fields) => Fields;

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  // Replace one value by random bytes, a meta document, a zstd frame or the magic alone.
  fc
    .tuple(fc.nat(), fc.oneof(bytes(), metaArb, zstdArb, fc.constant(ZSTD_MAGIC)))
    .map(([i, value]) => (f: Fields) => {
      if (f.length < 2) return f;
      const copy = [...f];
      copy[1 + 2 * (i % (f.length / 2))] = value;
      return copy;
    }),
  // Flip, insert or delete one byte of one item.
  fc
    .tuple(
      fc.nat(),
      fc.nat(),
      fc.integer({ min: 0, max: 255 }),
      fc.constantFrom('flip', 'insert', 'delete'),
    )
    .map(([i, at, byte, how]) => (f: Fields) => {
      if (f.length === 0) return f;
      const copy = [...f];
      const item = copy[i % f.length]!;
      const pos = at % (item.length + 1);
      if (how === 'flip' && pos < item.length) {
        const b = Buffer.from(item);
        b[pos] = byte;
        copy[i % f.length] = b;
      } else if (how === 'insert') {
        copy[i % f.length] = Buffer.concat([
          item.subarray(0, pos),
          Buffer.from([byte]),
          item.subarray(pos),
        ]);
      } else {
        copy[i % f.length] = Buffer.concat([item.subarray(0, pos), item.subarray(pos + 1)]);
      }
      return copy;
    }),
  // Truncate one item.
  fc.tuple(fc.nat(), fc.nat()).map(([i, at]) => (f: Fields) => {
    if (f.length === 0) return f;
    const copy = [...f];
    const item = copy[i % f.length]!;
    copy[i % f.length] = item.subarray(0, at % (item.length + 1));
    return copy;
  }),
  // Drop a field, or a lone item (odd lists).
  fc.tuple(fc.nat(), fc.boolean()).map(([i, whole]) => (f: Fields) => {
    if (f.length === 0) return f;
    const copy = [...f];
    if (whole && f.length >= 2) copy.splice(2 * (i % (f.length / 2)), 2);
    else copy.splice(i % f.length, 1);
    return copy;
  }),
  // Add a field (known name or not), possibly a duplicate placed first.
  fc
    .tuple(
      fc.oneof(fc.constantFrom(...FIELD_NAMES), fc.string({ maxLength: 12 })),
      bytes(),
      fc.boolean(),
    )
    .map(
      ([name, value, first]) =>
        (f: Fields) =>
          first ? [Buffer.from(name), value, ...f] : [...f, Buffer.from(name), value],
    ),
  // Change the op.
  fc.constantFrom(...OPS).map((op) => (f: Fields) => {
    const copy = [...f];
    for (let i = 0; i + 1 < copy.length; i += 2) {
      if (copy[i]!.toString('latin1') === 'op') copy[i + 1] = Buffer.from(op);
    }
    return copy;
  }),
  // Swap two names.
  fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => (f: Fields) => {
    if (f.length < 4) return f;
    const copy = [...f];
    const i = 2 * (a % (f.length / 2));
    const j = 2 * (b % (f.length / 2));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
    return copy;
  }),
);

/** A shared vector with one to five structured mutations applied. */
export const mutatedVectorArb: fc.Arbitrary<Fields> = fc
  .tuple(fc.constantFrom(...ALL_VECTORS), fc.array(mutationArb, { minLength: 1, maxLength: 5 }))
  .map(([fields, mutations]) => mutations.reduce((f, m) => m(f), [...fields]));

/** A field list built from plausible names and random values. */
export const plausibleEntryArb: fc.Arbitrary<Fields> = fc
  .array(
    fc.tuple(
      fc.oneof(fc.constantFrom(...FIELD_NAMES), fc.string({ maxLength: 10 })),
      fc.oneof(
        fc.constantFrom(...OPS).map((s) => Buffer.from(s)),
        bytes(),
        metaArb,
        zstdArb,
      ),
    ),
    { maxLength: 8 },
  )
  .map((pairs) => pairs.flatMap(([name, value]) => [Buffer.from(name), value]));
