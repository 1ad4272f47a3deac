/**
 * The change feed (`watch`, issue 23 part B) on real Redis: local and replicated changes (hot path
 * and repair) with their source, in the order the store applied them; resumed after a restart
 * from a returned position, every change after it exactly once; a slow consumer holds at most a
 * page and gets a resync marker, never a silent gap, when the feed is trimmed past it; purges;
 * the feed off.
 */
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, before, describe, it } from 'node:test';
import type { StoredRecord } from '../../src/model/record.js';
import { sha256Hex } from '../../src/store/input.js';
import { newRedisClient } from '../../src/store/redis-io.js';
import { SyncStore, type SyncStoreOptions } from '../../src/store/sync-store.js';
import type { Change, WatchEvent, WatchOptions } from '../../src/store/watch.js';
import { startMesh } from '../helpers/mesh.js';
import { eventually, startRedis, type RedisServer } from '../helpers/redis-server.js';

/** A replicated record from `origin`, as a peer would send it. */
function peerRecord(key: string, i: number, origin = 'node-p', bytes = 40): StoredRecord {
  const content = Buffer.from(JSON.stringify({ key, i, pad: 'x'.repeat(bytes) }));
  return {
    key,
    content,
    contentHash: sha256Hex(content),
    contentType: 'json',
    version: 1,
    updatedAt: Date.now(),
    origin,
    deleted: false,
  };
}

/** Reads `watch(options)` until `until` says so (it sees each event first); returns the events. */
async function collect(
  store: { watch(options: WatchOptions): AsyncIterable<WatchEvent> },
  options: WatchOptions,
  until: (events: readonly WatchEvent[]) => boolean,
  timeoutMs = 30_000,
): Promise<WatchEvent[]> {
  const events: WatchEvent[] = [];
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    for await (const event of store.watch({ ...options, signal: controller.signal })) {
      events.push(event);
      if (until(events)) break;
    }
  } finally {
    clearTimeout(timer);
  }
  if (!until(events)) {
    assert.fail(`watch ended after ${events.length} events, before the condition held`);
  }
  return events;
}

const changesOf = (events: readonly WatchEvent[]): Change[] =>
  events.filter((e): e is Change => e.type === 'change');

