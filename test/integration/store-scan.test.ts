/**
 * `scan` and `count` (issue 23) on a real Redis: records by key prefix in bounded pages (a walk
 * over the Merkle buckets), every key present throughout returned exactly once while writes go
 * on, in memory that does not grow with the store.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { StoreError } from '../../src/errors.js';
import type { StoredRecord } from '../../src/model/record.js';
import { SyncStore, type SyncStoreOptions } from '../../src/store/sync-store.js';
import { startRedis, type RedisServer } from '../helpers/redis-server.js';

let server: RedisServer;
let prefixes = 0;
const stores: SyncStore[] = [];

async function newStore(options: Partial<SyncStoreOptions> = {}): Promise<SyncStore> {
  prefixes += 1;
  const store = await SyncStore.connect({
    redisUrl: server.url,
    redisPrefix: `s${prefixes}:`,
    nodeId: 'node-a',
    ...options,
  });
  stores.push(store);
  return store;
}

async function collect(iterable: AsyncIterable<StoredRecord>): Promise<StoredRecord[]> {
  const out: StoredRecord[] = [];
  for await (const record of iterable) out.push(record);
  return out;
}

function keysOf(records: readonly StoredRecord[]): string[] {
  return records.map((r) => r.key).sort();
}

before(async () => {
  server = await startRedis();
});

after(async () => {
  for (const store of stores) await store.close();
  await server.stop();
});

describe('scan and count', () => {
  it('list live records by prefix, tombstones with includeDeleted, glob characters as themselves', async () => {
    const store = await newStore();
    const keys = [
      'user.1.doc.a',
      'user.1.doc.b',
      'user.10.doc.a',
      'user.2.doc.a',
      'a*b',
      'a*c',
      'axb',
      'q?',
      'qx',
      '[x]',
      'x',
      'back\\slash',
      'ünï\u{1F600}.1',
    ];
    for (const r of await store.putMany(keys.map((key) => ({ key, content: { key } })))) {
      assert.ok(r.ok);
    }
    await store.deleteMany(['user.1.doc.b', 'never.written']);
    assert.deepEqual(keysOf(await collect(store.scan({ prefix: 'user.1.' }))), ['user.1.doc.a']);
    assert.deepEqual(keysOf(await collect(store.scan({ prefix: 'user.1' }))), [
      'user.1.doc.a',
      'user.10.doc.a',
    ]);
    assert.deepEqual(
      keysOf(await collect(store.scan({ prefix: 'user.1.', includeDeleted: true }))),
      ['user.1.doc.a', 'user.1.doc.b'],
    );
    // A prefix is text, never a pattern.
    assert.deepEqual(keysOf(await collect(store.scan({ prefix: 'a*' }))), ['a*b', 'a*c']);
    assert.deepEqual(keysOf(await collect(store.scan({ prefix: 'q?' }))), ['q?']);
    assert.deepEqual(keysOf(await collect(store.scan({ prefix: '[x' }))), ['[x]']);
    assert.deepEqual(keysOf(await collect(store.scan({ prefix: 'back\\' }))), ['back\\slash']);
    assert.deepEqual(keysOf(await collect(store.scan({ prefix: 'ünï' }))), ['ünï\u{1F600}.1']);
    const all = await collect(store.scan({ count: 1 }));
    assert.equal(all.length, keys.length - 1);
    assert.ok(
      all.every((r) => !r.deleted && r.content.toString() === JSON.stringify({ key: r.key })),
    );
    const withDeleted = await collect(store.scan({ includeDeleted: true }));
    assert.equal(withDeleted.length, keys.length + 1);
    assert.deepEqual(
      withDeleted
        .filter((r) => r.deleted)
        .map((r) => r.key)
        .sort(),
      ['never.written', 'user.1.doc.b'],
    );

    assert.equal(await store.count(), keys.length - 1);
    assert.equal(await store.count({ includeDeleted: true }), keys.length + 1);
    assert.equal(await store.count({ prefix: 'user.' }), 3);
    assert.equal(await store.count({ prefix: 'user.', includeDeleted: true }), 4);
    assert.equal(await store.count({ prefix: 'a*' }), 2);
    assert.equal(await store.count({ prefix: 'nothing' }), 0);

    const empty = await newStore();
    assert.deepEqual(await collect(empty.scan()), []);
    assert.equal(await empty.count(), 0);
  });

  it('refuses bad options when the iteration starts, and stops when its signal aborts', async () => {
    const store = await newStore();
    await store.putMany(Array.from({ length: 50 }, (_, i) => ({ key: `k${i}`, content: 'x' })));
    await assert.rejects(() => collect(store.scan({ count: 0 })), StoreError);
    await assert.rejects(() => collect(store.scan({ count: 1.5 })), StoreError);
    await assert.rejects(() => collect(store.scan({ prefix: 'bad\ud800' })), StoreError);
    await assert.rejects(() => store.count({ prefix: 3 as unknown as string }), StoreError);
    const controller = new AbortController();
    let seen = 0;
    await assert.rejects(async () => {
      for await (const record of store.scan({ count: 5, signal: controller.signal })) {
        assert.ok(!record.deleted);
        seen += 1;
        if (seen === 5) controller.abort();
      }
    }, /abort/i);
    assert.ok(seen < 50);
  });

  it('returns each of 100k keys exactly once while writes go on, in memory that does not grow with the store', async () => {
    const store = await newStore({ store: { cdcMaxlen: 1000 } });
    const N = 100_000;
    const VALUE_BYTES = 256;
    const key = (i: number): string => `doc.${String(i).padStart(6, '0')}`;
    for (let start = 0; start < N; start += 1000) {
      const entries = Array.from({ length: 1000 }, (_, j) => ({
        key: key(start + j),
        content: randomBytes(VALUE_BYTES),
      }));
      assert.ok((await store.putMany(entries)).every((r) => r.ok));
    }
    // Keys i % 10 == 9 are deleted during the scan, i % 10 == 1 rewritten; new keys come.
    let writing = true;
    let writes = 0;
    const writer = (async () => {
      let round = 0;
      while (writing) {
        const base = (round * 100) % N;
        const batch = Array.from({ length: 100 }, (_, j) => base + j);
        await store.putMany([
          ...batch
            .filter((i) => i % 10 === 1)
            .map((i) => ({ key: key(i), content: randomBytes(VALUE_BYTES) })),
          ...Array.from({ length: 20 }, (_, j) => ({
            key: `doc.new.${round}.${j}`,
            content: randomBytes(VALUE_BYTES),
          })),
        ]);
        await store.deleteMany(batch.filter((i) => i % 10 === 9).map(key));
        writes += 40;
        round += 1;
      }
    })();

    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const retained = (): number => {
      gc();
      const usage = process.memoryUsage();
      return usage.heapUsed + usage.arrayBuffers;
    };
    // Counted in a byte per key, so the test's own bookkeeping stays small next to a page.
    const seen = new Uint8Array(N);
    const added = new Map<string, number>();
    const baseline = retained();
    let peak = 0;
    let bytes = 0;
    let n = 0;
    try {
      for await (const record of store.scan({ prefix: 'doc.' })) {
        const i = /^doc\.(\d{6})$/.exec(record.key)?.[1];
        if (i === undefined) added.set(record.key, (added.get(record.key) ?? 0) + 1);
        else seen[Number(i)]! += 1;
        bytes += record.content.length;
        n += 1;
        if (n % 5000 === 0) peak = Math.max(peak, retained() - baseline);
      }
    } finally {
      writing = false;
      await writer;
    }
    for (let i = 0; i < N; i++) {
      if (i % 10 !== 9) assert.equal(seen[i], 1, `${key(i)} seen ${seen[i]} times`);
      else assert.ok(seen[i]! <= 1, `${key(i)} seen ${seen[i]} times`);
    }
    assert.deepEqual(
      [...added].filter(([, times]) => times > 1),
      [],
    );
    assert.ok(writes > 0, 'the writer wrote during the scan');
    // What the scan held at its peak against the contents
    // it returned: loading the store would hold all of them at once.
    const mb = (b: number): string => `${(b / 1e6).toFixed(1)} MB`;
    assert.ok(bytes >= 0.9 * N * VALUE_BYTES * 0.9, `returned ${mb(bytes)}`);
    assert.ok(peak < 16e6, `peak ${mb(peak)} over ${mb(bytes)} of contents`);
    assert.ok(peak < bytes / 2, `peak ${mb(peak)} over ${mb(bytes)} of contents`);
    console.log(
      `scan of ${n} records: peak ${mb(peak)} retained over ${mb(bytes)} of contents, ${writes} writes meanwhile`,
    );
  });
});
