import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient, RESP_TYPES } from '@redis/client';
import { StoreError } from '../../src/errors.js';
import { eventToRecord, parseCdcEntry } from '../../src/codec/cdc.js';
import { decompressBounded, hasZstdMagic } from '../../src/codec/zstd.js';
import { compareVersions, type StoredRecord } from '../../src/model/record.js';
import { sha256Hex } from '../../src/store/input.js';
import {
  bucketHash,
  bucketOf,
  childPaths,
  computeRoot,
  DEPTH,
  formatVersionTuple,
  interiorHash,
  ZERO_HASH,
} from '../../src/store/merkle-hash.js';
import { MerkleReader } from '../../src/store/merkle-reader.js';
import { encodeRecordValues } from '../../src/store/record-value.js';
import { SCRIPTS } from '../../src/store/lua-script.js';
import { SyncStore, type SyncStoreOptions } from '../../src/store/sync-store.js';
import { startRedis, type RedisServer } from '../helpers/redis-server.js';
import { withoutFrame, withoutFrames } from '../helpers/records.js';

let server: RedisServer;
let raw: ReturnType<typeof createRawClient>;
const stores: SyncStore[] = [];
let prefixCounter = 0;
const FIXED_NOW = 1_735_776_100_000;

function createRawClient(url: string) {
  return createClient({ url }).withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
}

function nextPrefix(): string {
  prefixCounter += 1;
  return `t${prefixCounter}:`;
}

async function newStore(options: Partial<SyncStoreOptions> = {}): Promise<SyncStore> {
  const store = await SyncStore.connect({
    redisUrl: server.url,
    redisPrefix: options.redisPrefix ?? nextPrefix(),
    nodeId: options.nodeId ?? 'node-a',
    // A fixed "now" shortly after the records' clocks, so their tombstones are within the TTL.
    clock: () => FIXED_NOW,
    ...options,
  });
  stores.push(store);
  return store;
}

function record(key: string, overrides: Partial<StoredRecord> = {}): StoredRecord {
  const content =
    overrides.content ?? Buffer.from(JSON.stringify({ key, n: overrides.version ?? 1 }));
  return {
    key,
    content,
    contentHash: sha256Hex(content),
    contentType: 'json',
    version: 1,
    updatedAt: 1_735_776_000_000,
    origin: 'node-b',
    deleted: false,
    ...overrides,
  };
}

/** The hash of the node at `path` of a tree holding `versions`, computed from scratch. */
function subtreeHash(versions: readonly StoredRecord[], path: string): string {
  const below = versions.filter((v) => bucketOf(v.key).startsWith(path));
  if (below.length === 0) return ZERO_HASH;
  if (path.length === DEPTH) return bucketHash(below);
  return interiorHash(childPaths(path).map((child) => subtreeHash(below, child)));
}

function tombstone(key: string, overrides: Partial<StoredRecord> = {}): StoredRecord {
  return record(key, {
    content: Buffer.alloc(0),
    contentHash: '',
    contentType: 'binary',
    deleted: true,
    ...overrides,
  });
}

type Entry = { id: string; fields: Map<string, Buffer>; order: string[] };

async function xrange(key: string): Promise<Entry[]> {
  const reply = await raw.sendCommand<[Buffer, Buffer[]][]>(['XRANGE', key, '-', '+']);
  return reply.map(([id, flat]) => {
    const fields = new Map<string, Buffer>();
    const order: string[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const name = flat[i]!.toString();
      order.push(name);
      fields.set(name, flat[i + 1]!);
    }
    return { id: id.toString(), fields, order };
  });
}

before(async () => {
  server = await startRedis();
  raw = createRawClient(server.url);
  await raw.connect();
});

after(async () => {
  for (const store of stores) await store.close();
  await raw.close();
  await server.stop();
});

describe('SyncStore local operations', () => {
  it('puts, gets, deletes and reports current hashes', async () => {
    const store = await newStore();
    const { record: written, streamId } = await store.put('uk.nhs.patient.1', { name: 'Alice' });
    assert.match(streamId, /^\d+-\d+$/);
    assert.equal(written.contentType, 'json');
    assert.equal(written.version, 1);
    assert.deepEqual(written.content, Buffer.from('{"name":"Alice"}'));
    assert.deepEqual(await store.get('uk.nhs.patient.1'), written);
    assert.ok(await store.isCurrent('uk.nhs.patient.1', written.contentHash));
    assert.ok(!(await store.isCurrent('uk.nhs.patient.1', 'ff'.repeat(32))));
    assert.ok(!(await store.isCurrent('absent', written.contentHash)));

    const { record: tomb } = await store.delete('uk.nhs.patient.1');
    assert.equal(tomb.deleted, true);
    assert.equal(tomb.version, 2);
    assert.ok(tomb.updatedAt > written.updatedAt);
    assert.equal(await store.get('uk.nhs.patient.1'), undefined);
    assert.deepEqual(await store.getRecord('uk.nhs.patient.1'), tomb);
    assert.ok(await store.isCurrent('uk.nhs.patient.1', ''));

    const { record: again } = await store.put('uk.nhs.patient.1', 'plain text', {
      traceParent: '00-ab-cd-01',
    });
    assert.equal(again.version, 3);
    assert.equal(again.contentType, 'binary');
    assert.equal((await store.get('uk.nhs.patient.1'))?.traceParent, '00-ab-cd-01');
    assert.equal(await raw.zScore(store.keys.tombstones, 'uk.nhs.patient.1'), null);
  });

  it('infers content types and honours an explicit one', async () => {
    const store = await newStore();
    assert.equal((await store.put('a', '{"x":1}')).record.contentType, 'json');
    assert.equal((await store.put('b', Buffer.from([0, 1, 2]))).record.contentType, 'binary');
    assert.equal(
      (await store.put('c', Buffer.from('{}'), { contentType: 'json' })).record.contentType,
      'json',
    );
    assert.equal((await store.put('d', [1, 2])).record.contentType, 'json');
    const binary = Buffer.from([0xff, 0x00, 0xfe]);
    await store.put('e', binary);
    assert.deepEqual((await store.get('e'))?.content, binary);
  });

  it('deleting an absent key writes a replicable tombstone', async () => {
    const store = await newStore();
    const { record: tomb } = await store.delete('never.written');
    assert.equal(tomb.version, 1);
    assert.equal((await store.getRecord('never.written'))?.deleted, true);
    assert.equal(await raw.zCard(store.keys.tombstones), 1);
  });

  it('rejects bad input with a StoreError and writes nothing', async () => {
    const store = await newStore();
    const bad: [string, () => Promise<unknown>][] = [
      ['empty key', () => store.put('', 'x')],
      ['non-string key', () => store.put(42 as unknown as string, 'x')],
      ['lone surrogate', () => store.put('a\ud800', 'x')],
      ['number content', () => store.put('k', 5 as unknown as string)],
      ['undefined content', () => store.put('k', undefined as unknown as string)],
      ['Date content', () => store.put('k', new Date() as unknown as string)],
      ['bad content type', () => store.put('k', 'x', { contentType: 'xml' as 'json' })],
      ['delete empty key', () => store.delete('')],
    ];
    for (const [what, call] of bad) {
      await assert.rejects(call, StoreError, what);
    }
    await assert.rejects(() => store.put('', 'x'), /key must not be empty/);
    await assert.rejects(
      () => store.put('k', 5 as unknown as string),
      /content must be a Buffer, a string, or a plain object/,
    );
    assert.equal(await raw.exists([store.keys.cdc, store.keys.dirty, store.keys.item('k')]), 0);
  });

  it('rejects content above max_item_bytes', async () => {
    const store = await newStore({ store: { maxItemBytes: 10 } });
    await assert.rejects(() => store.put('k', 'x'.repeat(11)), /exceeds max_item_bytes/);
  });

  it('reloads its scripts after SCRIPT FLUSH', async () => {
    const store = await newStore();
    await raw.sendCommand(['SCRIPT', 'FLUSH']);
    await store.put('k', 'v');
    await raw.sendCommand(['SCRIPT', 'FLUSH']);
    assert.equal((await store.apply([record('r')]))[0]?.outcome, 'applied');
  });
});

