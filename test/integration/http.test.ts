import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';

import {
  createLogger,
  createMetrics,
  startAdminServer,
  type AdminApi,
  type AdminServer,
  type EngineHealth,
  type Metrics,
} from '../../src/observability/index.js';
import { ReplicationError } from '../../src/errors.js';

const logger = createLogger({ level: 'silent' });

/** An AdminApi that records calls; peer `p1` exists, `boom` fails, others are unknown. */
function fakeAdmin(): AdminApi & { calls: string[] } {
  const calls: string[] = [];
  const check = (peerId: string): void => {
    if (peerId === 'boom') {
      throw new Error('XREAD failed on redis://admin:s3cret@peer:6379\n    at secret stack frame');
    }
    if (peerId !== 'p1' && peerId !== 'uk.node/odd id') {
      throw new ReplicationError('UNKNOWN_PEER', `unknown peer: ${peerId}`);
    }
  };
  return {
    calls,
    async pause(peerId) {
      check(peerId);
      calls.push(`pause ${peerId}`);
      return { peer_id: peerId, paused: true };
    },
    async resume(peerId) {
      check(peerId);
      calls.push(`resume ${peerId}`);
      return { peer_id: peerId, paused: false };
    },
    async resync(peerId) {
      check(peerId);
      calls.push(`resync ${peerId}`);
      return { peer_id: peerId, cursor: '0-0' };
    },
    async repair(peerId, { dryRun }) {
      check(peerId);
      calls.push(`repair ${peerId} dryRun=${dryRun}`);
      return { peer_id: peerId, dry_run: dryRun, changes: [{ key: 'a.b', action: 'put' }] };
    },
  };
}

function healthOf(healthy: boolean, ready: boolean): EngineHealth {
  return {
    healthy,
    ready,
    state: ready ? 'running' : 'connecting',
    node_id: 'n1',
    version: '0.1.0',
    uptime_ms: 1000,
    timestamp_ms: Date.now(),
    peers_connected: 1,
    peers_total: 1,
    peers: [
      {
        node_id: 'p1',
        url: 'redis://peer:6379',
        connected: true,
        circuit_state: 'closed',
        lag_ms: 5,
        lag_events: 0,
        catching_up: false,
        paused: false,
        cursor: '1-0',
        last_event_ms_ago: 10,
        last_success_ms_ago: 10,
        consecutive_errors: healthy ? 0 : 4,
        last_error: healthy ? null : 'NOAUTH on redis://u:s3cret@peer:6379',
        last_error_at_ms: healthy ? null : Date.now(),
        last_commit_at_ms: null,
        commit_failures: 0,
        healthy,
        problems: healthy ? [] : ['peer p1 is disconnected'],
        last_repair: null,
      },
    ],
    local: {
      connected: true,
      since_ms: null,
      last_ok_at_ms: null,
      last_error: null,
      last_error_at_ms: null,
    },
    problems: healthy ? [] : ['peer p1 is disconnected'],
    last_error: null,
    last_error_at_ms: null,
  };
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request on a fresh connection (so one test's sockets never affect another's). */
function call(
  server: AdminServer,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: Buffer,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: server.address.port, method, path, headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const json = (r: Reply): Record<string, unknown> => JSON.parse(r.body) as Record<string, unknown>;

/**
 * Checks the Prometheus text exposition format (0.0.4) line by line and returns the metric
 * families it declares, with their type.
 */
function parsePrometheus(text: string): Map<string, string> {
  const families = new Map<string, string>();
  const sample =
    /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$/;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type =
      /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      assert.ok(!families.has(type[1]!), `${type[1]} declared twice`);
      families.set(type[1]!, type[2]!);
      continue;
    }
    if (line.startsWith('# HELP ')) continue;
    const m = sample.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${line}`);
    const name = m[1]!;
    const family = [name, name.replace(/_(bucket|sum|count)$/, '')].find((n) => families.has(n));
    assert.ok(family, `sample ${name} before its # TYPE`);
  }
  return families;
}

