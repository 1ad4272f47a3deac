/**
 * `putMany` / `deleteMany` (issue 23) on a real Redis: each entry written exactly as a single
 * `put` / `delete` writes it (record, leaf, dirty mark, tombstone index and CDC entry, byte for
 * byte), in a few script calls, with a result per entry: written, refused alone (invalid input, a
 * clock the store will not build on), or not durable.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient, RESP_TYPES } from '@redis/client';
import { MAX_VERSION } from '../../src/codec/bounds.js';
import { NotDurableError, StoreError, WriteRefusedError } from '../../src/errors.js';
import type { StoredRecord } from '../../src/model/record.js';
import { sha256Hex } from '../../src/store/input.js';
import { WRITE_CHUNK_ENTRIES } from '../../src/store/local-write.js';
import { bucketOf } from '../../src/store/merkle-hash.js';
import { SyncStore, type PutEntry, type SyncStoreOptions } from '../../src/store/sync-store.js';
import { snapshot, startMesh } from '../helpers/mesh.js';
import { eventually, startRedis, type RedisServer } from '../helpers/redis-server.js';

const NOW = 1_735_776_100_000;
let server: RedisServer;
let raw: ReturnType<typeof createRawClient>;
let prefixes = 0;
const stores: SyncStore[] = [];

function createRawClient(url: string) {
  return createClient({ url }).withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
}

async function newStore(options: Partial<SyncStoreOptions> = {}): Promise<SyncStore> {
  prefixes += 1;
  const store = await SyncStore.connect({
    redisUrl: server.url,
    redisPrefix: `b${prefixes}:`,
    nodeId: 'node-a',
    clock: () => NOW,
    ...options,
  });
  stores.push(store);
  return store;
}

/** Everything a store keeps in Redis for `keys`, the CDC stream without its ids (times differ). */
async function dump(store: SyncStore, keys: readonly string[]): Promise<unknown> {
  const cdc = await raw.sendCommand<[Buffer, Buffer[]][]>(['XRANGE', store.keys.cdc, '-', '+']);
  return {
    items: await Promise.all(keys.map((k) => raw.get(store.keys.item(k)))),
    leaves: await Promise.all(keys.map((k) => raw.hGet(store.keys.bucket(bucketOf(k)), k))),
    dirty: await raw.hGetAll(store.keys.dirty),
    tombstones: await raw.zRangeWithScores(store.keys.tombstones, 0, -1),
    cdc: cdc.map(([, fields]) => fields.map((f) => f.toString('hex'))),
  };
}

/** EVALSHA and EVAL calls the server has run so far. */
async function scriptCalls(): Promise<number> {
  const info = String(await raw.sendCommand<Buffer>(['INFO', 'commandstats']));
  let calls = 0;
  for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)) calls += Number(m[1]);
  return calls;
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

