/**
 * A cluster's own faults while a node replicates into it (issue 22), by the hot path alone (the
 * cold path is off, so nothing can repair what the hot path drops): a master failing over to its
 * replica (`CLUSTER FAILOVER`, and a master killed with SIGKILL), and a live slot migration
 * (`redis-cli --cluster reshard`) while the peer writes. MOVED, ASK, TRYAGAIN and a shard that
 * does not answer are retried, never dropped: the cursor never passes an entry not applied, and
 * with `wait_replicas: 1` not one that only a dead master held. A scan of a cluster store lists
 * every key exactly once while its slots migrate.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { redisCli, startRedisCluster, type RedisCluster } from '../../src/cli/redis-cluster.js';
import { resolveConfig } from '../../src/config/index.js';
import { startNode, type RunningNode } from '../../src/node/node.js';
import { createLogger } from '../../src/observability/logger.js';
import { createClusterConnection } from '../../src/redis/connect.js';
import { PartitionedStore } from '../../src/store/partitioned-store.js';
import { SyncStore } from '../../src/store/sync-store.js';
import { eventually, startRedis, type RedisServer } from '../helpers/redis-server.js';

const run = promisify(execFile);

interface Setup {
  readonly cluster: RedisCluster;
  readonly peerRedis: RedisServer;
  readonly peer: SyncStore;
  readonly node: RunningNode;
}

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

async function setUp(replicas: number): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'repl-cluster-faults-'));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  const [cluster, peerRedis] = await Promise.all([
    startRedisCluster(join(dir, 'cluster'), { replicasPerMaster: replicas, appendfsync: 'no' }),
    startRedis(),
  ]);
  cleanups.push(
    () => cluster.kill(),
    () => peerRedis.stop(),
  );
  const peer = await SyncStore.connect({ redisUrl: peerRedis.url, nodeId: 'node-a' });
  cleanups.push(() => peer.close());
  const config = resolveConfig({
    replication: {
      local_node_id: 'node-b',
      settings: {
        hot_path: { block_timeout: '1s' },
        cold_path: { enabled: false },
        peer_health: { ping_interval_sec: 1, idle_threshold_sec: 2 },
      },
      peers: [{ node_id: 'node-a', redis_url: peerRedis.url }],
      cursor: { sqlite_path: join(dir, 'cursors.db') },
    },
    local: { redis_url: cluster.url },
    store: replicas > 0 ? { wait_replicas: 1, wait_timeout: '1s' } : {},
    http: { enabled: false },
  });
  const node = await startNode(config, { logger: createLogger({ level: 'silent' }) });
  cleanups.push(() => node.stop());
  return { cluster, peerRedis, peer, node };
}

/** Writes `count` documents on the peer (every tenth one twice), one at a time. */
async function write(peer: SyncStore, tag: string, count: number): Promise<Map<string, number>> {
  const versions = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const key = `${tag}.doc-${i}`;
    const times = i % 10 === 0 ? 2 : 1;
    for (let t = 0; t < times; t++) {
      const { record } = await peer.put(key, { i, t });
      versions.set(key, record.version);
    }
  }
  return versions;
}

/** True once the node holds every key at exactly the version the peer last wrote. */
async function holds(node: RunningNode, versions: Map<string, number>): Promise<boolean> {
  const keys = [...versions.keys()];
  const records = await node.store.getRecords(keys).catch(() => []);
  return records.length === keys.length && records.every((r) => r.version === versions.get(r.key));
}

/** The master of each replica, by port: `replica port → master port`. */
async function replicaOf(cluster: RedisCluster): Promise<Map<number, number>> {
  const lines = (await redisCli(cluster.servers[0]!.port, 'CLUSTER', 'NODES')).split('\n');
  const portOf = new Map(lines.map((l) => [l.split(' ')[0]!, port(l)]));
  const out = new Map<number, number>();
  for (const line of lines) {
    const [, , flags, master] = line.split(' ');
    if (/slave/.test(flags ?? '') && !/fail/.test(flags ?? '')) {
      out.set(port(line), portOf.get(master!)!);
    }
  }
  return out;
}

function port(line: string): number {
  return Number(line.split(' ')[1]!.split('@')[0]!.split(':')[1]);
}