describe('admin HTTP server on loopback', () => {
  let metrics: Metrics;
  let server: AdminServer;
  let admin: ReturnType<typeof fakeAdmin>;
  let current = healthOf(true, true);

  before(async () => {
    metrics = createMetrics();
    admin = fakeAdmin();
    server = await startAdminServer({
      host: '127.0.0.1',
      port: 0,
      metrics,
      health: () => current,
      admin,
      logger,
    });
  });
  after(() => server.close());

  it('binds the port it was given or a free one for 0', () => {
    assert.equal(server.address.host, '127.0.0.1');
    assert.ok(server.address.port > 0);
    assert.equal(server.url, `http://127.0.0.1:${server.address.port}`);
  });

  it('serves /metrics as Prometheus text with the seed metric names', async () => {
    metrics.lagMs.set({ peer_id: 'p1' }, 42);
    metrics.cdcEventsReadTotal.inc({ peer_id: 'p1' }, 7);
    metrics.applyLatencySeconds.observe({ peer_id: 'p1' }, 0.05);
    metrics.peerOperationDurationSeconds.observe({ peer_id: 'p1', operation: 'fetch' }, 0.002);
    metrics.engineState.set(2);
    const r = await call(server, 'GET', '/metrics');
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const families = parsePrometheus(r.body);
    const expected: [string, string][] = [
      ['replication_cdc_events_read_total', 'counter'],
      ['replication_lag_ms', 'gauge'],
      ['replication_peer_latency_seconds', 'histogram'],
      ['replication_engine_state', 'gauge'],
      ['replication_apply_latency_seconds', 'histogram'],
      ['replication_conflicts_total', 'counter'],
    ];
    for (const [name, type] of expected) assert.equal(families.get(name), type, name);
    assert.match(r.body, /^replication_lag_ms\{peer_id="p1"\} 42$/m);
    assert.match(r.body, /^replication_cdc_events_read_total\{peer_id="p1"\} 7$/m);
    assert.match(r.body, /^replication_peer_latency_seconds_count\{peer_id="p1"\} 1$/m);
    assert.match(r.body, /^replication_engine_state 2$/m);
  });

  it('answers /health 200 when healthy, 503 when not, JSON without credentials', async () => {
    current = healthOf(true, true);
    let r = await call(server, 'GET', '/health');
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^application\/json/);
    assert.equal(json(r)['node_id'], 'n1');
    assert.equal((json(r)['peers'] as { node_id: string }[])[0]?.node_id, 'p1');

    current = healthOf(false, true);
    r = await call(server, 'GET', '/health');
    assert.equal(r.status, 503);
    assert.equal(json(r)['healthy'], false);
    assert.doesNotMatch(r.body, /s3cret/);
  });

  it('answers /ready 200 when ready, 503 when not', async () => {
    current = healthOf(true, true);
    let r = await call(server, 'GET', '/ready');
    assert.equal(r.status, 200);
    assert.deepEqual(json(r), { ready: true, state: 'running' });
    current = healthOf(false, false);
    r = await call(server, 'GET', '/ready');
    assert.equal(r.status, 503);
    assert.deepEqual(json(r), { ready: false, state: 'connecting' });
    current = healthOf(true, true);
  });

  it('runs admin actions without a token on loopback', async () => {
    for (const action of ['pause', 'resume', 'resync']) {
      const r = await call(server, 'POST', `/peers/p1/${action}`);
      assert.equal(r.status, 200, action);
      assert.equal(json(r)['peer_id'], 'p1');
    }
    let r = await call(server, 'POST', '/peers/p1/repair?dry_run=1');
    assert.equal(r.status, 200);
    assert.equal(json(r)['dry_run'], true);
    r = await call(server, 'POST', '/peers/p1/repair');
    assert.equal(json(r)['dry_run'], false);
    r = await call(server, 'POST', `/peers/${encodeURIComponent('uk.node/odd id')}/pause`);
    assert.equal(r.status, 200);
    assert.deepEqual(admin.calls, [
      'pause p1',
      'resume p1',
      'resync p1',
      'repair p1 dryRun=true',
      'repair p1 dryRun=false',
      'pause uk.node/odd id',
    ]);
  });

  it('answers 404 for an unknown peer and an unknown route, 405 for a wrong method', async () => {
    let r = await call(server, 'POST', '/peers/nobody/pause');
    assert.equal(r.status, 404);
    assert.equal(json(r)['code'], 'UNKNOWN_PEER');
    r = await call(server, 'GET', '/nope');
    assert.equal(r.status, 404);
    assert.equal(json(r)['code'], 'NOT_FOUND');
    r = await call(server, 'POST', '/peers/p1/explode');
    assert.equal(r.status, 404);
    r = await call(server, 'GET', '/peers/p1/pause');
    assert.equal(r.status, 405);
    assert.equal(r.headers['allow'], 'POST');
    r = await call(server, 'POST', '/metrics');
    assert.equal(r.status, 405);
    assert.equal(r.headers['allow'], 'GET, HEAD');
    r = await call(server, 'POST', '/peers/p1/repair?dry_run=maybe');
    assert.equal(r.status, 400);
  });

  it('answers 500 without a stack trace or credentials when the engine fails', async () => {
    const r = await call(server, 'POST', '/peers/boom/resync');
    assert.equal(r.status, 500);
    assert.deepEqual(json(r), { error: 'internal error', code: 'INTERNAL' });
  });

  it('refuses bodies over 64 KiB', async () => {
    const r = await call(
      server,
      'POST',
      '/peers/p1/pause',
      { 'content-type': 'application/octet-stream' },
      Buffer.alloc(65 * 1024),
    );
    assert.equal(r.status, 413);
  });
});