describe('SyncStore clocks', () => {
  it('a put after seeing a newer remote record wins even when the local clock is behind', async () => {
    let now = 1_000;
    const store = await newStore({ clock: () => now });
    const remote = record('k', { updatedAt: 5_000, version: 7, origin: 'node-z' });
    assert.equal((await store.apply([remote]))[0]?.outcome, 'applied');
    const { record: local } = await store.put('k', { mine: true });
    assert.equal(local.updatedAt, 5_001);
    assert.equal(local.version, 8);
    assert.ok(compareVersions(local, remote) > 0);
    now = 1_500;
    const { record: next } = await store.delete('k');
    assert.deepEqual([next.updatedAt, next.version], [5_002, 9]);
    now = 10_000;
    const { record: later } = await store.put('k', 'x');
    assert.deepEqual([later.updatedAt, later.version], [10_000, 10]);
  });
});

describe('SyncStore CDC stream', () => {
  it('writes PUT and DEL entries in the Rust sync-engine layout', async () => {
    const store = await newStore({ nodeId: 'node "a"' });
    const small = await store.put('uk.nhs.patient.12345', { name: 'Alice' });
    const bigContent = { notes: Array.from({ length: 20 }, () => 'allergy: penicillin') };
    const big = await store.put('uk.nhs.patient.67890', bigContent, {
      traceParent: '00-4bf9-00f0-01',
    });
    const del = await store.delete('uk.nhs.patient.12345');
    const entries = await xrange(store.keys.cdc);
    assert.equal(entries.length, 3);

    const [e1, e2, e3] = entries as [Entry, Entry, Entry];
    assert.equal(e1.id, small.streamId);
    assert.deepEqual(e1.order, ['op', 'key', 'hash', 'data', 'meta']);
    assert.equal(e1.fields.get('op')!.toString(), 'PUT');
    assert.equal(e1.fields.get('key')!.toString(), 'uk.nhs.patient.12345');
    assert.equal(
      e1.fields.get('hash')!.toString(),
      '3cba1e3cf23c8ce24b7e08171d823fbd9a4929aafd9f27516e30699d3a42026a',
    );
    assert.deepEqual(e1.fields.get('data'), Buffer.from('{"name":"Alice"}'));
    assert.equal(
      e1.fields.get('meta')!.toString(),
      `{"content_type":"json","version":1,"updated_at":${small.record.updatedAt},"origin":"node \\"a\\""}`,
    );
    assert.equal(
      (JSON.parse(e1.fields.get('meta')!.toString()) as { origin: string }).origin,
      'node "a"',
    );

    const data = e2.fields.get('data')!;
    assert.ok(hasZstdMagic(data), 'content ≥ 64 bytes is zstd-compressed');
    assert.deepEqual(decompressBounded(data, 1 << 20), big.record.content);
    assert.equal(e2.fields.get('hash')!.toString(), big.record.contentHash);
    assert.equal(
      e2.fields.get('meta')!.toString(),
      `{"content_type":"json","version":1,"updated_at":${big.record.updatedAt},"trace_parent":"00-4bf9-00f0-01","origin":"node \\"a\\""}`,
    );

    assert.deepEqual(e3.order, ['op', 'key', 'meta']);
    assert.equal(e3.fields.get('op')!.toString(), 'DEL');
    assert.equal(
      e3.fields.get('meta')!.toString(),
      `{"version":2,"updated_at":${del.record.updatedAt},"origin":"node \\"a\\""}`,
    );
  });

  it('stores a record as one string, header line then content, the same from put and apply', async () => {
    const store = await newStore({ nodeId: 'node "a" \\ é' });
    const put = (
      await store.put('uk.nhs.patient.1', { name: 'Alice' }, { traceParent: '00-ab-01' })
    ).record;
    const value = await raw.get(store.keys.item(put.key));
    assert.deepEqual(value, encodeRecordValues([put])[0]);
    assert.equal(
      value?.toString(),
      `{"ts":${put.updatedAt},"v":1,"d":0,"h":"${put.contentHash}","o":"node \\"a\\" \\\\ é",` +
        `"t":"json","tp":"00-ab-01"}\n{"name":"Alice"}`,
    );
    const del = (await store.delete(put.key)).record;
    assert.equal(
      (await raw.get(store.keys.item(put.key)))?.toString(),
      `{"ts":${del.updatedAt},"v":2,"d":1,"h":"","o":"node \\"a\\" \\\\ é","t":"binary"}\n`,
    );
    // An applied record is stored byte for byte as a local write of it would be.
    const other = await newStore();
    await other.apply([put]);
    assert.deepEqual(await raw.get(other.keys.item(put.key)), value);
    assert.deepEqual(await other.getRecord(put.key), put);
  });

  it('stores a compressible content as the zstd frame of its CDC entry, flagged z, from put and apply alike', async () => {
    const store = await newStore();
    const doc = { notes: Array.from({ length: 20 }, (_, i) => `observation ${i}: stable`) };
    const { record: put, streamId } = await store.put('uk.nhs.patient.2', doc);
    const content = Buffer.from(JSON.stringify(doc));
    assert.ok(put.frame !== undefined, 'a compressible put carries its frame');
    const [entry] = await xrange(store.keys.cdc);
    assert.equal(entry!.id, streamId);
    const data = entry!.fields.get('data')!;
    assert.ok(hasZstdMagic(data) && data.length < content.length);
    const value = (await raw.get(store.keys.item(put.key)))!;
    const header =
      `{"ts":${put.updatedAt},"v":1,"d":0,"h":"${sha256Hex(content)}","o":"node-a",` +
      `"t":"json","z":1}\n`;
    assert.deepEqual(value, Buffer.concat([Buffer.from(header), data]));
    assert.deepEqual(value, encodeRecordValues([put])[0]);
    // Read back: the content itself (and the frame it is stored as).
    const back = await store.get(put.key);
    assert.deepEqual(back?.content, content);
    assert.deepEqual(back?.frame, data);
    // Replicated from the CDC entry, it is stored byte for byte the same.
    const fields = [...entry!.fields].flatMap(([name, v]) => [Buffer.from(name), v]);
    const replicated = eventToRecord(parseCdcEntry(fields), entry!.id, 'node-a');
    const other = await newStore({ nodeId: 'node-b' });
    assert.equal((await other.apply([replicated]))[0]!.outcome, 'applied');
    assert.deepEqual(await raw.get(other.keys.item(put.key)), value);
    // keepsFrames: a record with a frame is stored from its frame alone; its content is not read.
    assert.equal(other.keepsFrames, true);
    const unread = await newStore({ nodeId: 'node-d' });
    const framedOnly: StoredRecord = Object.defineProperty({ ...replicated }, 'content', {
      get: () => assert.fail('apply read the content of a record with a frame'),
    });
    assert.equal((await unread.apply([framedOnly]))[0]!.outcome, 'applied');
    assert.deepEqual(await raw.get(unread.keys.item(put.key)), value);
    await assert.rejects(
      () => unread.apply([{ ...replicated, frame: 'x' as unknown as Buffer }]),
      /frame must be a Buffer/,
    );
    // A record given without a frame is stored raw, and reads back the same.
    const third = await newStore({ nodeId: 'node-c' });
    await third.apply([withoutFrame(put)]);
    assert.deepEqual(
      await raw.get(third.keys.item(put.key)),
      Buffer.concat([Buffer.from(header.replace(',"z":1', '')), content]),
    );
    assert.deepEqual(withoutFrame(await third.get(put.key)), withoutFrame(put));
    // A stored frame that does not decompress is no record (only a foreign writer makes one).
    await raw.set(
      store.keys.item('bad'),
      Buffer.concat([Buffer.from(header), data.subarray(0, 8)]),
    );
    assert.equal(await store.getRecord('bad'), undefined);
  });

  it('trims the stream to about cdc_maxlen', async () => {
    const store = await newStore({ store: { cdcMaxlen: 10 } });
    for (let i = 0; i < 500; i++) await store.put(`k${i}`, 'v');
    assert.ok((await raw.xLen(store.keys.cdc)) < 500);
  });

  it('does not re-emit applied records unless relay is on, and relays them with their origin', async () => {
    const quiet = await newStore();
    await quiet.apply([record('a'), tombstone('b')]);
    assert.equal(await raw.exists(quiet.keys.cdc), 0);

    const relay = await newStore({ store: { relay: true } });
    const put = record('a', { origin: 'node-z', version: 4, traceParent: '00-t-01' });
    const del = tombstone('b', { origin: 'node-y', version: 2, updatedAt: 1_735_776_000_500 });
    const results = await relay.apply([put, del, put]);
    assert.deepEqual(
      results.map((r) => r.outcome),
      ['applied', 'applied', 'duplicate'],
    );
    const entries = await xrange(relay.keys.cdc);
    assert.equal(entries.length, 2);
    const [p, d] = entries as [Entry, Entry];
    assert.equal(p.fields.get('op')!.toString(), 'PUT');
    assert.deepEqual(p.fields.get('data'), put.content);
    assert.equal(
      p.fields.get('meta')!.toString(),
      `{"content_type":"json","version":4,"updated_at":${put.updatedAt},"trace_parent":"00-t-01","origin":"node-z"}`,
    );
    assert.equal(d.fields.get('op')!.toString(), 'DEL');
    assert.equal(
      d.fields.get('meta')!.toString(),
      `{"version":2,"updated_at":${del.updatedAt},"origin":"node-y"}`,
    );
  });
});

