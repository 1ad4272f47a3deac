/**
 * Fuzzing what the cold path reads from a peer (issue 19): whole stored records (header line,
 * raw or zstd body) and Merkle replies (bucket pages and hashes, version tuples, node hashes,
 * dirty marks), mutated from valid ones or made up. Whatever the peer's Redis holds, the parsers
 * never throw, never return a clock or version beyond its bound (src/codec/bounds.ts), never
 * inflate past `maxItemBytes`, and never pass a body whose content does not hash to its header.
 * The reader's replies come from a scripted sender: what is fuzzed is how a reply is read.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isBoundedInt, MAX_UPDATED_AT, MAX_VERSION } from '../../src/codec/bounds.js';
import { encodeData } from '../../src/codec/zstd.js';
import { dirtyBuckets } from '../../src/engine/merkle-repair.js';
import type { RecordVersion, StoredRecord } from '../../src/model/record.js';
import {
  bucketOf,
  formatVersionTuple,
  isBucketPath,
  parseVersionTuple,
} from '../../src/store/merkle-hash.js';
import {
  MerkleReader,
  parseBucketEntries,
  parseBucketPage,
} from '../../src/store/merkle-reader.js';
import {
  encodeRecordValues,
  parseRecordValue,
  verifyRecordValue,
} from '../../src/store/record-value.js';
import type { CommandSender } from '../../src/store/redis-io.js';
import { readCorpus } from '../fuzz/corpus.js';
import { checkPeerReply } from '../fuzz/peer-reply-checks.js';

const MAX_ITEM_BYTES = 64 * 1024;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

// ---- whole records ----

const contentArb = fc.oneof(
  fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a)),
  fc.string({ maxLength: 400 }).map((s) => Buffer.from(s.repeat(4))),
);

/** A valid record: live (raw or compressed) or a tombstone. */
const recordArb: fc.Arbitrary<StoredRecord> = fc
  .record({
    key: fc.string({ minLength: 1, maxLength: 40 }),
    content: contentArb,
    deleted: fc.boolean(),
    compress: fc.boolean(),
    updatedAt: fc.integer({ min: 0, max: MAX_UPDATED_AT }),
    version: fc.integer({ min: 0, max: MAX_VERSION }),
    origin: fc.string({ minLength: 1, maxLength: 20 }),
  })
  .map((r) => {
    const content = r.deleted
      ? Buffer.alloc(0)
      : r.compress
        ? Buffer.concat([r.content, Buffer.alloc(64)])
        : r.content;
    const encoded = r.compress && !r.deleted ? encodeData(content) : undefined;
    return {
      key: r.key,
      content,
      contentHash: r.deleted ? '' : sha(content),
      contentType: 'binary' as const,
      updatedAt: r.updatedAt,
      version: r.version,
      origin: r.origin,
      deleted: r.deleted,
      ...(encoded?.compressed === true ? { frame: encoded.data } : {}),
    };
  });

/** Numbers a hostile header may carry in place of a clock or a version. */
const edgeNumberArb = fc.oneof(
  fc.constantFrom(2 ** 53 - 1, 2 ** 53, MAX_UPDATED_AT + 1, -1, 1.5, 1e300, Number.MAX_VALUE),
  fc.constantFrom('"1"', 'null', 'true', '[]', '{}', '1e400', '-0'),
);

