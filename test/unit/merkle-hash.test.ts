import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import type { RecordVersion } from '../../src/model/record.js';
import {
  bucketHash,
  bucketOf,
  childPaths,
  computeRoot,
  formatVersionTuple,
  interiorHash,
  isBucketPath,
  isMerklePath,
  leafHash,
  nodeField,
  parseVersionTuple,
  ZERO_HASH,
} from '../../src/store/merkle-hash.js';

const sha = (data: string | Buffer): Buffer => createHash('sha256').update(data).digest();

function version(key: string, overrides: Partial<RecordVersion> = {}): RecordVersion {
  return {
    key,
    updatedAt: 1_735_776_000_000,
    version: 3,
    origin: 'node-a',
    contentHash: 'ab'.repeat(32),
    deleted: false,
    ...overrides,
  };
}

function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1_103_515_245 + 12_345) % 2_147_483_648;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('bucketOf', () => {
  it('is the first four hex digits of sha256(utf-8 key)', () => {
    const key = 'uk.nhs.patient.12345';
    assert.equal(bucketOf(key), sha(key).toString('hex').slice(0, 4));
    assert.match(bucketOf('é'), /^[0-9a-f]{4}$/);
    assert.equal(bucketOf('é'), sha(Buffer.from('é', 'utf8')).toString('hex').slice(0, 4));
  });
});

describe('paths', () => {
  it('names the root field "root" and lists 16 children in hex order', () => {
    assert.equal(nodeField(''), 'root');
    assert.equal(nodeField('a3'), 'a3');
    assert.deepEqual(
      childPaths('a'),
      [...'0123456789abcdef'].map((d) => `a${d}`),
    );
    assert.ok(
      isMerklePath('') && isMerklePath('a3f0') && !isMerklePath('a3f01') && !isMerklePath('A'),
    );
    assert.ok(isBucketPath('a3f0') && !isBucketPath('a3f') && !isBucketPath(''));
  });
});

describe('leafHash', () => {
  it('hashes key, clock, tombstone flag, content hash and origin separated by NUL', () => {
    const v = version('uk.a');
    const expected = sha(
      `uk.a\u00001735776000000\u00003\u0000P\u0000${'ab'.repeat(32)}\u0000node-a`,
    );
    assert.deepEqual(leafHash(v), expected);
    const tomb = version('uk.a', { deleted: true, contentHash: '' });
    assert.deepEqual(
      leafHash(tomb),
      sha('uk.a\u00001735776000000\u00003\u0000D\u0000\u0000node-a'),
    );
  });

  it('changes with every field of the version', () => {
    const base = leafHash(version('k')).toString('hex');
    const variants = [
      version('k2'),
      version('k', { updatedAt: 1 }),
      version('k', { version: 4 }),
      version('k', { origin: 'node-b' }),
      version('k', { contentHash: 'cd'.repeat(32) }),
      version('k', { deleted: true }),
    ].map((v) => leafHash(v).toString('hex'));
    assert.equal(new Set([base, ...variants]).size, variants.length + 1);
  });
});

describe('bucketHash', () => {
  it('is 64 zeros for an empty bucket', () => {
    assert.equal(bucketHash([]), ZERO_HASH);
  });

  it('is sha256 of the leaf hashes in utf-8 byte order of keys', () => {
    // Code-unit order puts the emoji (a surrogate pair, 0xD83D…) first; utf-8 byte order puts
    // U+FF61 (EF BD A1) before it (F0 9F 98 80).
    const halfwidth = version('\uff61');
    const emoji = version('\u{1f600}');
    const expected = sha(Buffer.concat([leafHash(halfwidth), leafHash(emoji)])).toString('hex');
    assert.equal(bucketHash([emoji, halfwidth]), expected);
    assert.equal(bucketHash([halfwidth, emoji]), expected);
  });

  it('does not depend on the order of the leaves', () => {
    const leaves = Array.from({ length: 50 }, (_, i) =>
      version(`uk.nhs.patient.${i}`, { version: i }),
    );
    const expected = bucketHash(leaves);
    for (let seed = 1; seed < 6; seed++) assert.equal(bucketHash(shuffled(leaves, seed)), expected);
  });
});

