import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  encodeCdcEntry,
  eventToRecord,
  parseCdcEntry,
  parseMeta,
  parseMetaText,
} from '../../src/codec/cdc.js';
import {
  decompressBounded,
  encodeData,
  hasZstdMagic,
  headerContentSize,
  withContent,
  ZSTD_MAGIC,
} from '../../src/codec/zstd.js';
import { encodeRecordValues, recordHeader } from '../../src/store/record-value.js';
import { CorruptEntryError } from '../../src/errors.js';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as ZstdBinding from 'zstd-napi/binding.js';
import type { StoredRecord } from '../../src/model/record.js';
import { validVectors } from '../helpers/vectors.js';
import { withoutFrame } from '../helpers/records.js';

const zstdBinding = createRequire(import.meta.url)('zstd-napi/binding.js') as typeof ZstdBinding;

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const keyArb = fc.string({ minLength: 1, maxLength: 80, unit: 'grapheme' });
const plainContentArb = fc.oneof(
  fc.uint8Array({ maxLength: 2048 }).map((a) => Buffer.from(a)),
  fc.json().map((j) => Buffer.from(j)),
  fc.string({ maxLength: 3000 }).map((s) => Buffer.from(s.repeat(3))),
);
/** Contents that begin with the zstd magic: any bytes after it, or a real frame (a `.zst` file). */
const magicContentArb = fc.oneof(
  fc.uint8Array({ maxLength: 2048 }).map((a) => Buffer.concat([ZSTD_MAGIC, Buffer.from(a)])),
  plainContentArb.map((c) => encodeData(Buffer.concat([c, Buffer.alloc(64)])).data),
);
const contentArb = fc.oneof(plainContentArb, magicContentArb);

const recordArb: fc.Arbitrary<StoredRecord> = fc
  .record({
    key: keyArb,
    content: contentArb,
    deleted: fc.boolean(),
    updatedAt: fc.integer({ min: 0, max: 2 ** 47 }),
    version: fc.nat(),
    // Node ids may be any Unicode text (docs/CONFIG.md).
    origin: fc.string({ minLength: 1, maxLength: 30, unit: 'grapheme' }),
    json: fc.boolean(),
    // Non-empty, as the store requires of a traceparent (an empty one parses as none).
    trace: fc.option(fc.string({ minLength: 1, maxLength: 60 }), { nil: undefined }),
    expiresAt: fc.option(fc.integer({ min: 0, max: 2 ** 47 }), { nil: undefined }),
  })
  .map((r) => ({
    key: r.key,
    content: r.deleted ? Buffer.alloc(0) : r.content,
    contentHash: r.deleted ? '' : sha(r.content),
    contentType: r.json && !r.deleted ? 'json' : 'binary',
    updatedAt: r.updatedAt,
    version: r.version,
    origin: r.origin,
    deleted: r.deleted,
    ...(r.trace !== undefined && !r.deleted ? { traceParent: r.trace } : {}),
    // A tombstone carries no expiry (its meta has none).
    ...(r.expiresAt !== undefined && !r.deleted ? { expiresAt: r.expiresAt } : {}),
  }));

function throwsOnlyTyped(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof CorruptEntryError)) throw err;
  }
}

