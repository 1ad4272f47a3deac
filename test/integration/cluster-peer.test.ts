/**
 * A peer whose Redis is a real Redis Cluster (3 masters), replicated from by each path on its own
 * (issue 22): the peer link finds it is a cluster (`cluster_enabled:1`) and queries it through a
 * cluster client; the cold path reads its partitioned tree, the hot path tails its P partition
 * streams shard by shard. Cluster peer → single node, single peer → cluster node and cluster ↔
 * cluster, each by the cold path alone and by the hot path alone (the other off: a check another
 * path can mask proves nothing).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startRedisCluster, type RedisCluster } from '../../src/cli/redis-cluster.js';
import { resolveConfig } from '../../src/config/index.js';
import { CursorStore } from '../../src/engine/cursor-store.js';
import { startNode, type RunningNode } from '../../src/node/node.js';
import { formatHealth } from '../../src/observability/health.js';
import { createLogger } from '../../src/observability/logger.js';
import { createClusterConnection } from '../../src/redis/connect.js';
import { PartitionedStore } from '../../src/store/partitioned-store.js';
import { eventually, startRedis, type RedisServer } from '../helpers/redis-server.js';
import { metric } from './cold-path-support.js';

type Side = 'cluster' | 'single';
type Path = 'hot' | 'cold';

describe('replicating from a Redis Cluster peer', () => {
  let dir: string;
  let clusters: Record<'a' | 'b', RedisCluster>;
  let single: RedisServer;
  let runs = 0;
  const nodes: RunningNode[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'repl-cluster-peer-'));
    const [a, b, s] = await Promise.all([
      startRedisCluster(join(dir, 'cluster-a'), { appendfsync: 'no' }),
      startRedisCluster(join(dir, 'cluster-b'), { appendfsync: 'no' }),
      startRedis(),
    ]);
    clusters = { a, b };
    single = s;
  });

  after(async () => {
    for (const node of nodes) await node.stop().catch(() => undefined);
    await clusters?.a.kill();
    await clusters?.b.kill();
    await single?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A node on `side` (cluster `which`, or the single instance), replicating from `peers`. */
  async function node(
    id: string,
    side: Side,
    which: 'a' | 'b',
    prefix: string,
    peers: { node_id: string; redis_url: string; redis_prefix: string }[],
    path: Path,
    hotPath: Record<string, unknown> = {},
  ): Promise<RunningNode> {
    const running = await startNode(
      resolveConfig({
        replication: {
          local_node_id: id,
          settings: {
            hot_path: { enabled: path === 'hot', block_timeout: '1s', ...hotPath },
            cold_path: path === 'cold' ? { interval_sec: 1 } : { enabled: false },
            peer_health: { ping_interval_sec: 1, idle_threshold_sec: 2 },
          },
          peers,
          cursor: { sqlite_path: join(dir, `cursors-${prefix}${id}.db`) },
        },
        local: { redis_url: urlOf(side, which), redis_prefix: prefix },
        http: { enabled: false },
      }),
      { logger: createLogger({ level: 'silent' }) },
    );
    nodes.push(running);
    return running;
  }

  function urlOf(side: Side, which: 'a' | 'b'): string {
    return side === 'cluster' ? clusters[which].url : single.url;
  }

  /** Writes `count` documents on `node` (every tenth twice, the first deleted). */
  async function write(
    node: RunningNode,
    tag: string,
    count: number,
  ): Promise<Map<string, number>> {
    const versions = new Map<string, number>();
    for (let i = 0; i < count; i++) {
      const key = `${tag}.doc-${i}`;
      for (let t = 0; t < (i % 10 === 0 ? 2 : 1); t++) {
        versions.set(key, (await node.store.put(key, { i, t })).record.version);
      }
    }
    const deleted = await node.store.delete(`${tag}.doc-0`);
    versions.set(`${tag}.doc-0`, deleted.record.version);
    return versions;
  }

  async function holds(node: RunningNode, versions: Map<string, number>): Promise<boolean> {
    const keys = [...versions.keys()];
    const records = await node.store.getRecords(keys).catch(() => []);
    return (
      records.length === keys.length && records.every((r) => r.version === versions.get(r.key))
    );
  }

  /** Node A on `from` writes; node B on `to` replicates from it by `path` alone. */
  async function replicates(from: Side, to: Side, path: Path, count: number): Promise<void> {
    const n = ++runs;
    const a = await node('node-a', from, 'a', `a${n}:`, [], 'cold');
    const b = await node(
      'node-b',
      to,
      'b',
      `b${n}:`,
      [{ node_id: 'node-a', redis_url: urlOf(from, 'a'), redis_prefix: `a${n}:` }],
      path,
    );
    assert.equal(a.store instanceof PartitionedStore, from === 'cluster');
    assert.equal(b.store instanceof PartitionedStore, to === 'cluster');
    const versions = await write(a, `${path}${n}`, count);
    await eventually(
      () => holds(b, versions),
      `node B holds every write of A (${path} path)`,
      90_000,
    );
    await eventually(
      async () => (await b.store.merkleRoot()) === (await a.store.merkleRoot()),
      'the same Merkle root on both nodes',
      60_000,
    );
    if (path === 'hot') {
      const peer = b.engine.health().peers[0]!;
      assert.equal(peer.partitions?.count, from === 'cluster' ? 16 : undefined);
      if (from === 'cluster') {
        assert.match(
          formatHealth(b.engine.health()),
          /node-a: a Redis Cluster, 16 partition streams: 0 behind, 0 with a gap, 0 failing/,
        );
      }
      assert.equal(peer.lag_events, 0, 'nothing waits once every write is held');
    }
    await b.stop();
    await a.stop();
    if (path === 'hot') {
      // One cursor per partition stream of a cluster peer, one for a single instance's `cdc`.
      const cursors = CursorStore.open(join(dir, `cursors-b${n}:node-b.db`));
      const streams = cursors.all().map((row) => row.stream);
      cursors.close();
      if (from === 'cluster') {
        assert.equal(streams.length, 16);
        assert.ok(
          streams.every((stream) => /^a\d+:\{[0-9a-f]\.\d+\}:cdc$/.test(stream)),
          streams[0],
        );
      } else {
        assert.deepEqual(streams, ['']);
      }
    }
  }

  it('repairs from a cluster peer within bounds: a 50 MB node hash there is skipped unread, counted, the keys below repaired', async () => {
    const n = ++runs;
    const a = await node('node-a', 'cluster', 'a', `a${n}:`, [], 'cold');
    const keys = Array.from({ length: 50 }, (_, i) => `bounded${n}.doc-${i}`);
    await a.store.putMany(keys.map((key, i) => ({ key, content: { i } })));
    await a.store.merkleRoot();
    await a.stop(); // its store stays; its engine would hash the root again
    // The peer's root, in its top of the tree on one of its shards, replaced by 50 MB.
    const raw = createClusterConnection({ url: urlOf('cluster', 'a'), reconnectDelay: () => 100 });
    await raw.client.connect();
    await raw.sender.sendCommand([
      'HSET',
      `a${n}:{meta}:merkle:nodes`,
      'root',
      'f'.repeat(50 << 20),
    ]);
    await raw.client.close();
    const b = await node(
      'node-b',
      'single',
      'b',
      `b${n}:`,
      [{ node_id: 'node-a', redis_url: urlOf('cluster', 'a'), redis_prefix: `a${n}:` }],
      'cold',
    );
    await eventually(
      async () => (await b.store.getRecords(keys)).length === keys.length,
      'node B holds every key, repaired past the oversized root',
      60_000,
    );
    assert.ok(
      (await metric(b.engine, 'replication_peer_oversized_replies_total', {
        peer_id: 'node-a',
        command: 'hget',
      })) >= 1,
      'the oversized reply is counted',
    );
    await b.stop();
  });

  it('tails a cluster peer’s large documents within max_batch_bytes: a round holds about one, none starves', async () => {
    const n = ++runs;
    const a = await node('node-a', 'cluster', 'a', `a${n}:`, [], 'cold');
    const b = await node(
      'node-b',
      'single',
      'b',
      `b${n}:`,
      [{ node_id: 'node-a', redis_url: clusters.a.url, redis_prefix: `a${n}:` }],
      'hot',
      { max_batch_bytes: '64KiB' },
    );
    // 200 KB each, over the 16 partitions: every read passes the 64 KiB a round may hold.
    const versions = new Map<string, number>();
    for (let i = 0; i < 80; i++) {
      const key = `big${n}.doc-${i}`;
      const { record } = await a.store.put(key, { i, pad: 'x'.repeat(200_000) });
      versions.set(key, record.version);
    }
    await eventually(() => holds(b, versions), 'node B holds every large document', 90_000);
    await b.stop();
    await a.stop();
  });

  for (const [from, to] of [
    ['cluster', 'single'],
    ['single', 'cluster'],
    ['cluster', 'cluster'],
  ] as const) {
    it(`repairs a ${from} peer into a ${to} node by the cold path alone`, async () => {
      await replicates(from, to, 'cold', 400);
    });
    it(`tails a ${from} peer into a ${to} node by the hot path alone`, async () => {
      await replicates(from, to, 'hot', 600);
    });
  }
});
