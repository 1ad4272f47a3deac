/**
 * A store on a real Redis Cluster (3 masters, `redis-server --cluster-enabled yes` joined by
 * `redis-cli --cluster create`): partitions spread over the shards, every write one script call
 * on one shard, and the same Merkle tree at every level as a single instance holding the same
 * records (issue 22), so a repair compares any two nodes whatever their layouts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RedisCluster } from '@redis/client';
import {
  redisCli,
  startRedisCluster,
  type RedisCluster as Cluster,
} from '../../src/cli/redis-cluster.js';
import { ClusterSender } from '../../src/redis/cluster-sender.js';
import { childPaths, DEPTH } from '../../src/store/merkle-hash.js';
import type { LocalStore } from '../../src/store/local-store.js';
import { PartitionedStore } from '../../src/store/partitioned-store.js';
import { partitionLayout } from '../../src/store/partitions.js';
import { newRedisClient } from '../../src/store/redis-io.js';
import { SyncStore, type SyncStoreOptions } from '../../src/store/sync-store.js';
import { startRedis, type RedisServer } from '../helpers/redis-server.js';
import { record } from './cold-path-support.js';

describe('a store on a Redis Cluster', () => {
  let dir: string;
  let cluster: Cluster;
  let single: RedisServer;
  let client: ReturnType<typeof RedisCluster.create>;
  let sender: ClusterSender;
  const closers: (() => Promise<unknown>)[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'repl-cluster-'));
    [cluster, single] = await Promise.all([
      startRedisCluster(dir, { appendfsync: 'no' }),
      startRedis(),
    ]);
    client = RedisCluster.create({ rootNodes: [{ url: cluster.url }] });
    await client.connect();
    sender = new ClusterSender(client);
  });

  after(async () => {
    for (const close of closers) await close();
    await client?.close();
    await cluster?.kill();
    await single?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function singleStore(options: Partial<SyncStoreOptions> = {}): Promise<SyncStore> {
    const raw = newRedisClient({ url: single.url });
    await raw.connect();
    await raw.sendCommand(['FLUSHALL']);
    closers.push(() => raw.close());
    return new SyncStore(raw, { nodeId: 'node-s', ...options });
  }

  it('spreads the partitions evenly over the masters', async () => {
    for (const count of [16, 256] as const) {
      const perMaster = new Map<string, number>();
      for (const tag of partitionLayout(count).tags) {
        const slot = Number(
          await redisCli(cluster.servers[0]!.port, 'CLUSTER', 'KEYSLOT', `{${tag}}:cdc`),
        );
        const master = client.slots[slot]!.master;
        const name = `${master.host}:${master.port}`;
        perMaster.set(name, (perMaster.get(name) ?? 0) + 1);
      }
      assert.equal(perMaster.size, 3, `${count} partitions on ${perMaster.size} masters`);
      const shares = [...perMaster.values()];
      assert.ok(
        Math.max(...shares) - Math.min(...shares) <= 1,
        `${count} partitions split ${shares.join('/')} over 3 masters`,
      );
    }
  });

  it('writes each record, its leaf and its CDC entry in its partition', async () => {
    const store = await PartitionedStore.open(sender, { nodeId: 'node-c', redisPrefix: 'w:' });
    const keys = Array.from({ length: 200 }, (_, i) => `doc-${i}`);
    for (const key of keys) await store.put(key, { key });
    await store.delete('doc-7');
    assert.deepEqual(
      (await store.get('doc-3'))?.content.toString(),
      JSON.stringify({ key: 'doc-3' }),
    );
    assert.equal(await store.get('doc-7'), undefined);
    assert.equal((await store.getRecord('doc-7'))?.deleted, true);
    // Every write is in the stream of the partition of its key, and nowhere else.
    let entries = 0;
    for (const partition of store.partitions) {
      const ids = (await sender.sendCommand<unknown[]>(['XRANGE', partition.keys.cdc, '-', '+']))
        .length;
      entries += ids;
    }
    assert.equal(entries, 201);
    const doc3 = store.partitionOf('doc-3');
    const own = await sender.sendCommand<unknown[]>(['XRANGE', doc3.keys.cdc, '-', '+']);
    assert.ok(JSON.stringify(own).includes('doc-3'));
    // Read back in input order, absent keys left out.
    const records = await store.getRecords(['doc-9', 'nope', 'doc-1']);
    assert.deepEqual(
      records.map((r) => r.key),
      ['doc-9', 'doc-1'],
    );
  });

  it('has the same tree at every level as a single instance holding the same records', async () => {
    const records = Array.from({ length: 3000 }, (_, i) =>
      record(`k${i}-ünï`, { version: 1 + (i % 5), deleted: i % 11 === 0, origin: `n${i % 3}` }),
    );
    const stores: LocalStore[] = [
      await singleStore(),
      await PartitionedStore.open(sender, { nodeId: 'c16', redisPrefix: 'p16:', partitions: 16 }),
      await PartitionedStore.open(sender, {
        nodeId: 'c256',
        redisPrefix: 'p256:',
        partitions: 256,
      }),
    ];
    for (const store of stores) {
      // In two halves with a refresh between, so the trees are brought up to date incrementally.
      await store.apply(records.slice(0, 1500));
      await store.merkleRoot();
      await store.apply(records.slice(1500));
    }
    const [reference, ...clustered] = stores as [LocalStore, ...LocalStore[]];
    const root = await reference.merkleRoot();
    assert.notEqual(root, '0'.repeat(64));
    for (const store of clustered) assert.equal(await store.merkleRoot(), root);
    // Every level: the same children under every path, and the same leaves in every bucket.
    let frontier = [''];
    for (let depth = 0; depth < DEPTH; depth++) {
      const next: string[] = [];
      for (const path of frontier) {
        const expected = await reference.merkleChildren(path);
        for (const store of clustered) {
          assert.deepEqual(
            await store.merkleChildren(path),
            expected,
            `children of ${JSON.stringify(path)}`,
          );
        }
        next.push(...expected.map((c) => c.path));
      }
      frontier = depth < 2 ? next : next.filter((_, i) => i % 97 === 0);
    }
    for (const bucket of frontier) {
      const leaves = await reference.merkleLeaves(bucket);
      for (const store of clustered) assert.deepEqual(await store.merkleLeaves(bucket), leaves);
    }
    assert.deepEqual(childPaths('').length, 16);
  });

  it('keeps the layout a store was created with', async () => {
    const options = { nodeId: 'node-l', redisPrefix: 'l:' };
    const first = await PartitionedStore.open(sender, { ...options, partitions: 256 });
    // Opened again, without a count or with another, it keeps the recorded one.
    for (const partitions of [undefined, 16] as const) {
      const again = await PartitionedStore.open(sender, {
        ...options,
        ...(partitions && { partitions }),
      });
      assert.equal(again.layout.count, 256);
      assert.deepEqual(again.layout.tags, first.layout.tags);
    }
    await sender.sendCommand(['SET', 'bad:store:layout', '{"partitions":16,"tags":["a"]}']);
    await assert.rejects(
      () => PartitionedStore.open(sender, { nodeId: 'n', redisPrefix: 'bad:' }),
      /layout record bad:store:layout is unreadable/,
    );
  });

  it('purges tombstones past their TTL in every partition, the store-wide horizon first', async () => {
    let now = Date.now();
    const store = await PartitionedStore.open(sender, {
      nodeId: 'node-g',
      redisPrefix: 'g:',
      store: { tombstoneTtlMs: 1000 },
      clock: () => now,
    });
    const keys = Array.from({ length: 64 }, (_, i) => `gone-${i}`);
    for (const key of keys) await store.delete(key);
    const before = await store.merkleRoot();
    assert.notEqual(before, '0'.repeat(64));
    assert.equal((await store.purgeTombstones(now, Infinity)).purged, 0);
    assert.equal(await store.tombstones.countTombstones(-Infinity, now + 1), 64);
    now += 5000;
    assert.equal((await store.purgeTombstones(now, Infinity)).purged, 64);
    assert.equal((await store.tombstones.gcState()).horizon, now - 1000);
    assert.equal(await store.merkleRoot(), '0'.repeat(64));
    for (const key of keys) assert.equal(await store.getRecord(key), undefined);
  });

  it('writes batches in each partition, as a single instance does, and lists every key exactly once while writes go on', async () => {
    const clock = (): number => 1_735_776_100_000;
    const reference = await singleStore({ nodeId: 'node-b', clock });
    const store = await PartitionedStore.open(sender, {
      nodeId: 'node-b',
      redisPrefix: 'bm:',
      partitions: 16,
      clock,
    });
    const entries = Array.from({ length: 3000 }, (_, i) => ({
      key: i % 500 === 7 ? '' : `user.${i % 3}.doc.${i}`,
      content: { i },
    }));
    const deletes = Array.from({ length: 300 }, (_, i) => `user.0.doc.${i * 3}`);
    for (const target of [reference, store]) {
      const written = await target.putMany(entries);
      written.forEach((r, i) => {
        assert.equal(r.ok, entries[i]!.key !== '', `entry ${i}`);
        if (r.ok) assert.equal(r.written.record.key, entries[i]!.key);
      });
      assert.ok((await target.deleteMany(deletes)).every((r) => r.ok));
    }
    // Each record in its own partition's stream, and the same tree as the single instance.
    let entriesInStreams = 0;
    for (const partition of store.partitions) {
      entriesInStreams += Number(await sender.sendCommand(['XLEN', partition.keys.cdc]));
    }
    assert.equal(entriesInStreams, 3000 - 6 + 300);
    assert.equal(await store.merkleRoot(), await reference.merkleRoot());
    assert.deepEqual(
      await store.getRecords(['user.1.doc.1', 'user.0.doc.3']),
      await reference.getRecords(['user.1.doc.1', 'user.0.doc.3']),
    );

    const live = entries.filter((e) => e.key !== '' && !deletes.includes(e.key)).map((e) => e.key);
    assert.equal(await store.count(), live.length);
    assert.equal(
      await store.count({ prefix: 'user.1.' }),
      live.filter((k) => k.startsWith('user.1.')).length,
    );
    assert.equal(await store.count({ includeDeleted: true }), live.length + deletes.length);

    // Listing while another writer rewrites keys, adds new ones and deletes user.2 keys.
    let writing = true;
    const writer = (async () => {
      for (let round = 0; writing; round++) {
        await store.putMany(
          Array.from({ length: 50 }, (_, j) => ({ key: `user.1.new.${round}.${j}`, content: 'n' })),
        );
        await store.putMany(
          live
            .slice((round * 40) % live.length, ((round * 40) % live.length) + 40)
            .filter((k) => k.startsWith('user.1.'))
            .map((key) => ({ key, content: 'again' })),
        );
        await store.deleteMany([`user.2.doc.${(round * 3 + 2) % 3000}`]);
      }
    })();
    const seen = new Map<string, number>();
    try {
      for await (const record of store.scan({ prefix: 'user.', count: 50 })) {
        seen.set(record.key, (seen.get(record.key) ?? 0) + 1);
      }
    } finally {
      writing = false;
      await writer;
    }
    for (const key of live) {
      if (!key.startsWith('user.2.')) assert.equal(seen.get(key), 1, key);
    }
    assert.deepEqual(
      [...seen].filter(([, n]) => n > 1),
      [],
    );
  });
});
