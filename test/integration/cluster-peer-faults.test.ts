/**
 * A cluster peer's own faults while a node replicates from it (issue 22). By the hot path alone
 * (the cold path off, so nothing can repair what the hot path skips): a master of the peer
 * failing over to its replica (`CLUSTER FAILOVER`), a master killed with SIGKILL (the peer
 * acknowledging only writes its replica holds, `wait_replicas: 1`), and a live slot migration of
 * the peer (`redis-cli --cluster reshard`), each while the peer writes. A partition whose stream
 * moved is read where it now lives from its own cursor (MOVED re-reads the shard map, ASK is
 * followed): every acknowledged write arrives, at the version written. By the cold path alone:
 * a reshard under the repairs' reads (MOVED and ASK followed by the bounded query connections).
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
import { eventually, startRedis } from '../helpers/redis-server.js';

const run = promisify(execFile);

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

interface Setup {
  readonly cluster: RedisCluster;
  /** Node A, on the cluster: the peer. */
  readonly a: RunningNode;
  /** Node B, on a single instance, tailing A by the hot path alone. */
  readonly b: RunningNode;
}

/** Node B replicates from A by `path` alone (the other one off). */
async function setUp(replicas: number, path: 'hot' | 'cold' = 'hot'): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'repl-cluster-peer-faults-'));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  const [cluster, single] = await Promise.all([
    startRedisCluster(join(dir, 'cluster'), { replicasPerMaster: replicas, appendfsync: 'no' }),
    startRedis(),
  ]);
  cleanups.push(
    () => cluster.kill(),
    () => single.stop(),
  );
  const logger = createLogger({ level: 'silent' });
  const settings = {
    hot_path: { block_timeout: '1s' },
    cold_path: { enabled: false },
    peer_health: { ping_interval_sec: 1, idle_threshold_sec: 2 },
  };
  const a = await startNode(
    resolveConfig({
      replication: {
        local_node_id: 'node-a',
        settings,
        peers: [],
        cursor: { sqlite_path: join(dir, 'a.db') },
      },
      local: { redis_url: cluster.url },
      // With replicas, A acknowledges a write once its replica holds it (a killed master loses
      // nothing acknowledged, so everything acknowledged must reach B).
      store: replicas > 0 ? { wait_replicas: 1, wait_timeout: '1s' } : {},
      http: { enabled: false },
    }),
    { logger },
  );
  cleanups.push(() => a.stop());
  const b = await startNode(
    resolveConfig({
      replication: {
        local_node_id: 'node-b',
        settings:
          path === 'hot'
            ? settings
            : { ...settings, hot_path: { enabled: false }, cold_path: { interval_sec: 1 } },
        peers: [{ node_id: 'node-a', redis_url: cluster.url }],
        cursor: { sqlite_path: join(dir, 'b.db') },
      },
      local: { redis_url: single.url },
      http: { enabled: false },
    }),
    { logger },
  );
  cleanups.push(() => b.stop());
  return { cluster, a, b };
}

/**
 * Writes documents on node A (every tenth twice) until `until` settles and `atLeast` are written;
 * a write the cluster refuses mid-fault is tried again until it is acknowledged.
 */
