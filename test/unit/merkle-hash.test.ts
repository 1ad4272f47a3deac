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
  HashSum,
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

  it('is the sum of the leaf hashes modulo 2^256, the carry out of the top byte dropped', () => {
    const leaves = [version('a'), version('b', { deleted: true }), version('\u{1f600}')];
    // Reference: big-endian byte-wise addition with carry, independent of the BigInt code.
    const sum = Buffer.alloc(32);
    for (const leaf of leaves) {
      const bytes = leafHash(leaf);
      let carry = 0;
      for (let i = 31; i >= 0; i--) {
        const total = sum[i]! + bytes[i]! + carry;
        sum[i] = total & 0xff;
        carry = total >> 8;
      }
    }
    assert.equal(bucketHash(leaves), sum.toString('hex'));
  });

  it('moves by (new leaf − old leaf) when one leaf changes', () => {
    const before = Array.from({ length: 20 }, (_, i) => version(`k.${i}`, { version: i }));
    const changed = version('k.7', { version: 99 });
    const after = before.map((v) => (v.key === 'k.7' ? changed : v));
    const moved = new HashSum(bucketHash(before))
      .add(leafHash(before[7]!), -1)
      .add(leafHash(changed), 1);
    assert.equal(moved.hex(), bucketHash(after));
    const emptied = new HashSum(bucketHash([before[0]!])).add(leafHash(before[0]!), -1);
    assert.equal(emptied.hex(), ZERO_HASH);
  });

  it('wraps below zero and above 2^256, and sums of sums add up', () => {
    const max = 'f'.repeat(64);
    const one = Buffer.alloc(32);
    one[31] = 1;
    assert.equal(new HashSum(max).add(one).hex(), ZERO_HASH);
    assert.equal(new HashSum().add(one, -1).hex(), max);
    const leaves = Array.from({ length: 30 }, (_, i) => version(`s.${i}`));
    const halves = new HashSum(bucketHash(leaves.slice(0, 13))).addSum(
      new HashSum(bucketHash(leaves.slice(13))),
    );
    assert.equal(halves.hex(), bucketHash(leaves));
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
  it('matches the documented leaf, bucket, node and root hashes', () => {
    const live: RecordVersion = {
      key: 'uk.nhs.patient.12345',
      updatedAt: 1_735_776_000_000,
      version: 1,
      origin: 'node-a',
      contentHash: '3cba1e3cf23c8ce24b7e08171d823fbd9a4929aafd9f27516e30699d3a42026a',
      deleted: false,
    };
    const tomb: RecordVersion = {
      key: 'uk.nhs.patient.2644',
      updatedAt: 1_735_776_000_500,
      version: 2,
      origin: 'node-b',
      contentHash: '',
      deleted: true,
    };
    assert.equal(bucketOf(live.key), 'bd4f');
    assert.equal(bucketOf(tomb.key), 'bd4f');
    assert.equal(
      leafHash(live).toString('hex'),
      'f43e5ed7ac0229e9ae60f026a4d971d2e1f7cdf3fe4a6cc00fa69eec71186026',
    );
    assert.equal(
      leafHash(tomb).toString('hex'),
      '2ffe336f77da54c206e108714ad08b894aa943b9f75d0f537e7d16a9a7f2d4c9',
    );
    assert.equal(
      bucketHash([live, tomb]),
      '243c924723dc7eabb541f897efa9fd5c2ca111adf5a77c138e23b596190b34ef',
    );
    const nodes = ['bd4', 'bd', 'b', ''].map((path) => computeRootPath([live, tomb], path));
    assert.deepEqual(nodes, [
      '386689958f7b5788899a32aefdd633308cc3dbef1803b8aa74883d51165929b0',
      'be33bb56c84d1d9f6650845ed20ff31a16cf92b2978cbee474f15462f1b70917',
      'cd05e82e11e98a641126c142abde10338ee6c5e2b4ffdf737e92cbab09c3dcee',
      '9582fbc5ba21d53ef0c77a70c35a6fa9ee568ceca918b25c8c30cb7f27d54e97',
    ]);
    assert.equal(
      computeRoot([live, tomb]),
      '9582fbc5ba21d53ef0c77a70c35a6fa9ee568ceca918b25c8c30cb7f27d54e97',
    );
  });
});

/** The hash of the node at `path` on the chain above one bucket holding all of `versions`. */
function computeRootPath(versions: readonly RecordVersion[], path: string): string {
  const bucket = bucketOf(versions[0]!.key);
  let hash = bucketHash(versions);
  for (let depth = 3; depth >= path.length; depth--) {
    const children = new Array<string | undefined>(16).fill(undefined);
    children[parseInt(bucket[depth]!, 16)] = hash;
    hash = interiorHash(children);
  }
  return hash;
}
