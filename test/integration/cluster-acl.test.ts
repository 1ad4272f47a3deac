/**
 * The peer ACL docs/OPERATIONS.md gives for a Redis Cluster peer is enough: run on every node of
 * a real 3-master cluster, a daemon tails that peer's partition streams (hot path) and repairs
 * from its partitioned tree (cold path) through that user, and nothing is refused.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import { startRedisCluster, type RedisCluster } from '../../src/cli/redis-cluster.js';
import { createClusterConnection, type ClusterConnection } from '../../src/redis/connect.js';
import { PartitionedStore } from '../../src/store/partitioned-store.js';
import { runCli, startDaemon, type Daemon } from '../fixtures/cli/cli-process.js';
import { documentedPeerAcl, writePeerDaemonConfig } from '../helpers/peer-acl.js';
import { eventually, freePort, startRedis, type RedisServer } from '../helpers/redis-server.js';

const PASSWORD = 'cluster-peer-pass-0123';

describe('the documented ACL of a cluster peer', { timeout: 180_000 }, () => {
  let dir: string;
  let cluster: RedisCluster;
  let local: RedisServer;
  let peer: PartitionedStore;
  let connection: ClusterConnection;
  let daemon: Daemon;
  let file: string;
  let httpUrl: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cluster-acl-'));
    [cluster, local] = await Promise.all([
      startRedisCluster(join(dir, 'cluster'), { appendfsync: 'no' }),
      startRedis(),
    ]);
    for (const server of cluster.servers) {
      const admin = createClient({ url: `redis://127.0.0.1:${server.port}` });
      await admin.connect();
      assert.equal(await admin.sendCommand(documentedPeerAcl(PASSWORD, 'cluster')), 'OK');
      await admin.close();
    }
    // The peer's application, with the default user: its store on the cluster.
    connection = createClusterConnection({ url: cluster.url, reconnectDelay: () => 100 });
    await connection.client.connect();
    peer = await PartitionedStore.open(connection.sender, { nodeId: 'node-b', partitions: 16 });

    const port = await freePort();
    httpUrl = `http://127.0.0.1:${port}`;
    file = join(dir, 'a.yaml');
    writePeerDaemonConfig(file, {
      peerAddress: `127.0.0.1:${cluster.servers[0]!.port}`,
      localUrl: local.url,
      cursorPath: join(dir, 'cursors.db'),
      httpPort: port,
    });
    process.env['PEER_PASSWORD'] = PASSWORD;
    daemon = startDaemon(['-c', file]);
    await daemon.waitForLog((l) => l['msg'] === 'running', 'daemon running');
  });

  after(async () => {
    if (daemon !== undefined && daemon.child.exitCode === null) daemon.child.kill('SIGKILL');
    await connection?.client.close().catch(() => undefined);
    await Promise.all([cluster?.kill(), local?.stop()]);
    rmSync(dir, { recursive: true, force: true });
    delete process.env['PEER_PASSWORD'];
  });

  it("tails the cluster's partition streams through the read-only user", async () => {
    const keys = Array.from({ length: 40 }, (_, i) => `uk.acl.hot.${i}`);
    await peer.putMany(keys.map((key) => ({ key, content: `hot ${key}` })));
    await eventually(
      async () => {
        const r = await runCli(['get', keys[39]!, '-c', file]);
        return r.code === 0 && r.stdout.toString() === `hot ${keys[39]}`;
      },
      'the hot-path copy on A',
      60_000,
    );
    for (const key of [keys[0]!, keys[17]!]) {
      const r = await runCli(['get', key, '-c', file]);
      assert.equal(r.stdout.toString(), `hot ${key}`);
    }
  });

  it("repairs from the cluster's partitioned tree through the read-only user", async () => {
    const pause = await runCli(['pause', '--peer', 'node-b', '--url', httpUrl]);
    assert.equal(pause.code, 0, pause.stderr);
    const keys = Array.from({ length: 5 }, (_, i) => `uk.acl.cold.${i}`);
    await peer.putMany(keys.map((key) => ({ key, content: `cold ${key}` })));
    const dry = await runCli(['repair', '--peer', 'node-b', '--dry-run', '--url', httpUrl]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout.toString(), /dry run: 5 key\(s\) would change/);
    const repair = await runCli(['repair', '--peer', 'node-b', '--url', httpUrl]);
    assert.equal(repair.code, 0, repair.stderr);
    assert.match(repair.stdout.toString(), /repaired: 5 pulled of 5 that differed/);
    const get = await runCli(['get', keys[4]!, '-c', file]);
    assert.equal(get.stdout.toString(), `cold ${keys[4]}`);
  });

  it('nothing was refused, and the password never appears', () => {
    assert.doesNotMatch(daemon.output(), /NOPERM|NOAUTH|WRONGPASS/);
    assert.doesNotMatch(daemon.output(), new RegExp(PASSWORD));
  });
});
