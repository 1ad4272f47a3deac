/**
 * Two daemons as child processes (`replication-engine run -c x.yaml`), each with its own
 * redis-server: replication through the CLI, /metrics, /health, status, the admin commands,
 * SIGHUP reloads (invalid, then adding a third peer) and SIGTERM draining with cursors saved.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { runCli, startDaemon, type Daemon } from '../fixtures/cli/cli-process.js';
import { eventually, freePort, startRedis, type RedisServer } from '../helpers/redis-server.js';

interface NodeSpec {
  readonly id: string;
  readonly redis: RedisServer;
  readonly httpPort: number;
  readonly peers: readonly { id: string; url: string }[];
}

function yaml(dir: string, node: NodeSpec): string {
  const peers = node.peers
    .map(
      (p) =>
        `    - node_id: "${p.id}"\n      redis_url: "${p.url}"\n      circuit_failure_threshold: 2\n      circuit_reset_timeout_sec: 1\n`,
    )
    .join('');
  return [
    'replication:',
    `  local_node_id: "${node.id}"`,
    '  settings:',
    '    hot_path:',
    '      block_timeout: "500ms"',
    '    cold_path:',
    '      interval_sec: 2',
    '    peer_health:',
    '      ping_interval_sec: 1',
    '      idle_threshold_sec: 1',
    node.peers.length === 0 ? '  peers: []' : `  peers:\n${peers.trimEnd()}`,
    '  cursor:',
    `    sqlite_path: "${join(dir, `${node.id}-cursors.db`)}"`,
    'local:',
    `  redis_url: "${node.redis.url}"`,
    'http:',
    `  port: ${node.httpPort}`,
    '  token: "s3cret-token"',
    '',
  ].join('\n');
}

/** `name{labels} value` samples of one metric from Prometheus text. */
function samples(text: string, name: string): { labels: string; value: number }[] {
  const out: { labels: string; value: number }[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match?.[1] === name) out.push({ labels: match[2] ?? '', value: Number(match[3]) });
  }
  return out;
}