describe('a cluster node under the cluster’s own faults (hot path alone)', () => {
  it('loses nothing through a manual failover and a master killed with SIGKILL', async () => {
    const { cluster, peer, node } = await setUp(1);
    const writing = write(peer, 'failover', 3000);

    // A graceful failover: a replica takes over its master's slots.
    const [first] = (await replicaOf(cluster)).keys();
    await redisCli(first!, 'CLUSTER', 'FAILOVER');
    await eventually(
      async () => (await cluster.roles()).get(first!) === 'master',
      'the replica took over',
      30_000,
    );

    // A crash: another master killed; its replica is elected after the node timeout.
    const pairs = await replicaOf(cluster);
    const [victimReplica, victim] = [...pairs].find(([, m]) => m !== first)!;
    const server = cluster.servers.find((s) => s.port === victim)!;
    await server.kill();
    await eventually(
      async () => (await cluster.roles()).get(victimReplica) === 'master',
      'the replica of the killed master took over',
      30_000,
    );
    // Back, it rejoins as a replica (nodes.conf), so its shard has a replica to WAIT for again.
    await server.restart();
    await cluster.waitHealthy(30_000);

    const versions = await writing;
    await eventually(() => holds(node, versions), 'every write of the peer, as written', 90_000);
    assert.equal((await node.store.getRecords([...versions.keys()])).length, 3000);
  });

  it('loses nothing through a live slot migration while the peer writes', async () => {
    const { cluster, peer, node } = await setUp(0);
    const writing = write(peer, 'reshard', 3000);
    const lines = (await redisCli(cluster.servers[0]!.port, 'CLUSTER', 'NODES')).split('\n');
    const masters = lines.filter((l) => /master/.test(l.split(' ')[2] ?? ''));
    const [from, to] = [masters[0]!.split(' ')[0]!, masters[1]!.split(' ')[0]!];
    // Half of one master's slots, hence several partitions, move while both sides write.
    await run(
      'redis-cli',
      [
        '--cluster',
        'reshard',
        `127.0.0.1:${cluster.servers[0]!.port}`,
        '--cluster-from',
        from,
        '--cluster-to',
        to,
        '--cluster-slots',
        '2730',
        '--cluster-yes',
        '--cluster-pipeline',
        '10',
      ],
      { timeout: 120_000 },
    );
    await cluster.waitHealthy(30_000);
    const versions = await writing;
    await eventually(() => holds(node, versions), 'every write of the peer, as written', 90_000);
  });

  it('lists every key exactly once while its slots migrate (scan during a live reshard)', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'repl-cluster-scan-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const cluster = await startRedisCluster(join(dir, 'cluster'), { appendfsync: 'no' });
    cleanups.push(() => cluster.kill());
    const connection = createClusterConnection({ url: cluster.url, reconnectDelay: () => 100 });
    await connection.client.connect();
    cleanups.push(() => connection.client.close());
    const store = await PartitionedStore.open(connection.sender, { nodeId: 'node-s' });
    const keys = Array.from({ length: 6000 }, (_, i) => `scan.doc-${i}`);
    for (let i = 0; i < keys.length; i += 500) {
      const results = await store.putMany(
        keys.slice(i, i + 500).map((key) => ({ key, content: { key } })),
      );
      assert.ok(
        results.every((r) => r.ok),
        'every put written',
      );
    }
    const lines = (await redisCli(cluster.servers[0]!.port, 'CLUSTER', 'NODES')).split('\n');
    const masters = lines.filter((l) => /master/.test(l.split(' ')[2] ?? ''));
    const resharding = run(
      'redis-cli',
      [
        '--cluster',
        'reshard',
        `127.0.0.1:${cluster.servers[0]!.port}`,
        '--cluster-from',
        masters[0]!.split(' ')[0]!,
        '--cluster-to',
        masters[2]!.split(' ')[0]!,
        '--cluster-slots',
        '5000',
        '--cluster-yes',
      ],
      { timeout: 120_000 },
    );
    // Scan again and again while the slots move; each pass returns every key exactly once.
    let passes = 0;
    let done = false;
    void resharding.finally(() => (done = true));
    while (!done || passes === 0) {
      const seen = new Map<string, number>();
      for await (const record of store.scan({ prefix: 'scan.', count: 200 })) {
        seen.set(record.key, (seen.get(record.key) ?? 0) + 1);
      }
      passes += 1;
      assert.equal(seen.size, keys.length, `pass ${passes}: ${seen.size} of ${keys.length} keys`);
      assert.ok(
        [...seen.values()].every((n) => n === 1),
        `pass ${passes}: a key listed twice`,
      );
    }
    await resharding;
    t.diagnostic(`${passes} full scans of ${keys.length} keys ran while 5,000 slots moved`);
    assert.equal(await store.count({ prefix: 'scan.' }), keys.length);
  });
});