describe('SyncStore atomicity', () => {
  it('a put failing midway leaves no record, leaf or stream entry', async () => {
    const store = await newStore();
    const key = 'uk.atomic.1';
    await raw.set(store.keys.bucket(bucketOf(key)), 'not a hash');
    await assert.rejects(
      () => store.put(key, { a: 1 }),
      (e: unknown) => e instanceof StoreError && /WRONGTYPE/.test(e.message),
    );
    assert.equal(await raw.exists([store.keys.item(key), store.keys.cdc, store.keys.dirty]), 0);

    await raw.del(store.keys.bucket(bucketOf(key)));
    await raw.set(store.keys.cdc, 'not a stream');
    await assert.rejects(() => store.put(key, { a: 1 }), StoreError);
    await assert.rejects(() => store.delete(key), StoreError);
    assert.equal(
      await raw.exists([store.keys.item(key), store.keys.bucket(bucketOf(key)), store.keys.dirty]),
      0,
    );
  });

  it('an apply batch failing midway writes none of its records', async () => {
    const store = await newStore();
    const records = [record('x.1'), record('x.2'), record('x.3')];
    // Only a hand-made key of another type can fail a write the script has not ruled out.
    await raw.set(store.keys.bucket(bucketOf('x.3')), 'oops');
    await assert.rejects(() => store.apply(records), /WRONGTYPE/);
    for (const r of records) {
      assert.equal(await raw.exists(store.keys.item(r.key)), 0);
      assert.equal(await raw.exists(store.keys.bucket(bucketOf(r.key))), r.key === 'x.3' ? 1 : 0);
    }
    assert.equal(await raw.exists(store.keys.dirty), 0);

    // Once the key is mended, the same batch applies whole.
    await raw.del(store.keys.bucket(bucketOf('x.3')));
    assert.ok((await store.apply(records)).every((r) => r.outcome === 'applied'));
    assert.deepEqual(withoutFrames(await store.getRecords(records.map((r) => r.key))), records);
  });

  it('an apply call whose shared keys have another type writes nothing', async () => {
    const store = await newStore();
    await raw.set(store.keys.tombstones, 'not a zset');
    await assert.rejects(() => store.apply([record('y.1'), tombstone('y.2')]), /WRONGTYPE/);
    assert.equal(await raw.exists([store.keys.item('y.1'), store.keys.item('y.2')]), 0);
    assert.equal(await raw.exists(store.keys.dirty), 0);
  });
});