describe('two daemons', { timeout: 180_000 }, () => {
  let dir: string;
  let redisA: RedisServer;
  let redisB: RedisServer;
  let redisC: RedisServer;
  let a: NodeSpec;
  let b: NodeSpec;
  let daemonA: Daemon;
  let daemonB: Daemon;
  let fileA: string;
  let fileB: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'daemon-test-'));
    [redisA, redisB, redisC] = await Promise.all([startRedis(), startRedis(), startRedis()]);
    a = { id: 'node-a', redis: redisA, httpPort: await freePort(), peers: [] };
    b = { id: 'node-b', redis: redisB, httpPort: await freePort(), peers: [] };
    a = { ...a, peers: [{ id: b.id, url: redisB.url }] };
    b = { ...b, peers: [{ id: a.id, url: redisA.url }] };
    fileA = join(dir, 'a.yaml');
    fileB = join(dir, 'b.yaml');
    writeFileSync(fileA, yaml(dir, a));
    writeFileSync(fileB, yaml(dir, b));
    daemonA = startDaemon(['-c', fileA, '--log-level', 'debug']);
    daemonB = startDaemon(['-c', fileB]);
    await Promise.all([
      daemonA.waitForLog((l) => l['msg'] === 'running', 'daemon A running'),
      daemonB.waitForLog((l) => l['msg'] === 'running', 'daemon B running'),
    ]);
  });

  after(async () => {
    for (const d of [daemonA, daemonB]) {
      if (d !== undefined && d.child.exitCode === null) d.child.kill('SIGKILL');
    }
    await Promise.all([redisA, redisB, redisC].map((r) => r?.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  const url = (node: NodeSpec, path: string): string => `http://127.0.0.1:${node.httpPort}${path}`;

  it('put on A through the CLI, get on B returns it byte for byte', async () => {
    const bytes = Buffer.concat([randomBytes(300), Buffer.from('\n\0end')]);
    const put = await runCli(['put', 'uk.doc.binary', '-c', fileA], { input: bytes });
    assert.equal(put.code, 0, put.stderr);
    const json = await runCli(['put', 'uk.doc.json', '{"hello":"world"}', '-c', fileA]);
    assert.equal(json.code, 0, json.stderr);
    let got: Buffer = Buffer.alloc(0);
    await eventually(
      async () => {
        const r = await runCli(['get', 'uk.doc.binary', '-c', fileB]);
        got = r.stdout;
        return r.code === 0;
      },
      'the document on B',
      30_000,
    );
    assert.ok(got.equals(bytes));
    const r = await runCli(['get', 'uk.doc.json', '--json', '-c', fileB]);
    const record = JSON.parse(r.stdout.toString()) as Record<string, unknown>;
    assert.equal(record['origin'], 'node-a');
    assert.equal(record['content'], '{"hello":"world"}');
  });

  it('/metrics on B parses and counts the applied events', async () => {
    const res = await fetch(url(b, '/metrics'));
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    const text = await res.text();
    assert.match(text, /# TYPE replication_cdc_events_applied_total counter/);
    const applied = samples(text, 'replication_cdc_events_applied_total');
    const fromA = applied.filter((s) => s.labels.includes('peer_id="node-a"'));
    assert.ok(fromA.reduce((n, s) => n + s.value, 0) >= 2, JSON.stringify(applied));
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      assert.match(line, /^[a-z_:]+(\{.*\})? -?[0-9.e+-]+|NaN|\+Inf$/, line);
    }
  });

  it('/health answers 200, and status prints it and exits 0', async () => {
    await eventually(async () => (await fetch(url(a, '/health'))).status === 200, 'A healthy');
    const health = (await (await fetch(url(a, '/health'))).json()) as Record<string, unknown>;
    assert.equal(health['node_id'], 'node-a');
    assert.equal((await fetch(url(a, '/ready'))).status, 200);
    const status = await runCli(['status', '-c', fileA]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout.toString(), /node node-a\s+state running\s+healthy yes/);
    assert.match(status.stdout.toString(), /node-b\s+yes\s+closed/);
    const json = await runCli(['status', '--url', url(a, ''), '--json']);
    assert.equal(json.code, 0);
    assert.equal((JSON.parse(json.stdout.toString()) as { healthy: boolean }).healthy, true);
  });

  it('admin commands go through the HTTP API with the token', async () => {
    const pause = await runCli(['pause', '--peer', 'node-b', '-c', fileA]);
    assert.equal(pause.code, 0, pause.stderr);
    assert.match(pause.stdout.toString(), /node-b: paused/);
    const resume = await runCli([
      'resume',
      '--peer',
      'node-b',
      '--url',
      url(a, ''),
      '--token',
      's3cret-token',
    ]);
    assert.equal(resume.code, 0, resume.stderr);
    const dry = await runCli(['repair', '--peer', 'node-b', '--dry-run', '--url', url(a, '')], {
      env: { REPLICATION_ENGINE_TOKEN: 's3cret-token' },
    });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout.toString(), /in sync|dry run/);
    const wrong = await runCli([
      'pause',
      '--peer',
      'node-b',
      '--url',
      url(a, ''),
      '--token',
      'nope',
    ]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /invalid bearer token \(HTTP 401\)/);
    const unknown = await runCli(['resync', '--peer', 'node-z', '-c', fileA]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /node-z.*\(HTTP 404\)/);
    const noPeer = await runCli(['pause', '-c', fileA]);
    assert.equal(noPeer.code, 2);
  });

  it('status of nothing listening exits 2', async () => {
    const port = await freePort();
    const r = await runCli(['status', '--url', `http://127.0.0.1:${port}`]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /cannot reach the daemon.*ECONNREFUSED/);
  });

  it('SIGHUP with an invalid file is rejected, then adding a third peer replicates from it', async () => {
    let mark = daemonA.logs.length;
    writeFileSync(fileA, `${yaml(dir, a)}bogus_section: 1\n`);
    daemonA.child.kill('SIGHUP');
    const rejected = await daemonA.waitForLog(
      (l, i) => i >= mark && String(l['msg']).startsWith('reload rejected'),
      'reload rejected',
    );
    assert.match(String(rejected['err']), /bogus_section/);
    assert.equal((await fetch(url(a, '/health'))).status, 200, 'still running, healthy');

    const put = await runCli([
      'put',
      'uk.from.c',
      'hello from c',
      '--redis',
      redisC.url,
      '--node-id',
      'node-c',
    ]);
    assert.equal(put.code, 0, put.stderr);
    a = { ...a, peers: [...a.peers, { id: 'node-c', url: redisC.url }] };
    writeFileSync(fileA, yaml(dir, a));
    mark = daemonA.logs.length;
    daemonA.child.kill('SIGHUP');
    await daemonA.waitForLog((l, i) => i >= mark && l['msg'] === 'reloaded', 'reloaded');
    await eventually(
      async () => {
        const r = await runCli(['get', 'uk.from.c', '-c', fileA]);
        return r.code === 0 && r.stdout.toString() === 'hello from c';
      },
      'the document from C on A',
      30_000,
    );
    const peerLine = daemonA.logs.find((l) => l['peer_id'] === 'node-c');
    assert.ok(peerLine !== undefined, 'peer lines carry peer_id');
    assert.equal(daemonA.child.exitCode, null);
  });

  it("/health answers 503 once the peer's redis-server is killed; status exits 1", async () => {
    await redisB.kill();
    await eventually(
      async () => (await fetch(url(a, '/health'))).status === 503,
      'A unhealthy',
      30_000,
    );
    const status = await runCli(['status', '-c', fileA]);
    assert.equal(status.code, 1);
    assert.match(status.stdout.toString(), /healthy no/);
  });

  it('SIGTERM drains and exits 0 with the cursors saved', async () => {
    daemonA.child.kill('SIGTERM');
    const exit = await daemonA.exited;
    assert.deepEqual(exit, { code: 0, signal: null }, daemonA.output().slice(-3000));
    assert.ok(daemonA.logs.some((l) => l['msg'] === 'stopped'));
    const db = new Database(join(dir, 'node-a-cursors.db'), { readonly: true });
    try {
      const rows = db.prepare('SELECT peer_id, stream_id FROM cursors ORDER BY peer_id').all() as {
        peer_id: string;
        stream_id: string;
      }[];
      const byPeer = new Map(rows.map((r) => [r.peer_id, r.stream_id]));
      assert.match(byPeer.get('node-c') ?? '', /^\d+-\d+$/, JSON.stringify(rows));
    } finally {
      db.close();
    }
    daemonB.child.kill('SIGTERM');
    assert.deepEqual(
      await daemonB.exited,
      { code: 0, signal: null },
      daemonB.output().slice(-3000),
    );
    const dbB = new Database(join(dir, 'node-b-cursors.db'), { readonly: true });
    try {
      const row = dbB.prepare("SELECT stream_id FROM cursors WHERE peer_id = 'node-a'").get() as
        { stream_id: string } | undefined;
      assert.match(row?.stream_id ?? '', /^\d+-\d+$/, "B saved its cursor in node-a's stream");
    } finally {
      dbB.close();
    }
  });

  it('never logs a credential', () => {
    assert.doesNotMatch(daemonA.output(), /s3cret-token/);
    assert.doesNotMatch(daemonB.output(), /s3cret-token/);
  });
});