async function write(
  a: RunningNode,
  tag: string,
  atLeast: number,
  until: Promise<unknown>,
): Promise<Map<string, number>> {
  let done = false;
  void until.finally(() => (done = true));
  const versions = new Map<string, number>();
  for (let i = 0; !done || i < atLeast; i++) {
    const key = `${tag}.doc-${i}`;
    for (let t = 0; t < (i % 10 === 0 ? 2 : 1); t++) {
      for (;;) {
        try {
          versions.set(key, (await a.store.put(key, { i, t })).record.version);
          break;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    }
  }
  return versions;
}

/** True once node B holds every key at exactly the version A last wrote. */
async function holds(b: RunningNode, versions: Map<string, number>): Promise<boolean> {
  const keys = [...versions.keys()];
  const records = await b.store.getRecords(keys).catch(() => []);
  return records.length === keys.length && records.every((r) => r.version === versions.get(r.key));
}

function masterIds(nodes: string): string[] {
  return nodes
    .split('\n')
    .filter((l) => /master/.test(l.split(' ')[2] ?? ''))
    .map((l) => l.split(' ')[0]!);
}

/**
 * Once B is connected to A, moves half of one of A's masters' slots (hence several of its
 * partitions) to another master, live (`redis-cli --cluster reshard`); resolves once healthy.
 */
async function reshardWhenConnected(cluster: RedisCluster, b: RunningNode): Promise<void> {
  await eventually(async () => b.engine.health().peers[0]!.connected, 'B is connected to A');
  const [from, to] = masterIds(await redisCli(cluster.servers[0]!.port, 'CLUSTER', 'NODES'));
  await run(
    'redis-cli',
    [
      '--cluster',
      'reshard',
      `127.0.0.1:${cluster.servers[0]!.port}`,
      '--cluster-from',
      from!,
      '--cluster-to',
      to!,
      '--cluster-slots',
      '2730',
      '--cluster-yes',
      '--cluster-pipeline',
      '10',
    ],
    { timeout: 120_000 },
  );
  await cluster.waitHealthy(30_000);
}

describe('tailing a cluster peer through its own faults (hot path alone)', () => {
  it('loses nothing while a master of the peer fails over to its replica', async () => {
    const { cluster, a, b } = await setUp(1);
    const failover = (async () => {
      await eventually(async () => b.engine.health().peers[0]!.connected, 'B is tailing A');
      const nodes = await redisCli(cluster.servers[0]!.port, 'CLUSTER', 'NODES');
      const replica = nodes.split('\n').find((l) => /slave/.test(l.split(' ')[2] ?? ''))!;
      const port = Number(replica.split(' ')[1]!.split('@')[0]!.split(':')[1]);
      await redisCli(port, 'CLUSTER', 'FAILOVER');
      await eventually(
        async () => (await cluster.roles()).get(port) === 'master',
        'the replica took over',
        30_000,
      );
      await cluster.waitHealthy(30_000);
    })();
    const versions = await write(a, 'failover', 2000, failover);
    await failover;
    await eventually(() => holds(b, versions), 'every write of A, as written', 90_000);
  });

  it('loses nothing acknowledged while a master of the peer is killed with SIGKILL', async () => {
    const { cluster, a, b } = await setUp(1);
    const crash = (async () => {
      await eventually(async () => b.engine.health().peers[0]!.connected, 'B is tailing A');
      const lines = (await redisCli(cluster.servers[0]!.port, 'CLUSTER', 'NODES')).split('\n');
      const replica = lines.find((l) => /slave/.test(l.split(' ')[2] ?? ''))!;
      const masterId = replica.split(' ')[3]!;
      const portOf = (line: string): number =>
        Number(line.split(' ')[1]!.split('@')[0]!.split(':')[1]);
      const victim = cluster.servers.find(
        (s) => s.port === portOf(lines.find((l) => l.startsWith(masterId))!),
      )!;
      await victim.kill();
      await eventually(
        async () => (await cluster.roles()).get(portOf(replica)) === 'master',
        'the replica of the killed master took over',
        30_000,
      );
      await victim.restart(); // back as a replica (nodes.conf): its shard can WAIT again
      await cluster.waitHealthy(30_000);
    })();
    const versions = await write(a, 'killed', 2000, crash);
    await crash;
    await eventually(() => holds(b, versions), 'every acknowledged write of A', 90_000);
  });

  it('loses nothing while slots of the peer migrate under its partition streams', async () => {
    const { cluster, a, b } = await setUp(0);
    const reshard = reshardWhenConnected(cluster, b);
    const versions = await write(a, 'reshard', 2000, reshard);
    await reshard;
    await eventually(() => holds(b, versions), 'every write of A, as written', 90_000);
    const peer = b.engine.health().peers[0]!;
    assert.equal(peer.partitions?.count, 16);
    assert.equal(peer.partitions?.failing, 0);
  });
});

describe('repairing from a cluster peer through its own faults (cold path alone)', () => {
  it('loses nothing while slots of the peer migrate under its tree and records', async () => {
    const { cluster, a, b } = await setUp(0, 'cold');
    const reshard = reshardWhenConnected(cluster, b);
    const versions = await write(a, 'repair', 1000, reshard);
    await reshard;
    // Repairs ran every second throughout: their reads were MOVED and ASKed mid-migration.
    await eventually(() => holds(b, versions), 'every write of A, as written, by repair', 90_000);
  });
});