describe('putMany and deleteMany', () => {
  it('write exactly what put and delete write, byte for byte, the CDC stream included', async () => {
    const one = await newStore();
    const many = await newStore();
    const big = 'compressible '.repeat(200);
    const rounds: PutEntry[][] = [
      [
        { key: 'uk.a', content: { n: 1 } },
        { key: 'uk.b', content: Buffer.from([0, 1, 2, 255]) },
        {
          key: 'uk.c',
          content: big,
          traceParent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        },
        { key: 'ünï\u{1F600}.d', content: 'plain text', contentType: 'binary' },
      ],
      [
        { key: 'uk.a', content: { n: 2 } },
        { key: 'uk.c', content: big + '!' },
      ],
    ];
    for (const entries of rounds) {
      for (const e of entries) await one.put(e.key, e.content, e);
      const results = await many.putMany(entries);
      assert.ok(results.every((r) => r.ok));
    }
    await one.delete('uk.b');
    await one.delete('uk.never');
    const deleted = await many.deleteMany(['uk.b', 'uk.never']);
    assert.deepEqual(
      deleted.map((r) => r.ok && r.written.record.version),
      [2, 1],
    );
    // A put over a tombstone takes it out of the index, in a batch as alone.
    await one.put('uk.b', 'back');
    await many.putMany([{ key: 'uk.b', content: 'back' }]);
    const keys = ['uk.a', 'uk.b', 'uk.c', 'ünï\u{1F600}.d', 'uk.never'];
    assert.deepEqual(await dump(many, keys), await dump(one, keys));
    assert.deepEqual(await many.getRecords(keys), await one.getRecords(keys));
    assert.equal(await many.merkleRoot(), await one.merkleRoot());
  });

  it('return each record with its clock and stream id, in input order; a repeated key is written in order', async () => {
    const store = await newStore();
    const results = await store.putMany([
      { key: 'k1', content: { v: 1 } },
      { key: 'k2', content: { v: 1 } },
      { key: 'k1', content: { v: 2 } },
    ]);
    assert.deepEqual(
      results.map((r) => [r.key, r.ok && r.written.record.version]),
      [
        ['k1', 1],
        ['k2', 1],
        ['k1', 2],
      ],
    );
    const written = results.map((r) => (r.ok ? r.written : assert.fail('not written')));
    assert.equal(written[0]!.record.updatedAt, NOW);
    assert.equal(written[2]!.record.updatedAt, NOW + 1);
    assert.equal((await store.get('k1'))?.content.toString(), '{"v":2}');
    // The tree counts k1 once, from before the batch (no version): one dirty mark each.
    assert.deepEqual(Object.keys(await raw.hGetAll(store.keys.dirty)).sort(), ['k1', 'k2']);
    const ids = (
      await raw.sendCommand<[Buffer, Buffer[]][]>(['XRANGE', store.keys.cdc, '-', '+'])
    ).map(([id]) => id.toString());
    assert.deepEqual(
      written.map((w) => w.streamId),
      ids,
    );
  });

  it('spread a large batch over several calls of at most 500 entries, results in order', async () => {
    const store = await newStore();
    const entries = Array.from({ length: 2 * WRITE_CHUNK_ENTRIES + 7 }, (_, i) => ({
      key: `many.${i}`,
      content: { i },
    }));
    const before = await scriptCalls();
    const results = await store.putMany(entries);
    // 1,007 entries: three calls (one more, the first time, when the script was not cached).
    assert.ok((await scriptCalls()) - before <= 4, `${(await scriptCalls()) - before} calls`);
    assert.equal(results.length, entries.length);
    results.forEach((r, i) => {
      assert.ok(r.ok);
      assert.equal(r.key, `many.${i}`);
    });
    assert.equal(await raw.xLen(store.keys.cdc), entries.length);
    assert.equal((await store.get('many.1006'))?.content.toString(), '{"i":1006}');
  });

  it('refuse an invalid entry alone, and write the others', async () => {
    const store = await newStore({ store: { maxItemBytes: 100 } });
    const results = await store.putMany([
      { key: 'good.1', content: 'one' },
      { key: '', content: 'empty key' },
      { key: 'big', content: Buffer.alloc(101) },
      { key: 'bad\ud800', content: 'lone surrogate' },
      { key: 'odd', content: 42 as unknown as string },
      null as unknown as PutEntry,
      { key: 'good.2', content: 'two' },
    ]);
    assert.deepEqual(
      results.map((r) => r.ok),
      [true, false, false, false, false, false, true],
    );
    for (const r of results.filter((r) => !r.ok)) {
      assert.ok(!r.ok && r.error instanceof WriteRefusedError && r.error.reason === 'invalid');
      assert.ok(r.error instanceof StoreError);
    }
    assert.match(!results[2]!.ok ? results[2]!.error.message : '', /max_item_bytes/);
    // put and delete refuse the same input with the same error.
    await assert.rejects(
      () => store.put('big', Buffer.alloc(101)),
      (e: unknown) => e instanceof WriteRefusedError && e.reason === 'invalid' && e.key === 'big',
    );
    await assert.rejects(
      () => store.delete(''),
      (e: unknown) => e instanceof WriteRefusedError && /must not be empty/.test(e.message),
    );
    assert.equal(await raw.xLen(store.keys.cdc), 2);
    assert.equal(await store.get('big'), undefined);
    await assert.rejects(() => store.putMany('not an array' as unknown as PutEntry[]), StoreError);
    assert.deepEqual(await store.putMany([]), []);
    const dels = await store.deleteMany(['good.1', '', 'good.2']);
    assert.deepEqual(
      dels.map((r) => r.ok),
      [true, false, true],
    );
  });

  it('refuse a key whose clock the store will not build on alone (CLOCK_SKEW, CLOCK_OVERFLOW)', async () => {
    const store = await newStore();
    const record = (key: string, updatedAt: number, version: number): StoredRecord => {
      const content = Buffer.from(key);
      return {
        key,
        content,
        contentHash: sha256Hex(content),
        contentType: 'binary',
        version,
        updatedAt,
        origin: 'node-b',
        deleted: false,
      };
    };
    await store.apply(
      [record('future', NOW + 10 * 60_000, 1), record('worn', NOW - 1, MAX_VERSION)],
      { horizonMarginMs: 0 },
    );
    const results = await store.putMany([
      { key: 'a', content: 'a' },
      { key: 'future', content: 'x' },
      { key: 'worn', content: 'x' },
      { key: 'b', content: 'b' },
    ]);
    assert.deepEqual(
      results.map((r) => (r.ok ? 'ok' : r.error instanceof WriteRefusedError && r.error.reason)),
      ['ok', 'clock_skew', 'clock_overflow', 'ok'],
    );
    assert.match(!results[1]!.ok ? results[1]!.error.message : '', /max_clock_skew/);
    assert.equal((await store.get('future'))?.content.toString(), 'future');
    assert.equal((await store.get('worn'))?.version, MAX_VERSION);
    assert.equal(await raw.xLen(store.keys.cdc), 2);
    // put refuses the same way, with the same error class.
    await assert.rejects(
      () => store.put('future', 'x'),
      (e: unknown) => e instanceof WriteRefusedError && e.reason === 'clock_skew',
    );
  });

  it('a call whose keys have another type writes nothing of its entries', async () => {
    const store = await newStore();
    await raw.set(store.keys.bucket(bucketOf('x.3')), 'not a hash');
    const results = await store.putMany(
      ['x.1', 'x.2', 'x.3'].map((key) => ({ key, content: key })),
    );
    for (const r of results) {
      assert.ok(
        !r.ok && !(r.error instanceof WriteRefusedError) && /WRONGTYPE/.test(r.error.message),
      );
    }
    for (const key of ['x.1', 'x.2', 'x.3'])
      assert.equal(await raw.exists(store.keys.item(key)), 0);
    assert.equal(await raw.exists([store.keys.cdc, store.keys.dirty]), 0);
  });

  it('with store.wait_replicas, a batch no replica confirmed reports each entry not durable', async () => {
    const store = await newStore({ store: { waitReplicas: 1, waitTimeoutMs: 100 } });
    const results = await store.putMany([
      { key: 'd.1', content: 'one' },
      { key: '', content: 'invalid' },
      { key: 'd.2', content: 'two' },
    ]);
    assert.ok(!results[1]!.ok && results[1]!.error instanceof WriteRefusedError);
    for (const i of [0, 2]) {
      const r = results[i]!;
      assert.ok(!r.ok && r.error instanceof NotDurableError);
      assert.equal(r.error.replicas, 0);
      assert.equal(
        (r.error.written as { record: StoredRecord }).record.key,
        `d.${i === 0 ? 1 : 2}`,
      );
    }
    // Written all the same: in the master, not acknowledged.
    assert.equal((await store.get('d.2'))?.content.toString(), 'two');
  });
});

