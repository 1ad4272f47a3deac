/**
 * The admin server caps its connections (issue 19): a flood of idle sockets against a daemon whose
 * file descriptors are limited (`ulimit -n 256`) must neither exhaust them nor lock out /health.
 * At the cap the oldest idle connection is closed for the new one, and idle connections are closed
 * after 10 s. Without the cap the daemon accepted sockets until EMFILE and /health stopped
 * answering. Real daemon, real sockets.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { MAX_CONNECTIONS } from '../../src/observability/http.js';
import { startDaemon, type Daemon } from '../fixtures/cli/cli-process.js';
import { eventually, freePort, startRedis, type RedisServer } from '../helpers/redis-server.js';

const FLOOD = 600;

describe('admin HTTP under an idle-connection flood', { timeout: 120_000 }, () => {
  let dir: string;
  let redis: RedisServer;
  let daemon: Daemon;
  let port: number;
  const flood: Socket[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'http-flood-'));
    redis = await startRedis();
    port = await freePort();
    const file = join(dir, 'node.yaml');
    writeFileSync(
      file,
      [
        'replication:',
        '  local_node_id: "node-flood"',
        '  peers: []',
        '  cursor:',
        `    sqlite_path: "${join(dir, 'cursors.db')}"`,
        'local:',
        `  redis_url: "${redis.url}"`,
        'http:',
        `  port: ${port}`,
        '',
      ].join('\n'),
    );
    daemon = startDaemon(['-c', file], { shell: 'ulimit -n 256' });
    await daemon.waitForLog((l) => l['msg'] === 'running', 'the daemon running');
  });

  after(async () => {
    for (const socket of flood) socket.destroy();
    if (daemon.child.exitCode === null) daemon.child.kill('SIGKILL');
    await daemon.exited;
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** GET /health on a new connection (a pooled one would have been opened before the flood). */
  function healthStatus(): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = get(
        { host: '127.0.0.1', port, path: '/health', agent: false, timeout: 3000 },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('timeout', () => req.destroy(new Error('/health did not answer within 3 s')));
      req.on('error', reject);
    });
  }

  it(`${FLOOD} idle sockets: /health still answers, at most ${MAX_CONNECTIONS} stay open, idle ones close`, async () => {
    assert.equal(await healthStatus(), 200);
    let closedByServer = 0;
    await Promise.all(
      Array.from(
        { length: FLOOD },
        () =>
          new Promise<void>((resolve) => {
            const socket = connect(port, '127.0.0.1', () => resolve());
            socket.on('error', () => resolve());
            socket.on('close', () => {
              closedByServer += 1;
              resolve();
            });
            flood.push(socket);
          }),
      ),
    );
    const started = Date.now();
    const status = await healthStatus();
    console.log(
      `# /health answered ${status} in ${Date.now() - started} ms with ${FLOOD} idle sockets`,
    );
    assert.equal(status, 200);
    await eventually(
      () => FLOOD - closedByServer <= MAX_CONNECTIONS,
      `at most ${MAX_CONNECTIONS} flood sockets left open`,
    );
    await eventually(() => closedByServer === FLOOD, 'idle sockets closed', 20_000);
    assert.equal(await healthStatus(), 200);
    assert.equal(daemon.child.exitCode, null, 'the daemon still runs');
  });
});
