/**
 * `store.wait_replicas` (issue 22): a write is acknowledged only once that many replicas of the
 * master that took it confirm it (`WAIT`); one not confirmed in time is reported as written but
 * not durable (NotDurableError), never acknowledged. On a real replica of a single instance, and
 * on a real 3-master cluster with a replica each, where WAIT must go to the master of the key.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { redisCli, startRedisCluster, type RedisCluster } from '../../src/cli/redis-cluster.js';
import { NotDurableError } from '../../src/errors.js';
import { createClusterConnection } from '../../src/redis/connect.js';
import { PartitionedStore } from '../../src/store/partitioned-store.js';
import { SyncStore } from '../../src/store/sync-store.js';
import { record } from './cold-path-support.js';
import { eventually, startRedis, type RedisServer } from '../helpers/redis-server.js';

const DURABLE = { waitReplicas: 1, waitTimeoutMs: 300 };

describe('durable writes on a single instance with a replica', () => {
  let master: RedisServer;
  let replica: RedisServer;
  let store: SyncStore;

  before(async () => {
    master = await startRedis();
    replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(master.port)] });
    await eventually(
      async () => /master_link_status:up/.test(await redisCli(replica.port, 'INFO', 'replication')),
      'the replica is in sync',
    );
    store = await SyncStore.connect({ redisUrl: master.url, nodeId: 'node-a', store: DURABLE });
  });

  after(async () => {
    await store?.close();
    await replica?.stop();
    await master?.stop();
  });

  it('acknowledges a write the replica holds, and refuses to acknowledge one it does not', async () => {
    const { record: first } = await store.put('k', { n: 1 });
    assert.equal(first.version, 1);
    assert.equal(await redisCli(replica.port, 'EXISTS', store.keys.item('k')), '1');

    await replica.kill();
    const error = await store.put('k', { n: 2 }).then(
      () => assert.fail('acknowledged without a replica'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof NotDurableError, String(error));
    assert.equal(error.code, 'NOT_DURABLE');
    assert.equal(error.replicas, 0);
    assert.match(error.message, /only 0 of 1 replicas confirmed it within 300 ms/);
    // Written, not durable: the master has it.
    assert.equal((await store.get('k'))?.version, 2);
    // Replicated applies are not acknowledged either (the hot path then keeps its cursor).
    await assert.rejects(() => store.apply([record('r')]), NotDurableError);
  });
});

describe('durable writes on a Redis Cluster with a replica per master', () => {
  let dir: string;
  let cluster: RedisCluster;
  let connection: ReturnType<typeof createClusterConnection>;
  let store: PartitionedStore;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'repl-durable-'));
    cluster = await startRedisCluster(dir, { replicasPerMaster: 1, appendfsync: 'no' });
    connection = createClusterConnection({ url: cluster.url, reconnectDelay: () => 100 });
    await connection.client.connect();
    store = await PartitionedStore.open(connection.sender, { nodeId: 'node-c', store: DURABLE });
  });

  after(async () => {
    await connection?.client.close();
    await cluster?.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  it('waits on the master of each key: a replica down fails only the writes of its master', async () => {
    for (let i = 0; i < 50; i++) await store.put(`doc-${i}`, { i });

    // The master of partition 0's slot, and its replica.
    const slot = Number(
      await redisCli(cluster.servers[0]!.port, 'CLUSTER', 'KEYSLOT', store.partitions[0]!.keys.cdc),
    );
    const nodes = (await redisCli(cluster.servers[0]!.port, 'CLUSTER', 'NODES')).split('\n');
    const masterLine = nodes.find((line) => {
      const [, , flags, , , , , , ...slots] = line.split(' ');
      return /master/.test(flags ?? '') && slots.some((range) => inRange(range, slot));
    })!;
    const masterId = masterLine.split(' ')[0]!;
    const replicaPort = Number(
      nodes
        .find((line) => line.split(' ')[3] === masterId)!
        .split(' ')[1]!
        .split(':')[1]!
        .split('@')[0],
    );
    await cluster.servers.find((s) => s.port === replicaPort)!.kill();

    const onThatMaster = keyIn(store, true);
    const elsewhere = keyIn(store, false);
    await assert.rejects(() => store.put(onThatMaster, 'x'), NotDurableError);
    // Another master's replica is up: its write is acknowledged (WAIT went to its own master).
    const slotOf = async (key: string): Promise<number> =>
      Number(
        await redisCli(
          cluster.servers[0]!.port,
          'CLUSTER',
          'KEYSLOT',
          store.partitionOf(key).keys.cdc,
        ),
      );
    const other = await slotOf(elsewhere);
    assert.ok(
      !masterLine
        .split(' ')
        .slice(8)
        .some((range) => inRange(range, other)),
    );
    assert.equal((await store.put(elsewhere, 'y')).record.version, 1);
  });
});

function inRange(range: string, slot: number): boolean {
  const [from, to] = range.split('-').map(Number);
  return from !== undefined && slot >= from && slot <= (to ?? from);
}

/** A key of partition 0 (`near`), or of a partition in the second half of the slots. */
function keyIn(store: PartitionedStore, near: boolean): string {
  for (let n = 0; ; n++) {
    const key = `probe-${n}`;
    const partition = store.partitions.indexOf(store.partitionOf(key));
    if (near ? partition === 0 : partition >= 8) return key;
  }
}