describe('admin HTTP server with a token', () => {
  it('requires the bearer token on loopback once one is configured', async () => {
    const server = await startAdminServer({
      host: '127.0.0.1',
      port: 0,
      token: 'tok-123',
      metrics: createMetrics(),
      health: () => healthOf(true, true),
      admin: fakeAdmin(),
      logger,
    });
    try {
      assert.equal((await call(server, 'POST', '/peers/p1/pause')).status, 401);
      const ok = await call(server, 'POST', '/peers/p1/pause', {
        authorization: 'Bearer tok-123',
      });
      assert.equal(ok.status, 200);
      // Reads stay open: Prometheus and load balancers have no token.
      assert.equal((await call(server, 'GET', '/metrics')).status, 200);
    } finally {
      await server.close();
    }
  });
});

describe('admin HTTP server on a non-loopback address', () => {
  it('refuses admin POSTs when no token is configured, and says how to enable them', async () => {
    const admin = fakeAdmin();
    const server = await startAdminServer({
      host: '0.0.0.0',
      port: 0,
      metrics: createMetrics(),
      health: () => healthOf(true, true),
      admin,
      logger,
    });
    try {
      assert.equal(server.address.host, '0.0.0.0');
      const r = await call(server, 'POST', '/peers/p1/pause', { authorization: 'Bearer x' });
      assert.equal(r.status, 403);
      assert.match(String(json(r)['error']), /http\.token/);
      assert.deepEqual(admin.calls, []);
      assert.equal((await call(server, 'GET', '/health')).status, 200);
    } finally {
      await server.close();
    }
  });

  it('accepts admin POSTs with the right bearer token only', async () => {
    const admin = fakeAdmin();
    const server = await startAdminServer({
      host: '0.0.0.0',
      port: 0,
      token: 's3cret-token',
      metrics: createMetrics(),
      health: () => healthOf(true, true),
      admin,
      logger,
    });
    try {
      let r = await call(server, 'POST', '/peers/p1/pause');
      assert.equal(r.status, 401);
      assert.match(String(r.headers['www-authenticate']), /^Bearer/);
      r = await call(server, 'POST', '/peers/p1/pause', { authorization: 'Bearer wrong' });
      assert.equal(r.status, 401);
      r = await call(server, 'POST', '/peers/p1/pause', { authorization: 's3cret-token' });
      assert.equal(r.status, 401);
      r = await call(server, 'POST', '/peers/p1/pause', { authorization: 'Bearer s3cret-token' });
      assert.equal(r.status, 200);
      r = await call(server, 'POST', '/peers/nobody/pause', {
        authorization: 'Bearer s3cret-token',
      });
      assert.equal(r.status, 404);
      assert.deepEqual(admin.calls, ['pause p1']);
    } finally {
      await server.close();
    }
  });
});

describe('AdminServer.close', () => {
  it('resolves promptly with an idle keep-alive connection open, and twice', async () => {
    const server = await startAdminServer({
      port: 0,
      metrics: createMetrics(),
      health: () => healthOf(true, true),
      admin: fakeAdmin(),
      logger,
    });
    // fetch keeps its connection alive after the response.
    const res = await fetch(`${server.url}/ready`);
    assert.equal(res.status, 200);
    await res.text();
    const t0 = performance.now();
    await Promise.all([server.close(), server.close()]);
    assert.ok(performance.now() - t0 < 1000, 'close() took too long');
    await assert.rejects(fetch(`${server.url}/ready`));
  });

  it('cuts a request still in flight after the close timeout', async () => {
    let release: () => void = () => undefined;
    let markCalled: () => void = () => undefined;
    const called = new Promise<void>((resolve) => (markCalled = resolve));
    const server = await startAdminServer({
      port: 0,
      metrics: createMetrics(),
      health: () => {
        markCalled();
        return new Promise<EngineHealth>((resolve) => {
          release = () => resolve(healthOf(true, true));
        });
      },
      admin: fakeAdmin(),
      logger,
      closeTimeoutMs: 200,
    });
    const pending = call(server, 'GET', '/health').catch((err: unknown) => err);
    await called;
    const t0 = performance.now();
    await server.close();
    assert.ok(performance.now() - t0 < 1000, 'close() did not bound the wait');
    release();
    assert.ok((await pending) instanceof Error);
  });

  it('rejects with HTTP_LISTEN when the port is taken', async () => {
    const first = await startAdminServer({
      port: 0,
      metrics: createMetrics(),
      health: () => healthOf(true, true),
      admin: fakeAdmin(),
      logger,
    });
    try {
      await assert.rejects(
        startAdminServer({
          port: first.address.port,
          metrics: createMetrics(),
          health: () => healthOf(true, true),
          admin: fakeAdmin(),
          logger,
        }),
        (err: unknown) => err instanceof ReplicationError && err.code === 'HTTP_LISTEN',
      );
    } finally {
      await first.close();
    }
  });
});
