/**
 * The `data` rule for contents that begin with the zstd magic (docs/PROTOCOL.md §3): we always
 * write them as a frame; a raw one, as the Rust sync-engine writes it, is read by its hash, never
 * kept as a frame, and never inflated past the bound.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeCdcEntry, eventToRecord, parseCdcEntry, sha256Hex } from '../../src/codec/cdc.js';
import { decompressBounded, encodeData, hasZstdMagic, ZSTD_MAGIC } from '../../src/codec/zstd.js';
import { CorruptEntryError } from '../../src/errors.js';
import { invalidVectors } from '../helpers/vectors.js';

function fieldsOf(pairs: Record<string, Buffer | string>): Buffer[] {
  return Object.entries(pairs).flatMap(([name, value]) => [
    Buffer.from(name),
    Buffer.isBuffer(value) ? value : Buffer.from(value),
  ]);
}

/** An entry as the Rust sync-engine writes such content: raw, its hash that of the raw bytes. */
/** `hash` null: an entry without one. */
function rawEntry(content: Buffer, hash: string | null = sha256Hex(content)): Buffer[] {
  return fieldsOf({
    op: 'PUT',
    key: 'k',
    ...(hash === null ? {} : { hash }),
    data: content,
    meta: '{"content_type":"binary","version":1,"updated_at":1735776000000}',
  });
}

const reason = (fn: () => unknown): string => {
  try {
    fn();
    return 'accepted';
  } catch (error) {
    assert.ok(error instanceof CorruptEntryError, String(error));
    return error.reason;
  }
};

const BOMB = (() => {
  const bomb = invalidVectors.find((v) => v.name.startsWith('zstd bomb'))!;
  return bomb.fields[bomb.fields.findIndex((f) => f.toString() === 'data') + 1]!;
})();

describe('zstd magic in content', () => {
  it('is written as a zstd frame whatever its size, even when the frame is larger', () => {
    for (const content of [
      Buffer.from(ZSTD_MAGIC),
      Buffer.concat([ZSTD_MAGIC, Buffer.from('tiny')]),
      Buffer.concat([ZSTD_MAGIC, Buffer.alloc(300, 7)]),
      encodeData(Buffer.alloc(1000, 'a')).data, // a .zst file
    ]) {
      const { data, compressed } = encodeData(content);
      assert.ok(compressed && hasZstdMagic(data));
      assert.ok(decompressBounded(data, content.length).equals(content));
      const record = {
        key: 'k',
        content,
        contentHash: sha256Hex(content),
        contentType: 'binary' as const,
        version: 1,
        updatedAt: 1,
        origin: 'node-a',
        deleted: false,
      };
      const event = parseCdcEntry(encodeCdcEntry(record));
      assert.ok(event.op === 'PUT' && event.compressed && event.content.equals(content));
    }
    // Content without the magic keeps the old rule: raw under 64 bytes.
    assert.equal(encodeData(Buffer.from('{"a":1}')).compressed, false);
  });

  it('read raw (a Rust writer) gives a record without a frame, eagerly and lazily', () => {
    for (const content of [
      Buffer.concat([ZSTD_MAGIC, Buffer.from([1, 2, 3])]),
      encodeData(Buffer.alloc(1000, 'a')).data,
    ]) {
      for (const lazyContent of [false, true]) {
        const event = parseCdcEntry(rawEntry(content), { lazyContent });
        assert.ok(event.op === 'PUT' && !event.compressed);
        assert.ok(event.content.equals(content));
        const record = eventToRecord(event, '1-0', 'peer');
        // A store that keeps frames (SyncStore) would store a frame as one: this must stay raw.
        assert.equal(record.frame, undefined);
        assert.ok(record.content.equals(content));
        assert.equal(record.contentHash, sha256Hex(content));
      }
    }
  });

  it('read raw stays bounded: a bomb sent raw is its bytes, never inflated; without its hash, refused', () => {
    const limit = 1024 * 1024;
    const before = process.memoryUsage().arrayBuffers;
    for (const lazyContent of [false, true]) {
      const event = parseCdcEntry(rawEntry(BOMB), { maxItemBytes: limit, lazyContent });
      assert.ok(event.op === 'PUT' && event.content.equals(BOMB));
      assert.equal(
        reason(() => parseCdcEntry(rawEntry(BOMB, null), { maxItemBytes: limit, lazyContent })),
        'too_large',
      );
    }
    assert.ok(process.memoryUsage().arrayBuffers - before < 64 * 1024 * 1024);
  });

  it('is refused when neither the frame nor the raw bytes match the hash', () => {
    const notAFrame = Buffer.concat([ZSTD_MAGIC, Buffer.from('garbage that is no frame')]);
    const frame = encodeData(Buffer.alloc(1000, 'a')).data;
    const other = sha256Hex('something else');
    for (const lazyContent of [false, true]) {
      assert.equal(
        reason(() => parseCdcEntry(rawEntry(notAFrame, other), { lazyContent })),
        'bad_zstd',
      );
      assert.equal(
        reason(() => parseCdcEntry(rawEntry(notAFrame, null), { lazyContent })),
        'bad_zstd',
      );
      assert.equal(
        reason(() => parseCdcEntry(rawEntry(frame, other), { lazyContent })),
        'hash_mismatch',
      );
      // Without a hash, a valid frame is a frame.
      const event = parseCdcEntry(rawEntry(frame, null), { lazyContent });
      assert.ok(event.op === 'PUT' && event.compressed);
      assert.ok(event.content.equals(Buffer.alloc(1000, 'a')));
    }
  });
});