/** A stored value mutated the way a broken or hostile peer might. */
const mutatedValueArb: fc.Arbitrary<{ value: Buffer; record: StoredRecord; how: string }> = fc
  .tuple(
    recordArb,
    fc.oneof(
      fc.record({ how: fc.constant('flip'), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ how: fc.constant('truncate'), at: fc.nat() }),
      fc.record({
        how: fc.constant('append'),
        bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }),
      }),
      fc.record({ how: fc.constant('body'), bytes: fc.uint8Array({ maxLength: 256 }) }),
      fc.record({ how: fc.constant('ts'), n: edgeNumberArb }),
      fc.record({ how: fc.constant('v'), n: edgeNumberArb }),
      fc.record({ how: fc.constant('z'), on: fc.boolean() }),
      fc.record({ how: fc.constant('bomb') }),
    ),
  )
  .map(([record, m]) => {
    const [valid] = encodeRecordValues([record]);
    const value = Buffer.from(valid!);
    const nl = value.indexOf(0x0a);
    const header = value.toString('utf8', 0, nl);
    const body = value.subarray(nl + 1);
    const withHeader = (h: string, b: Buffer = body): Buffer =>
      Buffer.concat([Buffer.from(`${h}\n`), b]);
    switch (m.how) {
      case 'flip': {
        const at = m.at % value.length;
        value[at] = value[at]! ^ (1 << m.bit);
        return { value, record, how: `flip bit ${m.bit} of byte ${at}` };
      }
      case 'truncate':
        return { value: value.subarray(0, m.at % value.length), record, how: 'truncate' };
      case 'append':
        return { value: Buffer.concat([value, Buffer.from(m.bytes)]), record, how: 'append' };
      case 'body':
        return { value: withHeader(header, Buffer.from(m.bytes)), record, how: 'new body' };
      case 'ts':
        return { value: withHeader(header.replace(/"ts":\d+/, `"ts":${m.n}`)), record, how: 'ts' };
      case 'v':
        return { value: withHeader(header.replace(/"v":\d+/, `"v":${m.n}`)), record, how: 'v' };
      case 'z':
        return {
          value: withHeader(m.on ? header.replace(/}$/, ',"z":1}') : header.replace(',"z":1', '')),
          record,
          how: 'z flag',
        };
      default: {
        // A frame that claims (or streams) far more than max_item_bytes.
        const bomb = encodeData(Buffer.alloc(MAX_ITEM_BYTES * 4)).data;
        return { value: withHeader(header.replace(/}$/, ',"z":1}'), bomb), record, how: 'bomb' };
      }
    }
  });

/** What any parsed record must be, whatever it was parsed from. */
function checkParsed(record: StoredRecord): void {
  assert.ok(isBoundedInt(record.updatedAt, MAX_UPDATED_AT), `updatedAt ${record.updatedAt}`);
  assert.ok(isBoundedInt(record.version, MAX_VERSION), `version ${record.version}`);
  if (record.frame !== undefined) assert.ok(record.content.length <= MAX_ITEM_BYTES, 'inflated');
}

/** Parses and verifies `value` as a repair does; fails the test on a throw or a bad verdict. */
function judge(key: string, value: unknown): ReturnType<typeof verifyRecordValue> {
  const parsed = parseRecordValue(key, value, MAX_ITEM_BYTES);
  if (parsed !== undefined) checkParsed(parsed);
  const verdict = verifyRecordValue(key, value, MAX_ITEM_BYTES);
  if ('record' in verdict) {
    checkParsed(verdict.record);
    if (!verdict.record.deleted) {
      assert.equal(sha(verdict.record.content), verdict.record.contentHash, 'accepted body hashes');
    }
  }
  return verdict;
}

describe('fuzz: stored records a peer serves', () => {
  it('a valid record reads back as itself and is accepted', () => {
    fc.assert(
      fc.property(recordArb, (record) => {
        const [value] = encodeRecordValues([record]);
        const verdict = judge(record.key, Buffer.from(value!));
        assert.ok('record' in verdict, JSON.stringify(verdict));
        assert.equal(verdict.record.updatedAt, record.updatedAt);
        assert.equal(verdict.record.version, record.version);
        assert.ok(verdict.record.content.equals(record.content));
      }),
      { numRuns: 500 },
    );
  });

  it('a mutated record never throws, never passes a bound, and is accepted only if its body hashes to its header', () => {
    fc.assert(
      fc.property(mutatedValueArb, ({ value, record, how }) => {
        const verdict = judge(record.key, value);
        // A live record whose body was replaced (header kept) is accepted only if unchanged.
        if (how === 'new body' && !record.deleted && 'record' in verdict) {
          assert.ok(verdict.record.content.equals(record.content), 'a replaced body accepted');
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('arbitrary replies (bytes, strings, numbers, nested) never throw', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a)),
          fc
            .string()
            .map((s) => Buffer.from(`{"ts":1,"v":1,"d":0,"h":"${s}","o":"x","z":1}\n${s}`)),
          fc.anything(),
        ),
        (value) => {
          judge('k', value);
        },
      ),
      { numRuns: 1500 },
    );
  });
});

