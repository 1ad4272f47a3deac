/**
 * README.md's library example, run as written (the ```ts block is read from README.md at test
 * time, so the two cannot drift apart) against real redis-servers: this node's and its peer's.
 * It must connect, wait for its peer, repair (a dry run), and exit by itself: it used to throw
 * PeerUnavailableError (start() does not wait for peers) and never exit (the store stayed open).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';

import { resolveConfig } from '../../src/config/resolve.js';
import { ReplicationEngine } from '../../src/engine/engine.js';
import { createLogger } from '../../src/observability/logger.js';
import { SyncStore } from '../../src/store/sync-store.js';
import { REPO } from '../fixtures/cli/cli-process.js';
import { freePort, startRedis, type RedisServer } from '../helpers/redis-server.js';

/** The first ```ts block of README.md, importing the package from this checkout's source. */
function example(): string {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(code, 'README.md has a ```ts block');
  assert.match(code, /from 'replication-engine'/);
  const entry = pathToFileURL(join(REPO, 'src/index.ts')).href;
  return code.replaceAll("from 'replication-engine'", `from '${entry}'`);
}

describe("README.md's library example", { timeout: 60_000 }, () => {
  let dir: string;
  let local: RedisServer;
  let peer: RedisServer;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'readme-example-'));
    [local, peer] = await Promise.all([startRedis(), startRedis()]);
  });

  after(async () => {
    await Promise.all([local.stop(), peer.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs as written and exits 0 by itself', async () => {
    writeFileSync(join(dir, 'example.mts'), example());
    writeFileSync(
      join(dir, 'node.yaml'),
      [
        'replication:',
        '  local_node_id: "uk.node.london-1"',
        '  peers:',
        '    - node_id: "uk.node.manchester-1"',
        `      redis_url: "${peer.url}"`,
        '  cursor:',
        `    sqlite_path: "${join(dir, 'cursors.db')}"`,
        'local:',
        `  redis_url: "${local.url}"`,
        '',
      ].join('\n'),
    );
    const tsx = import.meta.resolve('tsx');
    const child = spawn(process.execPath, ['--import', tsx, 'example.mts'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(null);
      }, 30_000);
      child.once('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    assert.notEqual(code, null, `the example did not exit within 30 s:\n${stdout}\n${stderr}`);
    assert.equal(code, 0, `${stderr}\n${stdout}`.slice(-3000));
    assert.match(stdout, /peers_connected: 1/, 'health printed once the peer was connected');
    assert.match(stdout, /dryRun|dry_run/, 'the dry-run report printed');
  });

  it('ready() rejects after its timeout, naming the peer that is not connected and why', async () => {
    const config = resolveConfig({
      replication: {
        local_node_id: 'uk.node.london-1',
        peers: [{ node_id: 'uk.node.down-1', redis_url: `redis://127.0.0.1:${await freePort()}` }],
        cursor: { sqlite_path: join(dir, 'ready-cursors.db') },
      },
      local: { redis_url: local.url, redis_prefix: 'ready:' },
    });
    const store = await SyncStore.connect({
      redisUrl: local.url,
      nodeId: 'uk.node.london-1',
      redisPrefix: 'ready:',
    });
    const engine = new ReplicationEngine(config, store, {
      logger: createLogger({ level: 'silent' }),
    });
    try {
      await engine.start();
      await assert.rejects(engine.ready({ timeoutMs: 500 }), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'NOT_READY');
        assert.match(
          error.message,
          /^not ready after 500 ms: peer uk\.node\.down-1 is not connected \(.*ECONNREFUSED/,
        );
        return true;
      });
      const stopped = engine.ready({ timeoutMs: 5000 });
      await engine.stop();
      await assert.rejects(stopped, /will not become ready/);
    } finally {
      await engine.stop();
      await store.close();
    }
  });
});