describe('change feed: watch', () => {
  let redis: RedisServer;
  const stores: SyncStore[] = [];
  let prefixes = 0;

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const store of stores) await store.close();
    await redis?.stop();
  });

  async function newStore(options: Partial<SyncStoreOptions> = {}): Promise<SyncStore> {
    const store = await SyncStore.connect({
      redisUrl: redis.url,
      nodeId: 'node-a',
      redisPrefix: `feed${++prefixes}:`,
      ...options,
    });
    stores.push(store);
    return store;
  }

  it('sees a 2-node mesh: hot-path and repair changes from the peer, local writes, in applied order', async () => {
    const mesh = await startMesh({ nodes: 2 });
    try {
      const [a, b] = mesh.nodes as [(typeof mesh.nodes)[0], (typeof mesh.nodes)[0]];
      const from = await b.store.changeFeedPosition();
      await a.store.put('doc.hot', { by: 'a' });
      await eventually(async () => (await b.store.get('doc.hot')) !== undefined, 'doc.hot on b');
      await b.store.put('doc.local', { by: 'b' });
      // A record in a's store and tree but not in its CDC stream reaches b only by a repair.
      const content = Buffer.from(JSON.stringify({ by: 'a' }));
      await a.store.apply([
        { ...peerRecord('doc.repaired', 0, 'node-a'), content, contentHash: sha256Hex(content) },
      ]);
      const report = await b.engine.repair('node-a');
      assert.equal(report.applied, 1);
      await b.store.delete('doc.hot');

      const events = await collect(b.store, { from }, (e) => e.length >= 4);
      const seen = changesOf(events).map((c) => [c.key, c.source, c.version.origin]);
      assert.deepEqual(seen, [
        ['doc.hot', { kind: 'hot', peer: 'node-a' }, 'node-a'],
        ['doc.local', { kind: 'local' }, 'node-b'],
        ['doc.repaired', { kind: 'repair', peer: 'node-a' }, 'node-a'],
        ['doc.hot', { kind: 'local' }, 'node-b'],
      ]);
      const [hot, local, repaired, deleted] = changesOf(events) as [Change, Change, Change, Change];
      // Each change's record while it is still the current one; the first is replaced by the delete.
      assert.equal(hot.record, undefined);
      assert.deepEqual(JSON.parse(local.record!.content.toString()), { by: 'b' });
      assert.deepEqual(JSON.parse(repaired.record!.content.toString()), { by: 'a' });
      assert.equal(deleted.version.deleted, true);
      assert.equal(deleted.record?.deleted, true);
      assert.ok(hot.appliedAt <= local.appliedAt && local.appliedAt <= deleted.appliedAt);
    } finally {
      await mesh.stop();
    }
  });

  it('resumes after a restart from a returned position: every change after it, exactly once', async () => {
    const store = await newStore();
    const from = await store.changeFeedPosition();
    for (let i = 0; i < 30; i++) await store.put(`r.local.${i}`, { i });
    // 100 records in one apply call: feed entries of up to 32 changes, stopped inside one.
    await store.apply(
      Array.from({ length: 100 }, (_, i) => peerRecord(`r.peer.${i}`, i)),
      { source: { path: 'hot', peerId: 'node-p' } },
    );
    const first = changesOf(
      await collect(store, { from, pageSize: 7 }, (e) => changesOf(e).length >= 45),
    );
    const position = first[first.length - 1]!.position;
    await store.close();

    // A new process: a new connection, more writes, then watch from the position.
    const again = await newStore({ redisPrefix: store.keys.prefix });
    for (let i = 30; i < 40; i++) await again.put(`r.local.${i}`, { i });
    const rest = changesOf(
      await collect(again, { from: position, pageSize: 7 }, (e) => changesOf(e).length >= 95),
    );
    const keys = [...first, ...rest].map((c) => c.key);
    const expected = [
      ...Array.from({ length: 30 }, (_, i) => `r.local.${i}`),
      ...Array.from({ length: 100 }, (_, i) => `r.peer.${i}`),
      ...Array.from({ length: 10 }, (_, i) => `r.local.${30 + i}`),
    ];
    assert.deepEqual(keys, expected);
    assert.equal(rest[0]!.key, 'r.peer.15');
    assert.deepEqual(rest[0]!.source, { kind: 'hot', peer: 'node-p' });
    // Nothing more: the iterator that resumes from the last position finds no change.
    const end = rest[rest.length - 1]!.position;
    await again.put('r.after', 'x');
    const next = changesOf(await collect(again, { from: end }, (e) => e.length >= 1));
    assert.deepEqual(
      next.map((c) => c.key),
      ['r.after'],
    );
  });

  it('a slow consumer holds at most a page while 50,000 changes are written, then gets a resync marker, never a silent gap', async () => {
    const store = await newStore({ store: { changeFeedMaxlen: 5000 } });
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const from = await store.changeFeedPosition();
    await store.put('slow.first', 'x');
    const controller = new AbortController();
    const iterator = store.watch({ from, signal: controller.signal })[Symbol.asyncIterator]();
    const firstEvent = await iterator.next();
    assert.equal((firstEvent.value as Change).key, 'slow.first');

    // The consumer is stalled: 50,000 changes of 1 KB documents are written meanwhile.
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const rssBefore = process.memoryUsage().rss;
    const batch = 1000;
    for (let n = 0; n < 50_000; n += batch) {
      await store.apply(
        Array.from({ length: batch }, (_, i) => peerRecord(`slow.${n + i}`, n + i, 'node-p', 1000)),
        { source: { path: 'hot', peerId: 'node-p' } },
      );
    }
    gc();
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    const rssGrowth = process.memoryUsage().rss - rssBefore;
    console.log(
      `slow consumer: heap +${(heapGrowth / 2 ** 20).toFixed(1)} MB, rss +${(rssGrowth / 2 ** 20).toFixed(1)} MB over 50,000 × 1 KB changes`,
    );
    // Buffering the changes (with their records) would hold ≥ 50 MB.
    assert.ok(heapGrowth < 20 * 2 ** 20, `heap grew ${heapGrowth} bytes`);

    const events: WatchEvent[] = [];
    for (;;) {
      const next = await iterator.next();
      if (next.done === true) break;
      events.push(next.value);
      if (next.value.type === 'change' && next.value.key === 'slow.49999') break;
    }
    controller.abort();
    await iterator.return?.();
    assert.equal(events[0]!.type, 'resync');
    assert.equal((events[0] as { reason: string }).reason, 'trimmed');
    // After the marker: consecutive changes up to the last one written, none missing.
    const changes = changesOf(events);
    const ordinals = changes.map((c) => Number(c.position));
    assert.ok(changes.length >= 5000 && changes.length < 50_000, `${changes.length} changes`);
    ordinals.forEach((o, i) => i === 0 || assert.equal(o, ordinals[i - 1]! + 1));
    assert.equal(Number((events[0] as { position: string }).position), ordinals[0]! - 1);
    const lastKey = Number(changes[0]!.key.slice('slow.'.length));
    assert.deepEqual(
      changes.map((c) => c.key),
      Array.from({ length: 50_000 - lastKey }, (_, i) => `slow.${lastKey + i}`),
    );
  });

  it('a consumer that keeps up sees every change once, in order, while writes go on', async () => {
    const store = await newStore();
    const from = await store.changeFeedPosition();
    const reading = collect(
      store,
      { from, prefix: 'live.', records: false },
      (e) => changesOf(e).length >= 3000,
    );
    for (let n = 0; n < 3000; n += 300) {
      await Promise.all(
        Array.from({ length: 300 }, (_, i) =>
          i % 3 === 0
            ? store.put(`live.${n + i}`, { n: n + i })
            : store.put(`other.${n + i}`, { n: n + i }).then(() => store.put(`live.${n + i}`, 'v')),
        ),
      );
    }
    const events = await reading;
    assert.equal(events.filter((e) => e.type === 'resync').length, 0);
    const keys = changesOf(events).map((c) => c.key);
    assert.equal(new Set(keys).size, 3000);
    assert.ok(keys.every((k) => k.startsWith('live.')));
    const positions = changesOf(events).map((c) => Number(c.position));
    assert.ok(positions.every((p, i) => i === 0 || p > positions[i - 1]!));
  });

  it('sees batches: every key of a putMany and a deleteMany, in the order written', async () => {
    const store = await newStore();
    const from = await store.changeFeedPosition();
    const reading = collect(store, { from, records: false }, (e) => changesOf(e).length >= 7);
    await store.putMany(['b.1', 'b.2', 'b.3', 'b.2'].map((key) => ({ key, content: { key } })));
    await store.deleteMany(['b.1', 'b.9', 'b.3']);
    const changes = changesOf(await reading);
    assert.deepEqual(
      changes.map((c) => [c.key, c.version.deleted, c.version.version]),
      [
        ['b.1', false, 1],
        ['b.2', false, 1],
        ['b.3', false, 1],
        ['b.2', false, 2],
        ['b.1', true, 2],
        ['b.9', true, 1],
        ['b.3', true, 2],
      ],
    );
    assert.ok(changes.every((c) => JSON.stringify(c.source).includes('local')));
  });

  it('delivers purged tombstones only when asked (source purge)', async () => {
    const store = await newStore({ store: { tombstoneTtlMs: 1 } });
    const from = await store.changeFeedPosition();
    await store.delete('gone.1');
    await store.purgeTombstones(Date.now() + 60_000);
    await store.put('gone.after', 'x');
    const all = changesOf(await collect(store, { from, purges: true }, (e) => e.length >= 3));
    assert.deepEqual(
      all.map((c) => [c.key, c.source.kind, c.record === undefined]),
      [
        ['gone.1', 'local', true], // purged since
        ['gone.1', 'purge', true],
        ['gone.after', 'local', false],
      ],
    );
    assert.equal(all[1]!.version.deleted, true);
    const without = changesOf(await collect(store, { from }, (e) => e.length >= 2));
    assert.deepEqual(
      without.map((c) => c.key),
      ['gone.1', 'gone.after'],
    );
  });

  it('with store.change_feed off, writes append nothing and watch is refused', async () => {
    const store = await newStore({ store: { changeFeed: false } });
    await store.put('off.1', 'x');
    await store.apply([peerRecord('off.2', 2)]);
    const raw = newRedisClient({ url: redis.url });
    await raw.connect();
    try {
      assert.equal(await raw.sendCommand(['EXISTS', store.keys.changes, store.keys.changesSeq]), 0);
    } finally {
      await raw.close();
    }
    assert.throws(() => store.watch(), /change feed is off/);
  });

  it('refuses a position that is not one of this feed', async () => {
    const store = await newStore();
    await assert.rejects(
      collect(store, { from: '12,13' }, () => true),
      /not a position of this store's change feed/,
    );
  });
});
