/**
 * One order (SPEC §8): every string of the LWW order compares as the bytes of its UTF-8, as the Lua
 * scripts compare them, and a Merkle leaf hashes those same bytes. The reference is
 * `Buffer.compare` of the encoded strings.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compareUtf8, compareVersions, type RecordVersion } from '../../src/model/record.js';
import { leafHash, sortByKeyUtf8 } from '../../src/store/merkle-hash.js';

const bytesOrder = (a: string, b: string): number =>
  Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/**
 * Characters at the edges of every UTF-8 length and of the surrogates, so the case where UTF-16
 * code units and UTF-8 bytes disagree (a character above U+FFFF against U+E000-U+FFFF) comes up
 * in most runs, not once in a million random graphemes.
 */
const EDGES = [
  'a',
  '-',
  '\u007f',
  '\u0080',
  'ü',
  '\u07ff',
  '\u0800',
  '\ud7ff',
  '\ue000',
  'ﬀ',
  '\ufffd',
  '\uffff',
  '\u{10000}',
  '\u{1F600}',
  '\u{10FFFF}',
];

const unit = fc.oneof(
  fc.constantFrom(...EDGES),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }),
);
const text = fc.string({ unit, maxLength: 6 });
/** Two strings, often sharing a prefix (so the first difference is not always at index 0). */
const pair = fc
  .tuple(fc.string({ unit, maxLength: 4 }), text, text)
  .map(([prefix, a, b]) => [prefix + a, prefix + b] as const);

function version(origin: string, contentHash = 'ab'.repeat(32)): RecordVersion {
  return { key: 'k', updatedAt: 1000, version: 1, origin, contentHash, deleted: false };
}

describe('compareUtf8', () => {
  it('agrees with Buffer.compare of the UTF-8 bytes for any Unicode strings', () => {
    fc.assert(
      fc.property(pair, ([a, b]) => {
        assert.equal(compareUtf8(a, b), bytesOrder(a, b), JSON.stringify([a, b]));
      }),
      { numRuns: 20_000 },
    );
  });

  it('puts a character above U+FFFF after U+E000-U+FFFF, as UTF-8 does and UTF-16 does not', () => {
    assert.ok('\u{1F600}' < '\ufb00', 'code units say the opposite');
    assert.equal(compareUtf8('\u{1F600}-node', 'ﬀ-node'), 1);
    assert.equal(compareUtf8('ﬀ-node', '\u{1F600}-node'), -1);
    assert.equal(compareUtf8('\u{10000}', '\uffff'), 1);
    assert.equal(compareUtf8('\ud7ff', '\u{10000}'), -1);
    assert.equal(compareUtf8('ü-node', 'ﬀ-node'), -1);
    assert.equal(compareUtf8('node', 'node-a'), -1);
    assert.equal(compareUtf8('\u{1F600}', '\u{1F600}'), 0);
  });
});

describe('compareVersions orders origins and content hashes by UTF-8 bytes', () => {
  it('for arbitrary Unicode origins with equal clocks', () => {
    fc.assert(
      fc.property(pair, ([a, b]) => {
        const order = Math.sign(compareVersions(version(a), version(b)));
        assert.equal(order, bytesOrder(a, b), JSON.stringify([a, b]));
      }),
      { numRuns: 20_000 },
    );
  });

  it("for the issue's three origins", () => {
    const origins = ['\u{1F600}-node', 'ü-node', 'ﬀ-node'];
    const sorted = [...origins].sort((a, b) => compareVersions(version(a), version(b)));
    assert.deepEqual(sorted, ['ü-node', 'ﬀ-node', '\u{1F600}-node']);
  });

  it('for content hashes (any string a peer could send)', () => {
    fc.assert(
      fc.property(pair, ([a, b]) => {
        const order = Math.sign(compareVersions(version('o', a), version('o', b)));
        assert.equal(order, bytesOrder(a, b));
      }),
    );
  });
});

describe('Merkle leaves', () => {
  it('sortByKeyUtf8 sorts keys by their UTF-8 bytes', () => {
    fc.assert(
      fc.property(fc.array(text.map((key) => ({ key }))), (leaves) => {
        const expected = [...leaves].sort((a, b) => bytesOrder(a.key, b.key));
        assert.deepEqual(sortByKeyUtf8(leaves), expected);
      }),
    );
  });

  it('a leaf hashes the UTF-8 bytes of a non-ASCII origin and key', () => {
    const v = { ...version('\u{1F600}-ﬀ-ü'), key: 'uk.ключ' };
    const bytes = Buffer.concat([
      Buffer.from([0x75, 0x6b, 0x2e, 0xd0, 0xba, 0xd0, 0xbb, 0xd1, 0x8e, 0xd1, 0x87]),
      Buffer.from(`\u00001000\u00001\u0000P\u0000${'ab'.repeat(32)}\u0000`),
      Buffer.from([0xf0, 0x9f, 0x98, 0x80, 0x2d, 0xef, 0xac, 0x80, 0x2d, 0xc3, 0xbc]),
    ]);
    assert.deepEqual(leafHash(v), createHash('sha256').update(bytes).digest());
  });
});