// ---- Merkle replies ----

const versionArb: fc.Arbitrary<RecordVersion> = fc.record({
  key: fc.string({ minLength: 1, maxLength: 20 }),
  updatedAt: fc.integer({ min: 0, max: MAX_UPDATED_AT }),
  version: fc.integer({ min: 0, max: MAX_VERSION }),
  deleted: fc.boolean(),
  contentHash: fc.stringMatching(/^[0-9a-f]{64}$/),
  origin: fc.string({ maxLength: 12 }),
});

/** A version tuple as a peer might store it: valid, mutated or made up. */
const tupleArb = fc.oneof(
  versionArb.map(formatVersionTuple),
  fc.tuple(versionArb, fc.nat(), fc.string({ maxLength: 4 })).map(([v, at, s]) => {
    const t = formatVersionTuple(v);
    const i = at % (t.length + 1);
    return t.slice(0, i) + s + t.slice(i + 1);
  }),
  fc
    .tuple(edgeNumberArb, edgeNumberArb, fc.constantFrom('0', '1', '2', ''))
    .map(([ts, v, d]) => `${ts}|${v}|${d}|${'a'.repeat(64)}|o`),
  fc.string({ maxLength: 40 }),
);

/** A field of a bucket: a key of that bucket or not, and a tuple. */
const fieldArb = fc.tuple(fc.string({ maxLength: 16 }), tupleArb);

/** Reply shapes Redis (RESP2 or RESP3) or a broken server might give for a hash read. */
const hashReplyArb = fc.oneof(
  fc.array(fieldArb, { maxLength: 30 }).map((pairs) => pairs.flat()),
  fc.array(fieldArb, { maxLength: 30 }).map((pairs) => new Map(pairs)),
  fc.array(fieldArb, { maxLength: 30 }).map((pairs) => Object.fromEntries(pairs)),
  fc.anything(),
);

function checkLeaves(leaves: readonly RecordVersion[]): void {
  for (const leaf of leaves) {
    assert.ok(isBoundedInt(leaf.updatedAt, MAX_UPDATED_AT), `leaf updatedAt ${leaf.updatedAt}`);
    assert.ok(isBoundedInt(leaf.version, MAX_VERSION), `leaf version ${leaf.version}`);
  }
}

/** A sender that answers every command with the next scripted reply (or a made-up one). */
function scripted(replies: unknown[]): CommandSender {
  return {
    sendCommand: <T>() => Promise.resolve(replies.shift() as T),
  };
}

