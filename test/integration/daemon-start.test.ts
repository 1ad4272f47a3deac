/**
 * What `run` finds at start, before it replicates anything: a cursor database it cannot write
 * (exit 1 with the path and the reason), a Redis that another node id owns (refused), an HTTP port
 * in use (a sentence on stderr, not only a JSON line), and TLS without certificate verification
 * (a warning at start and on every reload). Real daemons and redis-servers.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { CursorStore } from '../../src/engine/cursor-store.js';
import { startDaemon, type Daemon, type DaemonOptions } from '../fixtures/cli/cli-process.js';
import { freePort, startRedis, type RedisServer } from '../helpers/redis-server.js';

let dir: string;
let redis: RedisServer;
const daemons: Daemon[] = [];

function config(
  name: string,
  lines: { prefix: string; cursor?: string; port?: number; peers?: string[] },
): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    [
      'replication:',
      `  local_node_id: "${name}"`,
      ...(lines.peers === undefined ? ['  peers: []'] : ['  peers:', ...lines.peers]),
      '  cursor:',
      `    sqlite_path: "${lines.cursor ?? join(dir, `${name}-cursors.db`)}"`,
      'local:',
      `  redis_url: "${redis.url}"`,
      `  redis_prefix: "${lines.prefix}"`,
      'http:',
      `  port: ${lines.port ?? 0}`,
      '',
    ].join('\n'),
  );
  return file;
}

function daemon(file: string, options: DaemonOptions = {}): Daemon {
  const d = startDaemon(['-c', file], options);
  daemons.push(d);
  return d;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'daemon-start-'));
  chmodSync(dir, 0o777); // the read-only test runs its daemon as nobody
  redis = await startRedis();
});

after(async () => {
  for (const d of daemons) if (d.child.exitCode === null) d.child.kill('SIGKILL');
  await Promise.all(daemons.map((d) => d.exited));
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('run at start', { timeout: 120_000 }, () => {
  it('a cursor database it cannot write: exit 1 with its path and the reason, before tailing', async () => {
    const cursor = join(dir, 'read-only-cursors.db');
    CursorStore.open(cursor).close(); // a valid cursor file ...
    chmodSync(cursor, 0o444); // ... that can only be read
    const file = config('node-ro', { prefix: 'ro:', cursor });
    // Root writes whatever the mode says: run the daemon as nobody so the permissions hold.
    const asRoot = process.getuid?.() === 0;
    const d = daemon(file, asRoot ? { uid: 65534 } : {});
    const { code } = await d.exited;
    assert.equal(code, 1, d.output());
    const stderr = d.output();
    assert.match(stderr, /replication-engine run: failed to start: cannot open cursor store /);
    assert.ok(stderr.includes(cursor), 'names the path');
    assert.match(stderr, /cannot write to it \(attempt to write a readonly database\)/);
  });

  it('two node ids on one Redis: the second daemon is refused, naming the owner', async () => {
    const first = daemon(config('node-x', { prefix: 'shared:' }));
    await first.waitForLog((l) => l['msg'] === 'running', 'node-x running');
    const second = daemon(config('node-y', { prefix: 'shared:' }));
    const { code } = await second.exited;
    assert.equal(code, 1, second.output());
    assert.match(
      second.output(),
      /failed to start: this Redis \(prefix "shared:"\) belongs to node "node-x", not "node-y": two nodes must not share a store/,
    );
    assert.match(second.output(), /DEL shared:owner/);
    // The same id again is fine (a restart).
    first.child.kill('SIGTERM');
    assert.equal((await first.exited).code, 0);
    const again = daemon(config('node-x', { prefix: 'shared:' }));
    await again.waitForLog((l) => l['msg'] === 'running', 'node-x running again');
    again.child.kill('SIGTERM');
    assert.equal((await again.exited).code, 0);
  });

  it('its HTTP port in use: a sentence on stderr, exit 1', async () => {
    const port = await freePort();
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    try {
      const d = daemon(config('node-x', { prefix: 'port:', port }));
      const { code } = await d.exited;
      assert.equal(code, 1);
      assert.match(
        d.output(),
        new RegExp(
          `^replication-engine run: failed to start: cannot listen on 127\\.0\\.0\\.1:${port}: listen EADDRINUSE`,
          'm',
        ),
      );
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('reject_unauthorized: false logs a warning at start and on each reload', async () => {
    const peers = [
      '    - node_id: "node-tls"',
      `      redis_url: "rediss://127.0.0.1:${await freePort()}"`,
      '      tls:',
      '        reject_unauthorized: false',
    ];
    const file = config('node-x', { prefix: 'tls:', peers });
    const d = daemon(file);
    const warning = (l: Record<string, unknown>): boolean =>
      l['level'] === 'warn' &&
      String(l['msg']).startsWith(
        'TLS certificate verification is off for replication.peers["node-tls"]',
      );
    await d.waitForLog(warning, 'the warning at start');
    await d.waitForLog((l) => l['msg'] === 'running', 'running');
    d.child.kill('SIGHUP');
    await d.waitForLog((l) => l['msg'] === 'reloaded', 'the reload');
    assert.equal(d.logs.filter(warning).length, 2, 'once at start, once on the reload');
    d.child.kill('SIGTERM');
    assert.equal((await d.exited).code, 0);
  });
});