describe('SyncStore apply', () => {
  it('reports applied, duplicate, stale and conflict with the previous version', async () => {
    const store = await newStore();
    const base = record('k', { version: 2, updatedAt: 2_000, origin: 'node-b' });
    assert.deepEqual(await store.apply([base]), [{ key: 'k', outcome: 'applied' }]);
    const previous = {
      key: 'k',
      updatedAt: 2_000,
      version: 2,
      origin: 'node-b',
      deleted: false,
      contentHash: base.contentHash,
    };
    assert.deepEqual(await store.apply([base]), [{ key: 'k', outcome: 'duplicate', previous }]);
    // Older and of lower version: the local record may descend from it.
    const older = record('k', { version: 1, updatedAt: 1_000 });
    assert.equal((await store.apply([older]))[0]?.outcome, 'stale');
    // Loses (earlier clock) but has a higher version: concurrent.
    const concurrent = record('k', { version: 3, updatedAt: 1_500, origin: 'node-c' });
    assert.equal((await store.apply([concurrent]))[0]?.outcome, 'conflict');
    // Same clock, lower origin: concurrent.
    const sameClock = record('k', {
      version: 2,
      updatedAt: 2_000,
      origin: 'node-a',
      content: Buffer.from('other'),
    });
    assert.equal((await store.apply([sameClock]))[0]?.outcome, 'conflict');
    // A newer tombstone wins.
    const del = tombstone('k', { version: 3, updatedAt: 3_000 });
    const [result] = await store.apply([del]);
    assert.equal(result?.outcome, 'applied');
    assert.deepEqual(result?.previous, previous);
    assert.equal((await store.getRecord('k'))?.deleted, true);
    // Indexed by when it arrived here (what acknowledged collection counts), not by its clock.
    assert.equal(await raw.zScore(store.keys.tombstones, 'k'), FIXED_NOW);
    // Resurrected by a later put.
    assert.equal(
      (await store.apply([record('k', { version: 4, updatedAt: 4_000 })]))[0]?.outcome,
      'applied',
    );
    assert.equal(await raw.zScore(store.keys.tombstones, 'k'), null);
  });

  it('resolves a key present several times in one batch by LWW', async () => {
    const store = await newStore();
    const v1 = record('k', { version: 1, updatedAt: 1_000 });
    const v3 = record('k', { version: 3, updatedAt: 3_000 });
    const v2 = record('k', { version: 2, updatedAt: 2_000 });
    const other = record('other');
    const results = await store.apply([v1, other, v3, v2, v3]);
    assert.deepEqual(
      results.map((r) => r.outcome),
      ['applied', 'applied', 'applied', 'stale', 'duplicate'],
    );
    // The record kept is the winner whole (its content too), not the first or last one sent.
    assert.deepEqual(withoutFrames(await store.getRecords(['k', 'other'])), [v3, other]);
    const leaf = (await store.merkleLeaves(bucketOf('k'))).find((l) => l.key === 'k');
    assert.equal(leaf?.version, 3);
  });

  it('spreads large batches over several pipelined script calls, results in order', async () => {
    const store = await newStore({ applyChunkSize: 7 });
    const records = Array.from({ length: 100 }, (_, i) => record(`k.${i}`, { version: i + 1 }));
    const results = await store.apply(records);
    assert.deepEqual(
      results.map((r) => r.key),
      records.map((r) => r.key),
    );
    assert.ok(results.every((r) => r.outcome === 'applied'));
    const back = await store.getRecords(records.map((r) => r.key));
    assert.deepEqual(back, records);
  });

  it('applies one call of 1,500 records (its 3,000 offsets read in two runs)', async () => {
    const store = await newStore({ applyChunkSize: 1_500 });
    const records = Array.from({ length: 1_500 }, (_, i) =>
      record(`run.${i}`, { version: 1 + (i % 3), origin: i % 2 === 0 ? 'nœud-é' : 'node-a' }),
    );
    const results = await store.apply(records);
    assert.ok(results.every((r) => r.outcome === 'applied'));
    assert.deepEqual(await store.getRecords(records.map((r) => r.key)), records);
    assert.deepEqual(
      (await store.apply(records)).map((r) => r.outcome),
      records.map(() => 'duplicate'),
    );
  });

  it('applies awkward keys, origins and binary contents byte for byte, and relays them', async () => {
    const store = await newStore({ store: { relay: true } });
    const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const records = [
      record('quote"back\\slash/slash', { origin: 'node "q" \\ /' }),
      record('ctl\u0000\u0001\n\t\u007f', { content: every, contentType: 'binary' }),
      record('ünïcødé 🚀 键', { origin: 'nœud-é', traceParent: '00-ü-01' }),
      record('empty', { content: Buffer.alloc(0), contentType: 'binary' }),
      tombstone('gone 🚀', { origin: 'o\u0000rigin' }),
      record('big', { content: Buffer.alloc(100_000, 0xab), contentType: 'binary' }),
    ];
    const results = await store.apply(records);
    assert.ok(results.every((r) => r.outcome === 'applied'));
    const back = await store.getRecords(records.map((r) => r.key));
    assert.deepEqual(withoutFrames(back), records);
    // Relayed without a frame, a compressible content is stored as the frame it was relayed in.
    assert.ok(back[5]!.frame !== undefined && back[5]!.frame.length < 1000);
    // The relayed entries parse back to the same records.
    const entries = await xrange(store.keys.cdc);
    assert.equal(entries.length, records.length);
    entries.forEach((entry, i) => {
      const fields = [...entry.fields].flatMap(([name, value]) => [Buffer.from(name), value]);
      const parsed = eventToRecord(parseCdcEntry(fields), entry.id, 'peer');
      assert.deepEqual(withoutFrame(parsed), records[i]);
    });
  });

  it('applies under a multi-byte prefix: records, leaves, tombstones and tree as without one', async () => {
    // The apply script takes each record's key and bucket id from the ends of its key names.
    const prefix = `ñ🚀${nextPrefix()}`;
    const store = await newStore({ redisPrefix: prefix });
    const records = [
      record('ünïcødé 🚀 键'),
      record('plain'),
      tombstone('gone 🚀'),
      record('ctl\u0000\n', { content: Buffer.from([0, 255]), contentType: 'binary' }),
    ];
    const results = await store.apply(records);
    assert.deepEqual(
      results.map((r) => r.outcome),
      ['applied', 'applied', 'applied', 'applied'],
    );
    assert.deepEqual(withoutFrames(await store.getRecords(records.map((r) => r.key))), records);
    const leaf = await raw.hGet(store.keys.bucket(bucketOf('ünïcødé 🚀 键')), 'ünïcødé 🚀 键');
    assert.equal(String(leaf), formatVersionTuple(records[0]!));
    assert.deepEqual((await raw.zRange(store.keys.tombstones, 0, -1)).map(String), ['gone 🚀']);
    await store.refreshMerkle();
    assert.equal(await store.merkleRoot(), computeRoot(records));
    // Applied again: every record is a duplicate, found under the same names.
    assert.ok((await store.apply(records)).every((r) => r.outcome === 'duplicate'));
  });

  it('splits calls by content size too (4 MiB), one record at least per call', async () => {
    const store = await newStore();
    const big = (i: number, mib: number): StoredRecord =>
      record(`big.${i}`, { content: Buffer.alloc(mib * 1024 * 1024, i), contentType: 'binary' });
    const records = [big(1, 1.5), big(2, 1.5), big(3, 1.5), big(4, 5), big(5, 0.5)];
    const results = await store.apply(records);
    assert.ok(results.every((r) => r.outcome === 'applied'));
    assert.deepEqual(await store.getRecords(records.map((r) => r.key)), records);
  });

  it('rejects malformed records', async () => {
    const store = await newStore();
    await assert.rejects(
      () => store.apply([record('k', { contentHash: 'nothex' })]),
      /contentHash/,
    );
    await assert.rejects(() => store.apply([record('k', { version: 1.5 })]), /version/);
    await assert.rejects(() => store.apply([record('', {})]), /key must not be empty/);
    // No utf-8 form: such a record could not be stored as given (nor parsed by the script).
    await assert.rejects(() => store.apply([record('k', { origin: 'node-\ud800' })]), /origin/);
    await assert.rejects(
      () => store.apply([record('k', { traceParent: '00-\udc00-01' })]),
      /traceParent/,
    );
  });

  it('logs conflicts when the conflict log is on', async () => {
    const store = await newStore({ store: { conflictLog: true } });
    await store.apply([record('k', { version: 1, updatedAt: 2_000, origin: 'node-b' })]);
    await store.apply([record('k', { version: 1, updatedAt: 1_000, origin: 'node-c' })]);
    await store.apply([record('k', { version: 1, updatedAt: 3_000, origin: 'node-d' })]);
    const entries = await xrange(store.keys.conflicts);
    assert.equal(entries.length, 2);
    const [lost, won] = entries as [Entry, Entry];
    assert.deepEqual(lost.order, ['key', 'local', 'incoming', 'winner']);
    assert.equal(lost.fields.get('winner')!.toString(), 'local');
    assert.match(lost.fields.get('local')!.toString(), /^2000\|1\|0\|[0-9a-f]{64}\|node-b$/);
    assert.match(lost.fields.get('incoming')!.toString(), /^1000\|1\|0\|[0-9a-f]{64}\|node-c$/);
    assert.equal(won.fields.get('winner')!.toString(), 'incoming');
  });
});