describe('fuzz: Merkle replies a peer serves', () => {
  it('a version tuple parses to its version or to nothing, never throwing', () => {
    fc.assert(
      fc.property(versionArb, tupleArb, (v, tuple) => {
        assert.deepEqual(parseVersionTuple(v.key, formatVersionTuple(v)), { ...v });
        const parsed = parseVersionTuple('k', tuple);
        if (parsed !== undefined) {
          assert.ok(Number.isInteger(parsed.updatedAt) && parsed.updatedAt >= 0);
          assert.ok(Number.isInteger(parsed.version) && parsed.version >= 0);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('a bucket page yields only bounded leaves of its own keys, everything else refused and counted', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.tuple(fc.constantFrom('0', '17', 'x', '-1', ''), hashReplyArb).map((r) => [...r]),
          fc.anything(),
        ),
        (reply) => {
          const bucket = '0a1b';
          const page = parseBucketPage(bucket, reply);
          checkLeaves(page.leaves);
          assert.ok(/^\d+$/.test(page.cursor), `cursor ${page.cursor}`);
          for (const leaf of page.leaves) assert.equal(bucketOf(leaf.key), bucket);
          assert.equal(page.fields, page.leaves.length + page.refused.length);
          checkLeaves(parseBucketEntries(Array.isArray(reply) ? reply[1] : reply));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('a page of keys of its bucket keeps every valid leaf', () => {
    // Keys of one bucket, found once: the page must keep each of them whose tuple is valid.
    const bucket = bucketOf('fuzz.anchor');
    const keys: string[] = [];
    for (let i = 0; keys.length < 8; i++) if (bucketOf(`f${i}`) === bucket) keys.push(`f${i}`);
    fc.assert(
      fc.property(fc.array(versionArb, { minLength: 1, maxLength: 8 }), (versions) => {
        const mine = versions.map((v, i) => ({ ...v, key: keys[i]! }));
        const page = parseBucketPage(bucket, [
          '0',
          mine.flatMap((v) => [v.key, formatVersionTuple(v)]),
        ]);
        assert.deepEqual(
          [...page.leaves].sort((a, b) => (a.key < b.key ? -1 : 1)),
          [...mine].sort((a, b) => (a.key < b.key ? -1 : 1)),
        );
      }),
      { numRuns: 200 },
    );
  });

  it('a count no server sends (an object that does not convert) reads as 0, never throws', async () => {
    // The counterexample the property below found in CI (seed -168502299): HLEN answered
    // `{ toString: undefined }`, which Number() cannot convert.
    const reader = new MerkleReader(scripted([{ toString: undefined }, {}]));
    assert.deepEqual(await reader.bucketSizes(['0000', 'ffff']), [0, 0]);
  });

  it('node hashes, children, root and sizes read from any reply without throwing', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.anything(), { maxLength: 6 }), async (replies) => {
        const reader = new MerkleReader(scripted([...replies]));
        const hashes = await reader.nodeHashes(['', '0', 'ab']);
        assert.equal(hashes.length, 3);
        for (const h of hashes) assert.equal(typeof h, 'string');
        const children = await reader.childrenMany(['', '1', 'abcd']);
        assert.equal(children.length, 3);
        assert.equal(typeof (await reader.root()), 'string');
        const sizes = await reader.bucketSizes(['0000', 'ffff']);
        for (const n of sizes) assert.ok(Number.isSafeInteger(n) && n >= 0);
        const pages = await reader.scanBuckets([{ bucket: '0000', cursor: '0' }], 10);
        checkLeaves(pages[0]!.leaves);
      }),
      { numRuns: 500 },
    );
  });

  it('dirty and claimed marks name only bucket ids, at most 4,096 marks', () => {
    const markArb = fc.oneof(
      fc.string({ maxLength: 12 }),
      fc.stringMatching(/^[0-9a-f]{4}/),
      fc.anything(),
    );
    const replyArb = fc.oneof(
      fc.array(fc.tuple(fc.string(), markArb)).map((pairs) => pairs.flat()), // RESP2
      fc.array(fc.tuple(fc.string(), markArb)), // RESP3
      fc.anything(),
    );
    fc.assert(
      fc.property(replyArb, replyArb, (dirty, claimed) => {
        const buckets = dirtyBuckets(dirty, claimed);
        if (buckets === undefined) return;
        for (const b of buckets) assert.ok(isBucketPath(b), b);
        assert.ok(buckets.length <= 4096);
      }),
      { numRuns: 1500 },
    );
  });
});

describe('fuzz: the peer-reply corpus (npm run fuzz -- --target peer-reply)', () => {
  it('replays every committed input and past crash', () => {
    const inputs = readCorpus('peer-reply');
    assert.ok(inputs.length > 0, 'the corpus is committed');
    for (const { name, data } of inputs) {
      assert.doesNotThrow(() => checkPeerReply(data), name);
    }
  });

  it('random inputs to the target never fail its checks', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        checkPeerReply(Buffer.from(bytes));
      }),
      { numRuns: 2000 },
    );
  });
});
