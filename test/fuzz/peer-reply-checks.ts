/**
 * The checks of the `peer-reply` fuzz target, shared with test/property/fuzz-records.test.ts
 * (which replays the committed corpus): see test/fuzz/targets/peer-reply.ts for the input format.
 */
import { createHash } from 'node:crypto';
import { isBoundedInt, MAX_UPDATED_AT, MAX_VERSION } from '../../src/codec/bounds.js';
import { dirtyBuckets } from '../../src/engine/merkle-repair.js';
import type { RecordVersion, StoredRecord } from '../../src/model/record.js';
import { bucketOf, isBucketPath } from '../../src/store/merkle-hash.js';
import { parseBucketEntries, parseBucketPage } from '../../src/store/merkle-reader.js';
import { parseRecordValue, verifyRecordValue } from '../../src/store/record-value.js';
import { decodeFuzzInput, encodeFuzzInput } from './inputs.js';
import { encodeData } from '../../src/codec/zstd.js';

export const PEER_REPLY_MAX_ITEM_BYTES = 64 * 1024;
const BUCKET = '0a1b';

function fail(what: string): never {
  throw new Error(`peer-reply: ${what}`);
}

function checkBounded(v: StoredRecord | RecordVersion): void {
  if (!isBoundedInt(v.updatedAt, MAX_UPDATED_AT)) fail(`updatedAt ${String(v.updatedAt)}`);
  if (!isBoundedInt(v.version, MAX_VERSION)) fail(`version ${String(v.version)}`);
}

/** Runs the reader `data[0]` picks on the rest; throws on anything a peer must not achieve. */
export function checkPeerReply(data: Buffer): void {
  if (data.length === 0) return;
  const input = data.subarray(1);
  if (data[0]! % 2 === 0) {
    const parsed = parseRecordValue('k', input, PEER_REPLY_MAX_ITEM_BYTES);
    if (parsed !== undefined) {
      checkBounded(parsed);
      if (parsed.frame !== undefined && parsed.content.length > PEER_REPLY_MAX_ITEM_BYTES) {
        fail('inflated past max_item_bytes');
      }
    }
    const verdict = verifyRecordValue('k', input, PEER_REPLY_MAX_ITEM_BYTES);
    if ('record' in verdict && !verdict.record.deleted) {
      const hash = createHash('sha256').update(verdict.record.content).digest('hex');
      if (hash !== verdict.record.contentHash) fail('accepted a body that does not hash');
    }
    return;
  }
  const fields = decodeFuzzInput(input).map((b) => b.toString('utf8'));
  const page = parseBucketPage(BUCKET, ['0', fields]);
  for (const leaf of page.leaves) {
    checkBounded(leaf);
    if (bucketOf(leaf.key) !== BUCKET) fail(`leaf ${leaf.key} not in its bucket`);
  }
  if (page.fields !== page.leaves.length + page.refused.length) fail('fields miscounted');
  for (const leaf of parseBucketEntries(fields)) checkBounded(leaf);
  for (const b of dirtyBuckets(fields) ?? []) if (!isBucketPath(b)) fail(`dirty bucket ${b}`);
}

/** Seed inputs: valid records (raw, compressed, a tombstone) and a bucket page of valid leaves. */
export function seedPeerReplies(): Buffer[] {
  const content = Buffer.from('{"hello":"world"}'.repeat(8));
  const hash = createHash('sha256').update(content).digest('hex');
  const frame = encodeData(content).data;
  const records = [
    Buffer.concat([
      Buffer.from(`{"ts":1735776000000,"v":1,"d":0,"h":"${hash}","o":"node-a","t":"json"}\n`),
      content,
    ]),
    Buffer.concat([
      Buffer.from(`{"ts":1735776000000,"v":2,"d":0,"h":"${hash}","o":"node-a","t":"json","z":1}\n`),
      frame,
    ]),
    Buffer.from('{"ts":1735776000500,"v":3,"d":1,"h":"","o":"node-b","t":"binary"}\n'),
  ];
  const keys: string[] = [];
  for (let i = 0; keys.length < 3; i++) if (bucketOf(`seed${i}`) === BUCKET) keys.push(`seed${i}`);
  const page = keys.flatMap((k, i) => [k, `${1735776000000 + i}|${i + 1}|${i % 2}|${hash}|node-a`]);
  return [
    ...records.map((r) => Buffer.concat([Buffer.from([0]), r])),
    Buffer.concat([Buffer.from([1]), encodeFuzzInput(page.map((f) => Buffer.from(f)))]),
  ];
}