describe('SyncStore tombstone purge', () => {
  it('purges tombstones past the TTL and does not let a peer resurrect them', async () => {
    const ttl = 10_000;
    let now = 1_000_000;
    const store = await newStore({
      clock: () => now,
      store: { tombstoneTtlMs: ttl, maxClockSkewMs: 0 },
    });
    await store.put('gone', 'v');
    await store.delete('gone');
    await store.delete('kept.alive');
    await store.put('kept.alive', 'back');
    await store.put('live', 'v');
    const liveOnly = await store.merkleLeaves(bucketOf('live'));

    assert.deepEqual(await store.purgeTombstones(now + ttl - 1), { purged: 0 });
    assert.equal((await store.getRecord('gone'))?.deleted, true);
    now += ttl + 10;
    assert.deepEqual(await store.purgeTombstones(), { purged: 1 });
    assert.equal(await store.getRecord('gone'), undefined);
    assert.equal(
      (await store.merkleLeaves(bucketOf('gone'))).find((l) => l.key === 'gone'),
      undefined,
    );
    assert.equal(await raw.zCard(store.keys.tombstones), 0);
    assert.equal((await store.get('kept.alive'))?.content.toString(), 'back');
    assert.deepEqual(await store.merkleLeaves(bucketOf('live')), liveOnly);
    const remaining = await store.getRecords(['kept.alive', 'live']);
    assert.equal(await store.merkleRoot(), computeRoot(remaining));

    // A peer that has not purged yet sends the old tombstone: not resurrected.
    const oldTomb = tombstone('gone', { updatedAt: 1_000_001, version: 2, origin: 'node-a' });
    assert.equal((await store.apply([oldTomb]))[0]?.outcome, 'stale');
    assert.equal(await store.getRecord('gone'), undefined);
    // Nor the old value: a live record of a key absent here, dated before the purge horizon, is
    // what a purged delete looks like; it is refused unless the peer vouches for it (acceptOld).
    assert.equal((await raw.get(store.keys.gcHorizon))?.toString(), String(1_000_000 + 10));
    const oldValue = record('gone', { updatedAt: 1_000_000, version: 1, origin: 'node-a' });
    assert.equal((await store.apply([oldValue]))[0]?.outcome, 'purged');
    assert.equal(await store.getRecord('gone'), undefined);
    assert.equal((await store.apply([oldValue], { acceptOld: true }))[0]?.outcome, 'applied');
    await store.delete('gone');
    // A recent tombstone of an absent key still applies.
    assert.equal(
      (await store.apply([tombstone('fresh', { updatedAt: now - 5 })]))[0]?.outcome,
      'applied',
    );
  });

  it('purges only before the horizon it is given, and indexes a tombstone by its arrival', async () => {
    const ttl = 1_000;
    let now = 1_000_000;
    const store = await newStore({ clock: () => now, store: { tombstoneTtlMs: ttl } });
    await store.delete('early');
    now += 500;
    // An old tombstone arriving late is kept as long as one written now would be.
    await store.apply([tombstone('late', { updatedAt: 10 })]);
    now += 2 * ttl;
    assert.deepEqual(await store.purgeTombstones(now, 1_000_000), { purged: 0 });
    assert.equal(await raw.get(store.keys.gcHorizon), null);
    assert.deepEqual(await store.purgeTombstones(now, 1_000_001), { purged: 1 });
    assert.equal(await store.getRecord('early'), undefined);
    assert.equal((await store.getRecord('late'))?.deleted, true);
    assert.equal((await raw.get(store.keys.gcHorizon))?.toString(), '1000001');
    assert.deepEqual(await store.purgeTombstones(), { purged: 1 });
    assert.equal(await store.getRecord('late'), undefined);
  });

  it('purges in bounded batches until done', async () => {
    let now = 1_000_000;
    const store = await newStore({ clock: () => now, store: { tombstoneTtlMs: 1 } });
    await store.apply(
      Array.from({ length: 1_200 }, (_, i) => tombstone(`t.${i}`, { updatedAt: now - 1 })),
    );
    now += 10;
    assert.deepEqual(await store.purgeTombstones(), { purged: 1_200 });
    assert.equal(await store.merkleRoot(), ZERO_HASH);
  });
});