describe('interiorHash', () => {
  it('is 64 zeros when every child is empty', () => {
    assert.equal(interiorHash(new Array<string | undefined>(16).fill(undefined)), ZERO_HASH);
    assert.equal(interiorHash(new Array<string>(16).fill(ZERO_HASH)), ZERO_HASH);
  });

  it('hashes the 16 children in order, a missing child as 32 zero bytes', () => {
    const child = 'cd'.repeat(32);
    const children = new Array<string | undefined>(16).fill(undefined);
    children[2] = child;
    const raw = Buffer.alloc(16 * 32);
    Buffer.from(child, 'hex').copy(raw, 2 * 32);
    assert.equal(interiorHash(children), sha(raw).toString('hex'));
    const explicit = children.map((c) => c ?? ZERO_HASH);
    assert.equal(interiorHash(explicit), interiorHash(children));
    const moved = new Array<string | undefined>(16).fill(undefined);
    moved[3] = child;
    assert.notEqual(interiorHash(moved), interiorHash(children));
  });

  it('rejects a child list that is not 16 long', () => {
    assert.throws(() => interiorHash([ZERO_HASH]), RangeError);
  });
});

describe('version tuples', () => {
  it('round-trip, with the origin last so it may contain "|"', () => {
    const v = version('k', { origin: 'dc|1|a' });
    const tuple = formatVersionTuple(v);
    assert.equal(tuple, `1735776000000|3|0|${'ab'.repeat(32)}|dc|1|a`);
    assert.deepEqual(parseVersionTuple('k', tuple), v);
    const tomb = version('k', { deleted: true, contentHash: '' });
    assert.equal(formatVersionTuple(tomb), '1735776000000|3|1||node-a');
    assert.deepEqual(parseVersionTuple('k', formatVersionTuple(tomb)), tomb);
  });

  it('reject malformed tuples', () => {
    for (const bad of ['', '1|2|0|h', 'x|2|0|h|o', '1|2|9|h|o', '1|-2|0|h|o']) {
      assert.equal(parseVersionTuple('k', bad), undefined, bad);
    }
  });
});

describe('computeRoot', () => {
  it('is 64 zeros for an empty store and independent of record order', () => {
    assert.equal(computeRoot([]), ZERO_HASH);
    const versions = Array.from({ length: 300 }, (_, i) => version(`uk.nhs.patient.${i}`));
    const root = computeRoot(versions);
    assert.match(root, /^[0-9a-f]{64}$/);
    assert.notEqual(root, ZERO_HASH);
    assert.equal(computeRoot(shuffled(versions, 7)), root);
    assert.notEqual(computeRoot(versions.slice(1)), root);
  });

  it('is the interior hash chain of a single bucket', () => {
    const v = version('only');
    const b = bucketOf('only');
    let hash = bucketHash([v]);
    for (let depth = 3; depth >= 0; depth--) {
      const children = new Array<string | undefined>(16).fill(undefined);
      children[parseInt(b[depth]!, 16)] = hash;
      hash = interiorHash(children);
    }
    assert.equal(computeRoot([v]), hash);
  });
});

describe('docs/PROTOCOL.md worked example', () => {
  it('matches the documented bucket, leaf, node and root hashes', () => {
    const v: RecordVersion = {
      key: 'uk.nhs.patient.12345',
      updatedAt: 1_735_776_000_000,
      version: 1,
      origin: 'node-a',
      contentHash: '3cba1e3cf23c8ce24b7e08171d823fbd9a4929aafd9f27516e30699d3a42026a',
      deleted: false,
    };
    assert.equal(bucketOf(v.key), 'bd4f');
    assert.equal(
      leafHash(v).toString('hex'),
      'f43e5ed7ac0229e9ae60f026a4d971d2e1f7cdf3fe4a6cc00fa69eec71186026',
    );
    assert.equal(
      bucketHash([v]),
      '144894225e667384e9cb93253ee798e471209d95d5b1bd5fa9656c0226aafb1d',
    );
    assert.equal(
      computeRoot([v]),
      'fd713e134d726832d5503d1e68ef2d720f89a8dc763b2ed59cedcfa1773ee633',
    );
  });
});