describe('codec properties', () => {
  it('encode → parse → record round-trips every record', () => {
    fc.assert(
      fc.property(recordArb, (record) => {
        const parsed = withoutFrame(
          eventToRecord(parseCdcEntry(encodeCdcEntry(record)), '1-0', 'someone-else'),
        );
        assert.deepEqual(
          { ...parsed, content: parsed.content.toString('hex') },
          { ...record, content: record.content.toString('hex') },
        );
      }),
      { numRuns: 300 },
    );
  });

  it('compresses exactly when it helps and the content is ≥ 64 bytes, or it begins with the magic', () => {
    fc.assert(
      fc.property(contentArb, (content) => {
        const { data, compressed } = encodeData(content);
        const magic = hasZstdMagic(content);
        if (compressed) {
          assert.ok(magic || (content.length >= 64 && data.length < content.length));
          assert.ok(decompressBounded(data, content.length).equals(content));
        } else {
          // Raw, a content with the magic would read as a frame.
          assert.ok(!magic);
          assert.equal(data, content);
        }
      }),
    );
  });

  it("round-trips any content, magic-prefixed ones included: ours framed, a Rust writer's raw", () => {
    fc.assert(
      fc.property(contentArb, fc.boolean(), (content, lazyContent) => {
        const contentHash = sha(content);
        const record: StoredRecord = {
          key: 'k',
          content,
          contentHash,
          contentType: 'binary',
          updatedAt: 1,
          version: 1,
          origin: 'node-a',
          deleted: false,
        };
        // What we write, and what the Rust sync-engine writes for content it does not compress.
        const rust = [
          ...['op', 'PUT', 'key', 'k', 'hash', contentHash, 'data'].map((s) => Buffer.from(s)),
          content,
        ];
        for (const fields of [encodeCdcEntry(record), rust]) {
          const event = parseCdcEntry(fields, { lazyContent });
          assert.ok(event.op === 'PUT');
          assert.equal(event.content.toString('hex'), content.toString('hex'));
          assert.equal(event.contentHash, contentHash);
          const parsed = eventToRecord(event, '1-0', 'node-a');
          assert.equal(parsed.content.toString('hex'), content.toString('hex'));
          // A frame a store keeps (keepsFrames) is one that decompresses to the content.
          if (parsed.frame !== undefined) {
            assert.ok(decompressBounded(parsed.frame, content.length).equals(content));
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('rejects meta strings that JSON can spell but utf-8 cannot (lone surrogates)', () => {
    for (const meta of [
      '{"version":1,"updated_at":1,"origin":"node-\\ud800"}',
      '{"version":1,"updated_at":1,"trace_parent":"00-\\udc00-01"}',
    ]) {
      const fields = ['op', 'DEL', 'key', 'k', 'meta', meta].map((s) => Buffer.from(s));
      assert.throws(
        () => parseCdcEntry(fields),
        (e: unknown) => e instanceof CorruptEntryError && e.reason === 'bad_meta',
      );
    }
    // A surrogate pair spelled as escapes is one well-formed character.
    const pair = ['op', 'DEL', 'key', 'k', 'meta', '{"origin":"\\ud83d\\ude80"}'];
    assert.equal(parseCdcEntry(pair.map((s) => Buffer.from(s))).meta?.origin, '🚀');
  });

  it('reads a meta the same by its canonical fast path as by JSON.parse, or rejects it the same', () => {
    const text = fc.string({ unit: 'binary', maxLength: 12 });
    const part = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
    const metaArb = fc
      .record({
        contentType: part(fc.constantFrom('json', 'binary', 'text', '')),
        version: fc.oneof(fc.nat(), fc.constantFrom(2 ** 53, 2 ** 60, -1)),
        updatedAt: fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER + 2)),
        traceParent: part(text),
        origin: part(text),
        expiresAt: part(fc.oneof(fc.nat(), fc.constantFrom(2 ** 53, -1, 1.5))),
        // Spellings JSON accepts and the fast path must not: leading zeros, spaces, escapes.
        twist: fc.constantFrom('', 'zeros', 'space', 'escape', 'order', 'null'),
      })
      .map(({ contentType, version, updatedAt, traceParent, origin, expiresAt, twist }) => {
        const q = (s: string) => (twist === 'escape' ? JSON.stringify(s) : `"${s}"`);
        const num = (n: number) => (twist === 'zeros' ? `0${n}` : String(n));
        const fields = [
          contentType === undefined ? '' : `"content_type":${q(contentType)},`,
          `"version":${num(version)},"updated_at":${num(updatedAt)}`,
          traceParent === undefined ? '' : `,"trace_parent":${q(traceParent)}`,
          origin === undefined ? '' : `,"origin":${twist === 'null' ? 'null' : q(origin)}`,
          expiresAt === undefined ? '' : `,"expires_at":${num(expiresAt)}`,
        ];
        if (twist === 'order') fields.reverse();
        return `{${fields.join(twist === 'space' ? ' ' : '')}}`.replace(',}', '}');
      });
    fc.assert(
      fc.property(metaArb, (meta) => {
        const outcome = (read: () => unknown) => {
          try {
            return { ok: read() };
          } catch (error) {
            assert.ok(error instanceof CorruptEntryError, String(error));
            return { reason: error.reason };
          }
        };
        const raw = Buffer.from(meta);
        const general = outcome(() =>
          parseMetaText(new TextDecoder('utf-8', { fatal: true }).decode(raw)),
        );
        assert.deepEqual(
          outcome(() => parseMeta(raw)),
          general,
          meta,
        );
      }),
      { numRuns: 2000 },
    );
  });

  it('arbitrary field lists never throw anything but CorruptEntryError', () => {
    const name = fc.constantFrom('op', 'key', 'hash', 'data', 'meta', 'x', '');
    const value = fc.oneof(
      fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
      fc
        .constantFrom('PUT', 'DEL', 'put', 'delete', '{}', '{"version":-1}', 'null', '[1]')
        .map((s) => Buffer.from(s)),
      fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.concat([ZSTD_MAGIC, Buffer.from(a)])),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(name, value), { maxLength: 8 }), (pairs) => {
        throwsOnlyTyped(() => parseCdcEntry(pairs.flatMap(([n, v]) => [Buffer.from(n), v])));
      }),
      { numRuns: 2000 },
    );
  });

  it('corrupt zstd frames never crash: any byte flipped or cut in a valid frame', () => {
    const frames = validVectors
      .map((v) => {
        const i = v.fields.findIndex((f, j) => j % 2 === 0 && f.toString() === 'data');
        return v.fields[i + 1]!;
      })
      .filter((d) => d !== undefined && d[0] === 0x28);
    assert.ok(frames.length > 0);
    fc.assert(
      fc.property(
        fc.constantFrom(...frames),
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        fc.boolean(),
        (frame, at, byte, cut) => {
          const mutated = Buffer.from(frame);
          const i = at % mutated.length;
          const input = cut ? mutated.subarray(0, i) : mutated;
          if (!cut) mutated[i] = byte;
          // Decompressed for keeps or only hashed in place, a frame gives the same verdict: a lazy
          // content read after its hash succeeded cannot fail.
          const verdict = (fn: () => string): string => {
            try {
              return fn();
            } catch (err) {
              if (!(err instanceof CorruptEntryError)) throw err;
              return `rejected: ${err.reason}`;
            }
          };
          assert.equal(
            verdict(() => withContent(input, 1 << 20, sha)),
            verdict(() => sha(decompressBounded(input, 1 << 20))),
          );
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("reads a frame header's content size as libzstd does, or leaves the header to it", () => {
    const native = (frame: Uint8Array): number | null | 'error' => {
      try {
        return zstdBinding.getFrameContentSize(frame);
      } catch {
        return 'error';
      }
    };
    // Real frames of every size class (1-, 2-, 4-byte sizes; streamed frames declare none).
    for (const size of [0, 1, 200, 255, 256, 65_791, 65_792, 300_000]) {
      const frame = encodeData(Buffer.alloc(size, 'a')).data;
      if (frame[0] === 0x28) assert.equal(headerContentSize(frame), native(frame), `${size} bytes`);
    }
    let read = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.uint8Array({ maxLength: 14 }),
        fc.boolean(),
        (descriptor, rest, magic) => {
          const frame = Buffer.concat([
            magic ? ZSTD_MAGIC : Buffer.from([0x28, 0xb5, 0x2f, 0xfe]),
            Buffer.from([descriptor]),
            rest,
          ]);
          const size = headerContentSize(frame);
          if (size === undefined) return; // left to libzstd
          read += 1;
          assert.equal(size, native(frame));
        },
      ),
      { numRuns: 5000 },
    );
    assert.ok(read > 300, `${read} headers read in JS`);
  });

  it('parses the same with lazyContent: every field, content read through, hash in any case', () => {
    fc.assert(
      fc.property(recordArb, fc.boolean(), fc.boolean(), (record, upper, corrupt) => {
        const fields = encodeCdcEntry(record);
        const h = fields.findIndex((f, j) => j % 2 === 0 && f.toString() === 'hash');
        if (h >= 0) {
          let hex = fields[h + 1]!.toString('latin1');
          if (upper) hex = hex.toUpperCase();
          if (corrupt) hex = (hex[0] === '0' ? '1' : '0') + hex.slice(1);
          fields[h + 1] = Buffer.from(hex, 'latin1');
        }
        if (h >= 0 && corrupt) {
          for (const lazyContent of [false, true]) {
            assert.throws(
              () => parseCdcEntry(fields, { lazyContent }),
              (err: unknown) => err instanceof CorruptEntryError && err.reason === 'hash_mismatch',
            );
          }
          return;
        }
        const eager = parseCdcEntry(fields);
        const lazy = parseCdcEntry(fields, { lazyContent: true });
        const plain = (e: typeof eager): object =>
          e.op === 'PUT' ? { ...e, content: e.content.toString('hex') } : { ...e };
        assert.deepEqual(plain(lazy), plain(eager));
        if (lazy.op === 'PUT') assert.equal(lazy.content, lazy.content, 'decompressed once');
        const a = eventToRecord(eager, '1-0', 'peer');
        const b = eventToRecord(lazy, '1-0', 'peer');
        assert.deepEqual(
          { ...b, content: b.content.toString('hex') },
          {
            ...a,
            content: a.content.toString('hex'),
          },
        );
        assert.equal(b.content.toString('hex'), record.content.toString('hex'));
      }),
      { numRuns: 300 },
    );
  });

  it('lays out a batch of values in one buffer: each its header line, then its body', () => {
    fc.assert(
      fc.property(fc.array(recordArb, { maxLength: 20 }), fc.boolean(), (records, framed) => {
        const given = records.map((r) => {
          const { data, compressed } = encodeData(r.content);
          return framed && !r.deleted && compressed ? { ...r, frame: data } : r;
        });
        const expected = given.map((r) =>
          Buffer.concat([
            Buffer.from(`${recordHeader(r)}\n`),
            r.deleted ? Buffer.alloc(0) : (r.frame ?? r.content),
          ]),
        );
        assert.deepEqual(encodeRecordValues(given), expected);
      }),
      { numRuns: 200 },
    );
  });
});
