/**
 * A node whose own store is a real Redis Cluster (3 masters), replicating from a single-instance
 * peer: detected from the server (`cluster_enabled:1`), partitioned, and fed by each path on its
 * own — the hot path with the cold path off, the cold path with the hot path off (issue 22).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startRedisCluster, type RedisCluster } from '../../src/cli/redis-cluster.js';
import { resolveConfig } from '../../src/config/index.js';
import { startNode, type RunningNode } from '../../src/node/node.js';
import { createLogger } from '../../src/observability/logger.js';
import { PartitionedStore } from '../../src/store/partitioned-store.js';
import { SyncStore } from '../../src/store/sync-store.js';
import { eventually, startRedis, type RedisServer } from '../helpers/redis-server.js';

describe('a node on a Redis Cluster', () => {
  let dir: string;
  let cluster: RedisCluster;
  let peerRedis: RedisServer;
  let peer: SyncStore;
  let prefixes = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'repl-cluster-node-'));
    [cluster, peerRedis] = await Promise.all([
      startRedisCluster(join(dir, 'cluster'), { appendfsync: 'no' }),
      startRedis(),
    ]);
    peer = await SyncStore.connect({ redisUrl: peerRedis.url, nodeId: 'node-a' });
  });

  after(async () => {
    await peer?.close();
    await cluster?.kill();
    await peerRedis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Node B on the cluster (its own prefix per test), replicating from node A. */
  async function clusterNode(settings: Record<string, unknown>): Promise<RunningNode> {
    const n = ++prefixes;
    const config = resolveConfig({
      replication: {
        local_node_id: 'node-b',
        settings: {
          hot_path: { block_timeout: '1s' },
          peer_health: { ping_interval_sec: 1, idle_threshold_sec: 2 },
          ...settings,
        },
        peers: [{ node_id: 'node-a', redis_url: peerRedis.url }],
        cursor: { sqlite_path: join(dir, `cursors-${n}.db`) },
      },
      local: { redis_url: cluster.url, redis_prefix: `b${n}:` },
      http: { enabled: false },
    });
    return startNode(config, { logger: createLogger({ level: 'silent' }) });
  }

  async function writeOnPeer(count: number, tag: string): Promise<string[]> {
    const keys = Array.from({ length: count }, (_, i) => `${tag}.doc-${i}`);
    for (const key of keys) await peer.put(key, { key, tag });
    await peer.delete(keys[0]!);
    return keys;
  }

  async function holdsAll(node: RunningNode, keys: readonly string[]): Promise<boolean> {
    const records = await node.store.getRecords(keys);
    return records.length === keys.length && records[0]!.deleted;
  }

  it('detects the cluster and replicates by the hot path alone', async () => {
    const node = await clusterNode({ cold_path: { enabled: false } });
    try {
      assert.ok(node.store instanceof PartitionedStore, 'a cluster store is partitioned');
      const keys = await writeOnPeer(500, 'hot');
      await eventually(() => holdsAll(node, keys), 'node B holds every write of A', 30_000);
      assert.deepEqual(
        (await node.store.get(keys[7]!))?.content.toString(),
        JSON.stringify({ key: keys[7], tag: 'hot' }),
      );
      // Each record is stored in its partition's keys (one hash slot per partition).
      const store = node.store;
      const held = new Map<number, number>();
      for (const key of keys) {
        const partition = store.partitionOf(key);
        const exists = await node.redis.sendCommand(['EXISTS', partition.keys.item(key)]);
        const i = store.partitions.indexOf(partition);
        held.set(i, (held.get(i) ?? 0) + Number(exists));
      }
      assert.equal(
        [...held.values()].reduce((a, b) => a + b, 0),
        keys.length,
      );
      assert.equal(held.size, 16, `records in ${held.size} of 16 partitions`);
    } finally {
      await node.stop();
    }
  });

  it('repairs from a single-instance peer by the cold path alone, to the same tree', async () => {
    const keys = await writeOnPeer(800, 'cold');
    const node = await clusterNode({
      hot_path: { enabled: false },
      cold_path: { interval_sec: 1 },
    });
    try {
      await eventually(() => holdsAll(node, keys), 'node B repaired every key of A', 60_000);
      // Everything A holds (this test's keys and the last test's) is now on B: the same root.
      await eventually(
        async () => (await node.store.merkleRoot()) === (await peer.merkleRoot()),
        'the same Merkle root on both nodes',
        60_000,
      );
    } finally {
      await node.stop();
    }
  });
});