describe('batches in a mesh', () => {
  it('replicate and converge like single writes, concurrent batches of the same keys included', async () => {
    const mesh = await startMesh({ nodes: 2 });
    try {
      const [a, b] = mesh.nodes as [(typeof mesh.nodes)[0], (typeof mesh.nodes)[0]];
      const keys = Array.from({ length: 1200 }, (_, i) => `uk.batch.${i}`);
      const fromA = await a.store.putMany(keys.map((key, i) => ({ key, content: { i } })));
      assert.ok(fromA.every((r) => r.ok));
      // The same 100 keys in batches on both nodes at once: LWW picks one winner on both.
      const contested = keys.slice(0, 100);
      await Promise.all(
        [a, b].map((node) =>
          node.store.putMany(contested.map((key) => ({ key, content: { by: node.id } }))),
        ),
      );
      await b.store.deleteMany(keys.slice(1100));
      await eventually(
        async () => {
          const [sa, sb] = await Promise.all([a, b].map((n) => snapshot(n.store, keys)));
          return JSON.stringify(sa) === JSON.stringify(sb) && sa!.length === keys.length;
        },
        'two identical stores',
        30_000,
      );
      assert.equal(await a.store.merkleRoot(), await b.store.merkleRoot());
      assert.equal(await a.store.get('uk.batch.1150'), undefined);
      assert.deepEqual(
        await b.store.getRecord('uk.batch.500'),
        fromA[500]!.ok ? fromA[500]!.written.record : undefined,
      );
      const winners = new Set(
        (await a.store.getRecords(contested)).map(
          (r) => (JSON.parse(r.content.toString()) as { by: string }).by,
        ),
      );
      assert.ok(winners.size >= 1 && [...winners].every((w) => w === 'node-a' || w === 'node-b'));
    } finally {
      await mesh.stop();
    }
  });
});
