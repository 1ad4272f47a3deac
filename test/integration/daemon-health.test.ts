/**
 * Health is the truth (SPEC §8): a daemon whose own Redis is down, whose cursors cannot be
 * committed, or whose tailer makes no progress answers 503 on /health and `status` exits 1, with
 * the reason and the time of each error; errors clear when the peer or the local Redis is back.
 * Real redis-servers and real daemons (`run -c FILE`); faults are real (killed servers, a file
 * size limit on the daemon, a store that asks to pause).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import type { EngineHealth } from '../../src/observability/health.js';
import { SyncStore } from '../../src/store/sync-store.js';
import {
  runCli,
  startDaemon,
  type Daemon,
  type DaemonOptions,
} from '../fixtures/cli/cli-process.js';
import { eventually, freePort, startRedis, type RedisServer } from '../helpers/redis-server.js';

interface Node {
  readonly file: string;
  readonly port: number;
  readonly daemon: Daemon;
}

let dir: string;
const servers: RedisServer[] = [];
const daemons: Daemon[] = [];

async function redis(): Promise<RedisServer> {
  const server = await startRedis();
  servers.push(server);
  return server;
}

async function startNode(
  name: string,
  local: RedisServer,
  peer: RedisServer,
  extra: { store?: string; daemon?: DaemonOptions } = {},
): Promise<Node> {
  const port = await freePort();
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    [
      'replication:',
      `  local_node_id: "${name}"`,
      '  settings:',
      '    hot_path:',
      '      block_timeout: "200ms"',
      '    cold_path:',
      '      enabled: false',
      '    peer_health:',
      '      ping_interval_sec: 1',
      '      idle_threshold_sec: 1',
      '    slo:',
      '      max_replication_lag_sec: 1',
      '  peers:',
      '    - node_id: "node-a"',
      `      redis_url: "${peer.url}"`,
      '      circuit_failure_threshold: 2',
      '      circuit_reset_timeout_sec: 1',
      '  cursor:',
      `    sqlite_path: "${join(dir, `${name}-cursors.db`)}"`,
      'local:',
      `  redis_url: "${local.url}"`,
      ...(extra.store === undefined ? [] : ['store:', extra.store]),
      'http:',
      `  port: ${port}`,
      '',
    ].join('\n'),
  );
  const daemon = startDaemon(['-c', file], extra.daemon);
  daemons.push(daemon);
  await daemon.waitForLog((l) => l['msg'] === 'running', `${name} running`);
  return { file, port, daemon };
}

async function health(node: Node): Promise<{ status: number; body: EngineHealth }> {
  const res = await fetch(`http://127.0.0.1:${node.port}/health`);
  return { status: res.status, body: (await res.json()) as EngineHealth };
}

async function until(
  node: Node,
  check: (h: { status: number; body: EngineHealth }) => boolean,
  what: string,
  timeoutMs = 15_000,
): Promise<{ status: number; body: EngineHealth }> {
  let last: { status: number; body: EngineHealth } | undefined;
  await eventually(
    async () => {
      last = await health(node);
      return check(last);
    },
    what,
    timeoutMs,
  );
  return last!;
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'daemon-health-'));
});

after(async () => {
  for (const d of daemons) if (d.child.exitCode === null) d.child.kill('SIGKILL');
  await Promise.all(daemons.map((d) => d.exited));
  await Promise.all(servers.map((s) => s.stop()));
  rmSync(dir, { recursive: true, force: true });
});

describe('daemon health', { timeout: 180_000 }, () => {
  let peer: RedisServer;
  let writer: SyncStore;

  before(async () => {
    peer = await redis();
    writer = await SyncStore.connect({ redisUrl: peer.url, nodeId: 'node-a' });
  });

  after(async () => {
    await writer.close();
  });

  it('the local Redis down: 503, status exits 1, a local section with the error and since when; back: 200', async () => {
    const local = await redis();
    const node = await startNode('node-b', local, peer);
    await until(node, (h) => h.status === 200, 'healthy at first');

    const killedAt = Date.now();
    await local.kill();
    const down = await until(node, (h) => h.status === 503, '503 with the local Redis down', 5_000);
    const tookMs = Date.now() - killedAt;
    console.log(`# /health 503 ${tookMs} ms after the local Redis was killed`);
    assert.equal(down.body.healthy, false);
    assert.equal(down.body.local.connected, false);
    assert.ok(down.body.local.last_error, 'the local error is shown');
    assert.ok(
      down.body.local.last_error_at_ms !== null && down.body.local.last_error_at_ms >= killedAt,
      'with its time',
    );
    assert.ok(down.body.local.since_ms !== null && down.body.local.since_ms >= killedAt);
    assert.match(down.body.problems.join('\n'), /the local Redis does not answer/);
    const ready = await fetch(`http://127.0.0.1:${node.port}/ready`);
    assert.equal(ready.status, 503, '/ready too');
    const status = await runCli(['status', '-c', node.file]);
    assert.equal(status.code, 1, status.stderr);
    assert.match(status.stdout.toString(), /healthy no/);
    assert.match(status.stdout.toString(), /local redis: UNREACHABLE for /);
    assert.equal(await localStoreUp(node.port), 0, 'replication_local_store_up 0 for alerts');

    await local.restart();
    const back = await until(node, (h) => h.status === 200, '200 once the local Redis is back');
    assert.equal(await localStoreUp(node.port), 1);
    assert.equal(back.body.local.connected, true);
    assert.equal(back.body.local.last_error, null, 'the error clears');
    assert.deepEqual(back.body.problems, []);
  });

  it('one JSON casing: /health, repair --json and resync --json have snake_case keys only', async () => {
    const local = await redis();
    const node = await startNode('node-f', local, peer);
    await until(node, (h) => h.status === 200, 'healthy');
    await writer.put('casing.1', { a: 1 });
    const keysOf = (value: unknown, path = ''): string[] => {
      if (Array.isArray(value)) return value.flatMap((v, i) => keysOf(v, `${path}[${i}]`));
      if (value === null || typeof value !== 'object') return [];
      return Object.entries(value).flatMap(([k, v]) => [
        `${path}.${k}`,
        ...keysOf(v, `${path}.${k}`),
      ]);
    };
    const notSnake = (value: unknown): string[] =>
      keysOf(value).filter((path) => !/^[a-z0-9_]+$/.test(path.slice(path.lastIndexOf('.') + 1)));
    const answers: Record<string, unknown> = { '/health': (await health(node)).body };
    for (const args of [['repair', '--dry-run'], ['repair'], ['resync']]) {
      const r = await runCli([...args, '--peer', 'node-a', '--json', '-c', node.file]);
      assert.equal(r.code, 0, r.stderr);
      answers[args.join(' ')] = JSON.parse(r.stdout.toString());
    }
    assert.ok(keysOf(answers['repair']).some((k) => k.endsWith('.divergent_keys')));
    for (const [what, answer] of Object.entries(answers))
      assert.deepEqual(notSnake(answer), [], what);
  });

  it('a peer down: its error carries its time; once it is back the error clears', async () => {
    const local = await redis();
    const node = await startNode('node-c', local, peer);
    await until(node, (h) => h.status === 200, 'healthy at first');
    const killedAt = Date.now();
    await peer.kill();
    const down = await until(
      node,
      (h) => h.status === 503 && h.body.peers[0]?.last_error !== null,
      'the peer error',
    );
    const p = down.body.peers[0]!;
    assert.equal(p.healthy, false);
    assert.ok(
      p.last_error_at_ms !== null && p.last_error_at_ms >= killedAt,
      'the error has a time',
    );
    assert.ok(p.last_error_at_ms <= down.body.timestamp_ms);
    const status = await runCli(['status', '-c', node.file]);
    assert.match(status.stdout.toString(), /node-a \([^)]*ago\): /, 'status shows when');

    await peer.restart();
    const back = await until(node, (h) => h.status === 200, 'healthy once the peer is back');
    assert.equal(back.body.peers[0]?.last_error, null);
    assert.equal(back.body.peers[0]?.last_error_at_ms, null);
    const text = (await runCli(['status', '-c', node.file])).stdout.toString();
    assert.doesNotMatch(text, /errors:/);
  });

  it('cursor commits failing (a file size limit on the daemon): 503 with the commit failures', async () => {
    const local = await redis();
    // 256 KiB per file: the cursor database's WAL grows by a page per commit, so after some
    // dozens of batches every commit fails (SQLITE_IOERR_WRITE), as on a full or read-only disk.
    const node = await startNode('node-d', local, peer, { daemon: { shell: 'ulimit -f 512' } });
    await until(node, (h) => h.status === 200, 'healthy at first');
    let i = 0;
    const failing = await until(
      node,
      (h) => {
        if (h.body.peers[0]?.commit_failures === 0) {
          // One write per poll: each becomes its own batch, and its own commit.
          void writer.put(`k.${i++}`, { i });
          return false;
        }
        return true;
      },
      'cursor commits failing',
      60_000,
    );
    console.log(`# cursor commits failed after ${i} writes`);
    assert.equal(failing.status, 503);
    const p = failing.body.peers[0]!;
    assert.equal(p.healthy, false);
    assert.match(p.problems.join('\n'), /cursor commits failing \(\d+ in a row\)/);
    assert.ok(p.last_error, 'the commit error is shown');
    assert.equal(failing.body.healthy, false);
  });

  it('no progress (the local store asks to pause): 503 once the lag exceeds its SLO with no commit', async () => {
    const local = await redis();
    // max_memory_bytes: 1 makes the local store refuse writes for as long as it runs.
    const node = await startNode('node-e', local, peer, { store: '  max_memory_bytes: 1' });
    await writer.put('stalled.1', { stalled: true });
    // Wait for the no-progress verdict itself: right after start a 503 can also mean the peer is
    // not connected yet.
    const stalled = await until(
      node,
      (h) =>
        h.status === 503 &&
        (h.body.peers[0]?.problems ?? []).some((problem) => problem.includes('no progress')),
      '503 with no progress',
      20_000,
    );
    const p = stalled.body.peers[0]!;
    assert.equal(p.connected, true, 'connected: only the progress is missing');
    assert.equal(p.circuit_state, 'closed');
    assert.ok((p.lag_events ?? 0) > 0);
    assert.match(p.problems.join('\n'), /no progress: lag .* and no cursor commit for /);
  });
});

/** The value of `replication_local_store_up` on a daemon's /metrics. */
async function localStoreUp(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('replication_local_store_up '));
  assert.ok(line, 'replication_local_store_up is exported');
  return Number(line.split(' ')[1]);
}
