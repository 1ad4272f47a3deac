import { MAX_UPDATED_AT } from '../../src/codec/bounds.js';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventToRecord, parseCdcEntry } from '../../src/codec/cdc.js';
import { CorruptEntryError } from '../../src/errors.js';
import { invalidVectors, validVectors } from '../helpers/vectors.js';

describe('CDC vectors from the Rust sync-engine', () => {
  // Every vector is read both ways: contents decompressed, and frames only hashed (lazyContent).
  for (const lazyContent of [false, true]) {
    const mode = lazyContent ? ' (lazy content)' : '';
    for (const vector of validVectors) {
      it(`parses valid: ${vector.name}${mode}`, () => {
        const expect = vector.expect!;
        const event = parseCdcEntry(vector.fields, { lazyContent });
        assert.equal(event.op, expect.op);
        assert.equal(event.key, expect.key);
        if (event.op === 'PUT') {
          assert.equal(event.hash ?? null, expect.hash ?? null);
          assert.equal(event.content.toString('base64'), expect.content_b64);
          assert.equal(event.compressed, expect.compressed);
          if (expect.meta == null) assert.equal(event.meta, undefined);
          else {
            assert.equal(event.meta?.contentType, expect.meta.content_type);
            assert.equal(event.meta?.version, expect.meta.version);
            assert.equal(event.meta?.updatedAt, expect.meta.updated_at);
            assert.equal(event.meta?.traceParent, expect.meta.trace_parent);
          }
        }
      });
    }

    for (const vector of invalidVectors) {
      it(`rejects invalid: ${vector.name}${mode}`, () => {
        assert.throws(
          () => parseCdcEntry(vector.fields, { lazyContent }),
          (err: unknown) => err instanceof CorruptEntryError && err.message.length > 0,
        );
      });
    }

    it(`names the problem in the error reason${mode}`, () => {
      const reasons = Object.fromEntries(
        invalidVectors.map((v) => {
          try {
            parseCdcEntry(v.fields, { lazyContent });
            return [v.name, 'accepted'];
          } catch (err) {
            return [v.name, (err as CorruptEntryError).reason];
          }
        }),
      );
      assert.deepEqual(reasons, {
        'zstd magic then garbage': 'bad_zstd',
        'truncated zstd frame': 'bad_zstd',
        'hash mismatch': 'hash_mismatch',
        'missing key': 'missing_key',
        'missing op': 'missing_op',
        'unknown op': 'unknown_op',
        'put without data': 'missing_data',
        'key not utf-8': 'bad_key',
        'empty field list': 'empty',
        'zstd bomb: 8431 bytes expanding to 256 MiB': 'too_large',
      });
    });
  }

  it('rejects the zstd bomb under a small limit without inflating it', () => {
    const bomb = invalidVectors.find((v) => v.name.startsWith('zstd bomb'))!;
    const before = process.memoryUsage().arrayBuffers;
    assert.throws(() => parseCdcEntry(bomb.fields, { maxItemBytes: 1024 * 1024 }), /limit/);
    assert.ok(process.memoryUsage().arrayBuffers - before < 64 * 1024 * 1024);
  });

  it('gives a Rust DEL the clock of its stream entry and the peer as origin', () => {
    const del = validVectors.find((v) => v.expect?.op === 'DEL')!;
    const record = eventToRecord(parseCdcEntry(del.fields), '1735776000999-3', 'peer-b');
    assert.equal(record.deleted, true);
    assert.equal(record.updatedAt, 1735776000999);
    assert.equal(record.version, 0);
    assert.equal(record.origin, 'peer-b');
    assert.equal(record.contentHash, '');
  });

  it('refuses a clock from an entry id beyond 2^53 - 1 (quarantined, not an apply failure)', () => {
    const del = validVectors.find((v) => v.expect?.op === 'DEL')!;
    const far = '99999999999999999-0';
    assert.throws(
      () => eventToRecord(parseCdcEntry(del.fields), far, 'peer-b'),
      (err: unknown) => err instanceof CorruptEntryError && err.reason === 'bad_id',
    );
    // With a clock in its meta, the entry id does not matter.
    const put = validVectors[0]!;
    assert.equal(eventToRecord(parseCdcEntry(put.fields), far, 'peer-b').updatedAt, 1735776000000);
    // The largest clock an id may give leaves room for later writes (docs/PROTOCOL.md §1).
    assert.equal(
      eventToRecord(parseCdcEntry(del.fields), `${MAX_UPDATED_AT}-0`, 'peer-b').updatedAt,
      MAX_UPDATED_AT,
    );
    assert.throws(
      () => eventToRecord(parseCdcEntry(del.fields), '9007199254740991-0', 'peer-b'),
      (err: unknown) => err instanceof CorruptEntryError && err.reason === 'bad_id',
    );
  });

  it('keeps the meta clock of a Rust PUT and fills the origin from the peer', () => {
    const put = validVectors[0]!;
    const record = eventToRecord(parseCdcEntry(put.fields), '1800000000000-0', 'peer-b');
    assert.equal(record.updatedAt, 1735776000000);
    assert.equal(record.version, 1);
    assert.equal(record.origin, 'peer-b');
    assert.equal(record.contentType, 'json');
  });
});
