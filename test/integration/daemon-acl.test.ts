/**
 * The least-privilege ACL docs/OPERATIONS.md gives for peers is enough: a daemon replicates from a
 * peer through that user, by the hot path and by a cold-path repair, and nothing is refused.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import { runCli, startDaemon, type Daemon } from '../fixtures/cli/cli-process.js';
import { documentedPeerAcl, writePeerDaemonConfig } from '../helpers/peer-acl.js';
import { eventually, freePort, startRedis, type RedisServer } from '../helpers/redis-server.js';

const PASSWORD = 'peer-pass-0123';

describe('the documented peer ACL', { timeout: 120_000 }, () => {
  let dir: string;
  let local: RedisServer;
  let peer: RedisServer;
  let daemon: Daemon;
  let file: string;
  let httpUrl: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'daemon-acl-'));
    [local, peer] = await Promise.all([startRedis(), startRedis()]);
    const admin = createClient({ url: peer.url });
    await admin.connect();
    assert.equal(await admin.sendCommand(documentedPeerAcl(PASSWORD, 'single')), 'OK');
    await admin.close();
    const port = await freePort();
    httpUrl = `http://127.0.0.1:${port}`;
    file = join(dir, 'a.yaml');
    writePeerDaemonConfig(file, {
      peerAddress: `127.0.0.1:${peer.port}`,
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
    await Promise.all([local?.stop(), peer?.stop()]);
    rmSync(dir, { recursive: true, force: true });
    delete process.env['PEER_PASSWORD'];
  });

  const onPeer = ['--redis', '', '--node-id', 'node-b'];

  it('replicates by the hot path through the read-only user', async () => {
    onPeer[1] = peer.url;
    const put = await runCli(['put', 'uk.acl.hot', 'hot', ...onPeer]);
    assert.equal(put.code, 0, put.stderr);
    await eventually(
      async () => {
        const r = await runCli(['get', 'uk.acl.hot', '-c', file]);
        return r.code === 0 && r.stdout.toString() === 'hot';
      },
      'the hot-path copy on A',
      30_000,
    );
  });

  it('repairs by the cold path through the read-only user', async () => {
    const pause = await runCli(['pause', '--peer', 'node-b', '--url', httpUrl]);
    assert.equal(pause.code, 0, pause.stderr);
    for (let i = 0; i < 5; i += 1) {
      const put = await runCli(['put', `uk.acl.cold.${i}`, `cold ${i}`, ...onPeer]);
      assert.equal(put.code, 0, put.stderr);
    }
    const dry = await runCli(['repair', '--peer', 'node-b', '--dry-run', '--url', httpUrl]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout.toString(), /dry run: 5 key\(s\) would change/);
    const repair = await runCli(['repair', '--peer', 'node-b', '--url', httpUrl]);
    assert.equal(repair.code, 0, repair.stderr);
    assert.match(repair.stdout.toString(), /repaired: 5 pulled of 5 that differed/);
    const get = await runCli(['get', 'uk.acl.cold.4', '-c', file]);
    assert.equal(get.stdout.toString(), 'cold 4');
  });

  it('nothing was refused, and the password never appears', () => {
    assert.doesNotMatch(daemon.output(), /NOPERM|NOAUTH|WRONGPASS/);
    assert.doesNotMatch(daemon.output(), new RegExp(PASSWORD));
  });
});