describe('SyncStore backpressure', () => {
  it('refuses writes above max_memory_bytes and accepts them otherwise', async () => {
    assert.equal(
      await (await newStore({ store: { maxMemoryBytes: 1 } })).shouldAcceptWrites(),
      false,
    );
    assert.equal(await (await newStore()).shouldAcceptWrites(), true);
    assert.equal(
      await (await newStore({ store: { maxMemoryBytes: 1e12 } })).shouldAcceptWrites(),
      true,
    );
  });
});

describe('SyncStore Merkle tree', () => {
  it('an empty store has a zero root and no children', async () => {
    const store = await newStore();
    assert.equal(await store.merkleRoot(), ZERO_HASH);
    assert.deepEqual(await store.merkleChildren(''), []);
    assert.deepEqual(await store.merkleLeaves('0000'), []);
    await assert.rejects(() => store.merkleChildren('xyz'), StoreError);
    await assert.rejects(() => store.merkleLeaves('abc'), StoreError);
  });

  it('two stores given the same records in different orders have the same root', async () => {
    const a = await newStore();
    const b = await newStore();
    const records = Array.from({ length: 500 }, (_, i) =>
      i % 7 === 0 ? tombstone(`uk.k.${i}`, { version: 2 }) : record(`uk.k.${i}`),
    );
    await a.apply(records);
    for (let i = records.length - 1; i >= 0; i -= 50) {
      await b.apply(records.slice(Math.max(0, i - 49), i + 1).reverse());
      await b.refreshMerkle(); // interleave refreshes with writes
    }
    const rootA = await a.merkleRoot();
    assert.equal(rootA, await b.merkleRoot());
    assert.equal(rootA, computeRoot(records));
  });

  it('recomputes only what changed: 100k keys, then 1,000 changed', async () => {
    const store = await newStore();
    const n = 100_000;
    const batch = 1_000;
    const calls: Promise<unknown>[] = [];
    for (let start = 0; start < n; start += batch) {
      const records = Array.from({ length: batch }, (_, i) =>
        record(`uk.nhs.patient.${start + i}`, { content: Buffer.from(`{"i":${start + i}}`) }),
      );
      calls.push(store.apply(records));
      if (calls.length >= 8) await Promise.all(calls.splice(0));
    }
    await Promise.all(calls);
    const first = await store.refreshMerkle();
    assert.equal(first.keys, n);
    assert.equal(await raw.exists(store.keys.dirty), 0);
    const root = await store.merkleRoot();

    const changed = Array.from({ length: 1_000 }, (_, i) =>
      record(`uk.nhs.patient.${i * 97}`, { version: 2, updatedAt: 1_735_776_000_001 }),
    );
    await store.apply(changed);
    const second = await store.refreshMerkle();
    assert.equal(second.keys, 1_000);
    assert.ok(
      second.buckets <= 1_000 && second.buckets > 900,
      `refreshed ${second.buckets} buckets`,
    );
    assert.equal(second.rounds, 1);
    const newRoot = await store.merkleRoot();
    assert.notEqual(newRoot, root);

    // The incremental root equals a from-scratch computation over every leaf.
    const buckets = allBuckets();
    const leaves = [];
    for (let i = 0; i < buckets.length; i += 4_096) {
      leaves.push(...(await store.reader.leavesMany(buckets.slice(i, i + 4_096))).flat());
    }
    assert.equal(leaves.length, n);
    assert.equal(newRoot, computeRoot(leaves));
  });

  it('drill-down by children and leaves finds exactly the one differing key', async () => {
    const a = await newStore();
    const b = await newStore();
    const records = Array.from({ length: 3_000 }, (_, i) => record(`uk.drill.${i}`));
    await a.apply(records);
    await b.apply(records);
    await b.apply([record('uk.drill.1234', { version: 2, updatedAt: 1_735_776_000_009 })]);
    const rootA = await a.merkleRoot();
    const rootB = await b.merkleRoot();
    assert.notEqual(rootA, rootB);

    const differing: string[] = [];
    const walk = async (path: string): Promise<void> => {
      if (path.length === 4) {
        const [la, lb] = await Promise.all([a.merkleLeaves(path), b.merkleLeaves(path)]);
        const byKey = new Map(la.map((l) => [l.key, l]));
        for (const leaf of lb) {
          const other = byKey.get(leaf.key);
          if (other === undefined || compareVersions(other, leaf) !== 0) differing.push(leaf.key);
        }
        return;
      }
      const [ca, cb] = await Promise.all([a.merkleChildren(path), b.merkleChildren(path)]);
      assert.ok(cb.length <= 16);
      const hashes = new Map(ca.map((c) => [c.path, c.hash]));
      for (const child of cb) if (hashes.get(child.path) !== child.hash) await walk(child.path);
    };
    await walk('');
    assert.deepEqual(differing, ['uk.drill.1234']);
  });

  it('a refresh that died between claim and commit is redone, keys written since included', async () => {
    const store = await newStore();
    const v1 = Array.from({ length: 200 }, (_, i) => record(`c.${i}`));
    await store.apply(v1);
    await store.refreshMerkle();
    const v2 = v1.map((r) => record(r.key, { version: 2, updatedAt: r.updatedAt + 1 }));
    await store.apply(v2);
    // A refresh that claimed every dirty key (v1 → v2) and died before committing.
    const [claimed] = await SCRIPTS.claim.run<[unknown[], unknown, unknown]>(
      raw,
      [store.keys.dirty, store.keys.claimed, store.keys.gen],
      ['1000', store.keys.bucket(''), '4'],
    );
    assert.equal(claimed.length, 200 * 4);
    assert.equal(await raw.exists(store.keys.dirty), 0);
    assert.equal(await raw.hLen(store.keys.claimed), 200);
    // c.0 is written again after that claim: its new mark records v2, but the tree counts v1.
    const v3 = record('c.0', { version: 3, updatedAt: v1[0]!.updatedAt + 2 });
    await store.apply([v3]);
    const mark = (await raw.hGet(store.keys.dirty, 'c.0'))!.toString();
    assert.equal(mark, `${bucketOf('c.0')}${v2[0]!.updatedAt}|2|0|${v2[0]!.contentHash}|node-b`);

    assert.equal(await store.merkleRoot(), computeRoot([v3, ...v2.slice(1)]));
    assert.equal(await raw.exists([store.keys.dirty, store.keys.claimed, store.keys.lock]), 0);
  });

  it('a commit is refused once another refresh has claimed, and nothing is lost', async () => {
    const store = await newStore();
    const v1 = Array.from({ length: 50 }, (_, i) => record(`r.${i}`));
    await store.apply(v1);
    const claim = () =>
      SCRIPTS.claim.run<[unknown[], Buffer, Buffer]>(
        raw,
        [store.keys.dirty, store.keys.claimed, store.keys.gen],
        ['1000', store.keys.bucket(''), '4'],
      );
    const [, , first] = await claim(); // a slow refresher...
    const [again, , second] = await claim(); // ...overtaken by another, which takes its keys back
    assert.equal(again.length, 50 * 4);
    const refused = await SCRIPTS.commit.run<[Buffer, number]>(
      raw,
      [store.keys.nodes, store.keys.claimed, store.keys.gen],
      [first.toString(), 'root', 'ab'.repeat(32)],
    );
    assert.equal(refused[1], 0);
    assert.equal(await raw.hLen(store.keys.claimed), 50, 'the newer claim is untouched');
    assert.equal(await raw.exists(store.keys.nodes), 0, 'nothing written');
    assert.notEqual(second.toString(), first.toString());
    // The newer refresher dies too; the next refresh still settles everything.
    assert.equal(await store.merkleRoot(), computeRoot(v1));
    assert.equal(await raw.exists([store.keys.dirty, store.keys.claimed]), 0);
  });

  it('a key rewritten while refreshes run is counted once, at its final version', async () => {
    const prefix = nextPrefix();
    const a = await newStore({ redisPrefix: prefix });
    const b = await newStore({ redisPrefix: prefix, nodeId: 'node-b' });
    const latest = new Map<string, StoredRecord>();
    const work: Promise<unknown>[] = [];
    for (let version = 1; version <= 30; version++) {
      const batch = Array.from({ length: 40 }, (_, i) =>
        record(`hot.${(i * 7 + version) % 60}`, {
          version,
          updatedAt: 1_735_776_000_000 + version,
        }),
      );
      for (const r of batch) latest.set(r.key, r);
      work.push(a.apply(batch), a.refreshMerkle(), b.refreshMerkle());
    }
    await Promise.all(work);
    assert.equal(await a.merkleRoot(), computeRoot([...latest.values()]));
    assert.equal(await b.merkleRoot(), await a.merkleRoot());
    assert.equal(await raw.exists(a.keys.dirty), 0);
  });

  it('the apply script refuses an arena that does not end where its offsets say', async () => {
    const store = await newStore();
    const put = record('arena.1');
    const keys = store.keys;
    const value = encodeRecordValues([put])[0]!;
    const tuple = Buffer.from(formatVersionTuple(put));
    // The arena holds the value, then the tuple; `ends` says where each ends.
    const args = (tupleEnd: number): (string | Buffer)[] => {
      const ends = Buffer.alloc(8);
      ends.writeUInt32BE(value.length, 0);
      ends.writeUInt32BE(tupleEnd, 4);
      return [
        ...['0', '0', '0', '1000', '1000', '', String(keys.itemPrefixBytes)],
        ...[String(keys.bucketPrefixBytes), '0', Buffer.concat([value, tuple]), ends, '0', '0'],
        ...['1000', 'apply'],
      ];
    };
    const redisKeys = [keys.dirty, keys.tombstones, keys.cdc, keys.conflicts, keys.gcHorizon];
    redisKeys.push(keys.changes, keys.changesSeq);
    redisKeys.push(keys.item(put.key), keys.bucket(bucketOf(put.key)));
    const full = value.length + tuple.length;
    await assert.rejects(
      SCRIPTS.apply.run(raw, redisKeys, args(full + 1)),
      /ERR apply: the arena's pieces end at byte \d+ of \d+/,
    );
    assert.equal(await raw.exists([keys.item(put.key), keys.dirty]), 0);
    // The same call with the right offsets applies the record: value and leaf byte for byte.
    assert.deepEqual(await SCRIPTS.apply.run(raw, redisKeys, args(full)), [1]);
    assert.deepEqual(await raw.get(keys.item(put.key)), value);
    assert.equal(
      (await raw.hGet(keys.bucket(bucketOf(put.key)), put.key))?.toString(),
      formatVersionTuple(put),
    );
  });

  it('a refresh in many small rounds builds the tree a from-scratch computation does', async () => {
    // Rounds of 64 keys: each reuses the node hashes the previous ones cached and committed.
    const prefix = nextPrefix();
    const store = await newStore({ redisPrefix: prefix, merkle: { claimBatch: 64 } });
    const first = Array.from({ length: 1_500 }, (_, i) => record(`rounds.${i}`));
    await store.apply(first);
    const stats = await store.refreshMerkle();
    assert.equal(stats.keys, 1_500);
    assert.ok(stats.rounds >= 24, `${stats.rounds} rounds`);
    assert.equal(await store.merkleRoot(), computeRoot(first));
    // Rewrites and deletes move leaves both ways. They are settled by another client of the store,
    // which starts with nothing cached and must read what it does not recompute.
    const other = await newStore({ redisPrefix: prefix, merkle: { claimBatch: 64 } });
    const rewritten = first.slice(0, 400).map((r) => record(r.key, { version: 2 }));
    const deleted = first.slice(400, 700).map((r) => tombstone(r.key, { version: 2 }));
    await other.apply([...rewritten, ...deleted]);
    await other.refreshMerkle();
    const now = [...rewritten, ...deleted, ...first.slice(700)];
    assert.equal(await store.merkleRoot(), computeRoot(now));
    for (const path of ['', '0', 'a', '7f', 'c3e']) {
      const children = await store.merkleChildren(path);
      const expected = childPaths(path)
        .map((child) => ({ path: child, hash: subtreeHash(now, child) }))
        .filter((node) => node.hash !== ZERO_HASH);
      assert.deepEqual(
        children.map(({ path: p, hash }) => ({ path: p, hash })),
        expected,
        `children of '${path}'`,
      );
    }
  });

  it('a refresh with a time budget settles part of the dirty keys, and the next one the rest', async () => {
    const store = await newStore({ merkle: { claimBatch: 64 } });
    const records = Array.from({ length: 1_000 }, (_, i) => record(`budget.${i}`));
    await store.apply(records);
    // A spent budget still runs one round, then stops with the rest left dirty.
    const partial = await store.refreshMerkle({ budgetMs: 0 });
    assert.deepEqual(
      { keys: partial.keys, rounds: partial.rounds, complete: partial.complete },
      { keys: 64, rounds: 1, complete: false },
    );
    assert.equal(await raw.hLen(store.keys.dirty), 1_000 - 64);
    const rest = await store.refreshMerkle();
    assert.equal(rest.keys, 1_000 - 64);
    assert.equal(rest.complete, true);
    assert.equal(await store.merkleRoot(), computeRoot(records));
  });

  it('concurrent refreshes from two clients of one store agree', async () => {
    const prefix = nextPrefix();
    const a = await newStore({ redisPrefix: prefix });
    const b = await newStore({ redisPrefix: prefix, nodeId: 'node-b' });
    const records = Array.from({ length: 2_000 }, (_, i) => record(`cc.${i}`));
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < records.length; i += 100) {
      writes.push(a.apply(records.slice(i, i + 100)), a.refreshMerkle(), b.refreshMerkle());
    }
    await Promise.all(writes);
    const [ra, rb] = await Promise.all([a.merkleRoot(), b.merkleRoot()]);
    assert.equal(ra, computeRoot(records));
    assert.equal(rb, ra);
  });

  it('a refresher does not trust its cached hashes after another process refreshed', async () => {
    const prefix = nextPrefix();
    const a = await newStore({ redisPrefix: prefix });
    const b = await newStore({ redisPrefix: prefix, nodeId: 'node-b' });
    const records: StoredRecord[] = [];
    for (let round = 0; round < 6; round++) {
      const batch = Array.from({ length: 300 }, (_, i) =>
        record(`gen.${(round * 131 + i) % 700}`, { version: round + 1 }),
      );
      await (round % 2 === 0 ? a : b).apply(batch);
      records.push(...batch);
      await (round % 3 === 0 ? a : b).refreshMerkle();
    }
    const latest = new Map(records.map((r) => [r.key, r]));
    assert.equal(await a.merkleRoot(), computeRoot([...latest.values()]));
    assert.equal(await b.merkleRoot(), await a.merkleRoot());
  });

  it('MerkleReader reads a store through a read-only ACL user', async () => {
    const store = await newStore();
    await store.apply([record('ro.1'), tombstone('ro.2')]);
    const root = await store.merkleRoot();
    await raw.sendCommand([
      'ACL',
      'SETUSER',
      'reader',
      'on',
      '>secret',
      '~*',
      '-@all',
      '+@read',
      '+@connection',
    ]);
    const client = createClient({ url: server.url, username: 'reader', password: 'secret' });
    client.on('error', () => undefined);
    await client.connect();
    try {
      const reader = new MerkleReader(client, store.keys.prefix);
      assert.equal(await reader.root(), root);
      const top = await reader.children('');
      assert.ok(top.length >= 1);
      const bucket = bucketOf('ro.1');
      assert.deepEqual(
        (await reader.leaves(bucket)).map((l) => l.key),
        ['ro.1'],
      );
      assert.deepEqual(
        await reader.getRecords(['ro.1', 'ro.2', 'absent']),
        await store.getRecords(['ro.1', 'ro.2']),
      );
      await assert.rejects(() => client.set('x', 'y'));
    } finally {
      await client.close();
    }
  });
});

function allBuckets(): string[] {
  return Array.from({ length: 65_536 }, (_, i) => i.toString(16).padStart(4, '0'));
}
