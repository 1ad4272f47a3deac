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
import { RedisCluster, type RedisArgument, type TypeMapping } from '@redis/client';
import {
  redisCli,
  startRedisCluster,
  type RedisCluster as Cluster,
} from '../../src/cli/redis-cluster.js';
import { ClusterSender } from '../../src/redis/cluster-sender.js';
import { bucketOf, childPaths, DEPTH } from '../../src/store/merkle-hash.js';
import { MerkleReader } from '../../src/store/merkle-reader.js';
import type { LocalStore } from '../../src/engine/local-store.js';
import { PartitionedStore } from '../../src/store/partitioned-store.js';
import { partitionIndex, partitionLayout } from '../../src/store/partitions.js';
import { newRedisClient, type CommandSender } from '../../src/store/redis-io.js';
import { SyncStore, type SyncStoreOptions } from '../../src/store/sync-store.js';
import type { Change } from '../../src/store/watch.js';
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

  it("watch merges every partition's change feed: each change once, per key in order, resumed from a composite position", async () => {
    const store = await PartitionedStore.open(sender, { nodeId: 'node-w', redisPrefix: 'feed:' });
    const from = await store.changeFeedPosition();
    assert.equal(from.split(',').length, 16);
    const keys = Array.from({ length: 200 }, (_, i) => `feed-${i}`);
    await Promise.all(keys.map((key) => store.put(key, { key })));
    await Promise.all(keys.slice(0, 50).map((key) => store.put(key, { key, again: true })));
    const replicated = Array.from({ length: 100 }, (_, i) =>
      record(`feed-peer-${i}`, { origin: 'node-p', updatedAt: Date.now() }),
    );
    await store.apply(replicated, { source: { path: 'hot', peerId: 'node-p' } });
    const total = 350;

    const read = async (start: string, count: number): Promise<Change[]> => {
      const changes: Change[] = [];
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), 30_000);
      for await (const event of store.watch({
        from: start,
        pageSize: 16,
        signal: controller.signal,
      })) {
        assert.equal(event.type, 'change');
        changes.push(event);
        if (changes.length === count) break;
      }
      clearTimeout(timer);
      assert.equal(changes.length, count);
      return changes;
    };
    const all = await read(from, total);
    const id = (c: Change): string => `${c.key}@${c.version.version}`;
    assert.equal(new Set(all.map(id)).size, total);
    for (const key of keys.slice(0, 50)) {
      const versions = all.filter((c) => c.key === key).map((c) => c.version.version);
      assert.deepEqual(versions, [1, 2], `${key}'s changes in the order they were applied`);
    }
    assert.equal(all.filter((c) => c.source.kind === 'hot').length, 100);
    assert.equal(all.filter((c) => c.source.kind === 'local').length, 250);

    // Stopped after 150 changes and resumed from that change's position: the other 200, once.
    const first = await read(from, 150);
    const rest = await read(first[149]!.position, total - 150);
    assert.deepEqual([...first, ...rest].map(id).sort(), all.map(id).sort());
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
      // A repair asks for a whole level at once: the same answer, path by path.
      const level = await reference.merkleChildrenMany(frontier);
      for (const store of clustered) {
        assert.deepEqual(await store.merkleChildrenMany(frontier), level, `level ${depth}`);
      }
      frontier = depth < 2 ? next : next.filter((_, i) => i % 97 === 0);
    }
    const leavesOf = await reference.merkleLeavesMany(frontier);
    for (const [i, bucket] of frontier.entries()) {
      const leaves = await reference.merkleLeaves(bucket);
      assert.deepEqual(leavesOf[i], leaves);
      for (const store of clustered) assert.deepEqual(await store.merkleLeaves(bucket), leaves);
    }
    for (const store of clustered)
      assert.deepEqual(await store.merkleLeavesMany(frontier), leavesOf);
    assert.deepEqual(childPaths('').length, 16);

    // A peer reads either layout through MerkleReader: it finds the partitions from store:layout.
    const singleReader = (reference as SyncStore).reader;
    for (const [i, store] of clustered.entries()) {
      const prefix = i === 0 ? 'p16:' : 'p256:';
      const reader = await MerkleReader.open(sender, prefix);
      assert.equal(reader.layout?.count, (store as PartitionedStore).layout.count);
      assert.equal(await reader.root(), root);
      const paths = ['', '3', '3a', '3a7', 'f', 'f0', 'f0e'];
      assert.deepEqual(await reader.childrenMany(paths), await singleReader.childrenMany(paths));
      assert.deepEqual(await reader.nodeHashes(paths), await singleReader.nodeHashes(paths));
      const buckets = frontier.slice(0, 5);
      assert.deepEqual(await reader.bucketSizes(buckets), await singleReader.bucketSizes(buckets));
      const pages = buckets.map((bucket) => ({ bucket, cursor: '0' }));
      assert.deepEqual(
        await reader.scanBuckets(pages, 1000),
        await singleReader.scanBuckets(pages, 1000),
      );
      const keys = records.slice(0, 40).map((r) => r.key);
      const fetched = await reader.fetchVerified(keys, 1 << 20, 1 << 20);
      assert.deepEqual(fetched, await singleReader.fetchVerified(keys, 1 << 20, 1 << 20));
      assert.equal(fetched.records.length, 40);
      assert.equal(reader.dirtyKeys().length, 2 * (store as PartitionedStore).layout.count);
    }
    assert.equal((await MerkleReader.open(sender, 'nothing-here:')).layout, undefined);
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
  it('brings the tree up to date with every write made before merkleRoot(), even while a refresh runs', async () => {
    const reference = await singleStore();
    // The store's commands go to the cluster as they are; the test only hears when a refresh
    // has read which partitions are dirty (the EXISTS of partition f's marks is answered).
    let onDirtyRead: (() => void) | undefined;
    const watching: CommandSender = {
      async sendCommand<T>(
        args: readonly RedisArgument[],
        options?: { typeMapping?: TypeMapping },
      ) {
        const reply = await sender.sendCommand<T>(args, options);
        if (args[0] === 'EXISTS' && String(args[1]).endsWith(':merkle:dirty')) onDirtyRead?.();
        return reply;
      },
    };
    const store = await PartitionedStore.open(watching, {
      nodeId: 'node-q',
      redisPrefix: 'queued:',
      partitions: 16,
    });
    const partitionOf = (key: string): number => partitionIndex(store.layout, bucketOf(key));
    for (let round = 0; round < 3; round++) {
      // Records outside partition f, then one in it written once a refresh has found f clean:
      // that refresh does not look at f again.
      const batch = Array.from({ length: 3200 }, (_, i) =>
        record(`queued.${round}.${i}`, { version: round + 1 }),
      ).filter((r) => partitionOf(r.key) !== 15);
      let n = 0;
      while (partitionOf(`queued.${round}.late.${n}`) !== 15) n += 1;
      const late = record(`queued.${round}.late.${n}`);
      await Promise.all([reference.apply(batch), store.apply(batch)]);
      let reads = 0;
      const dirtyRead = new Promise<void>((resolve) => {
        onDirtyRead = () => {
          if (++reads === store.partitions.length) resolve();
        };
      });
      const first = store.refreshMerkle();
      await dirtyRead;
      onDirtyRead = undefined;
      await Promise.all([reference.apply([late]), store.apply([late])]);
      assert.equal(await store.merkleRoot(), await reference.merkleRoot(), `round ${round}`);
      await first;
    }
  });

  it('applies concurrent batches merged, each caller its own results, each change its own source', async () => {
    const reference = await singleStore();
    const store = await PartitionedStore.open(sender, {
      nodeId: 'node-c',
      redisPrefix: 'merged:',
      partitions: 256,
    });
    const from = await store.changeFeedPosition();
    // Eight batches at once, as the hot paths of two peers and a repair send them: more than
    // run at once, so those that wait are merged (those of one source with one another only).
    const sources = [
      { path: 'hot', peerId: 'node-a' },
      { path: 'hot', peerId: 'node-b' },
      { path: 'repair', peerId: 'node-a' },
    ] as const;
    const batches = Array.from({ length: 8 }, (_, b) => ({
      source: sources[b % 3]!,
      records: Array.from({ length: 300 }, (_, i) => record(`merged.${b}.${i}`)),
    }));
    const results = await Promise.all(
      batches.map((b) => store.apply(b.records, { source: b.source })),
    );
    batches.forEach((batch, b) => {
      assert.deepEqual(
        results[b]!.map((r) => [r.key, r.outcome]),
        batch.records.map((r) => [r.key, 'applied']),
        `batch ${b}`,
      );
    });
    for (const batch of batches) await reference.apply(batch.records);
    assert.equal(await store.merkleRoot(), await reference.merkleRoot());

    const sourceOf = new Map<string, string>();
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 30_000);
    for await (const event of store.watch({ from, signal: controller.signal })) {
      if (event.type !== 'change') continue;
      const source = event.source;
      sourceOf.set(event.key, 'peer' in source ? `${source.kind}:${source.peer}` : source.kind);
      if (sourceOf.size === 2400) break;
    }
    clearTimeout(timer);
    for (const batch of batches) {
      for (const r of batch.records) {
        assert.equal(sourceOf.get(r.key), `${batch.source.path}:${batch.source.peerId}`, r.key);
      }
    }
  });

  it('applies a batch whole, one script call per shard, when a slot moved since the client looked', async () => {
    // 20 records a partition: a shard's partitions fit in one call (at most 200 records).
    const records = Array.from({ length: 320 }, (_, i) => record(`moved.${i}`));
    const reference = await singleStore();
    await reference.apply(records);
    // A client whose slot map goes stale: one partition's slot moves to another master after
    // the store is opened, so its records are packed with the wrong shard's partitions.
    const stale = RedisCluster.create({ rootNodes: [{ url: cluster.url }] });
    await stale.connect();
    closers.push(() => stale.close());
    const store = await PartitionedStore.open(new ClusterSender(stale), {
      nodeId: 'node-m',
      redisPrefix: 'moved:',
      partitions: 16,
    });
    const tag = store.layout.tags[0]!;
    const slot = Number(await redisCli(cluster.servers[0]!.port, 'CLUSTER', 'KEYSLOT', `{${tag}}`));
    const masters = cluster.servers.slice(0, 3);
    const owner = stale.slots[slot]!.master;
    const from = masters.find((m) => m.port === owner.port)!;
    const to = masters.find((m) => m.port !== owner.port)!;
    await moveSlot(
      slot,
      from.port,
      to.port,
      masters.map((m) => m.port),
    );

    const results = await store.apply(records);
    assert.deepEqual(
      results.filter((r) => r.outcome !== 'applied'),
      [],
    );
    assert.equal((await store.getRecords(records.map((r) => r.key))).length, records.length);
    assert.equal(await store.merkleRoot(), await reference.merkleRoot());
    // Applying them again, through the map it has learnt since, changes nothing.
    assert.ok((await store.apply(records)).every((r) => r.outcome === 'duplicate'));
  });
});

/**
 * Moves hash slot `slot` from the master on port `from` to the one on `to` with its keys (the
 * steps of `redis-cli --cluster reshard` for one slot), and tells every master of `ports`.
 */
async function moveSlot(slot: number, from: number, to: number, ports: number[]): Promise<void> {
  const [fromId, toId] = await Promise.all([
    redisCli(from, 'CLUSTER', 'MYID'),
    redisCli(to, 'CLUSTER', 'MYID'),
  ]);
  await redisCli(to, 'CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', fromId.trim());
  await redisCli(from, 'CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', toId.trim());
  for (;;) {
    const keys = (await redisCli(from, 'CLUSTER', 'GETKEYSINSLOT', String(slot), '100'))
      .split('\n')
      .map((k) => k.trim())
      .filter((k) => k !== '');
    if (keys.length === 0) break;
    await redisCli(from, 'MIGRATE', '127.0.0.1', String(to), '', '0', '5000', 'KEYS', ...keys);
  }
  for (const port of [to, from, ...ports.filter((p) => p !== from && p !== to)]) {
    await redisCli(port, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', toId.trim());
  }
}
