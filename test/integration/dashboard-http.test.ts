/**
 * The admin server's dashboard routes: `/` (the page, self-contained, with a strict CSP) and
 * `/dashboard.json`, open on loopback whatever the token, and behind the token elsewhere (Bearer,
 * or Basic with the token as the password so a browser can ask for it; refused without a token).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

import {
  createLogger,
  createMetrics,
  startAdminServer,
  type AdminApi,
  type AdminServer,
  type EngineHealth,
} from '../../src/observability/index.js';
import type { DashboardData } from '../../src/observability/dashboard.js';
import { REPO } from '../fixtures/cli/cli-process.js';

const logger = createLogger({ level: 'silent' });

const admin: AdminApi = {
  pause: () => Promise.resolve({}),
  resume: () => Promise.resolve({}),
  resync: () => Promise.resolve({}),
  repair: () => Promise.resolve({}),
};

const health = (): EngineHealth => ({
  healthy: false,
  ready: true,
  state: 'running',
  node_id: 'n1',
  version: '0.1.0',
  uptime_ms: 1000,
  timestamp_ms: Date.now(),
  peers_connected: 0,
  peers_total: 1,
  peers: [
    {
      node_id: 'p1',
      url: 'redis://u:***@peer:6379',
      connected: false,
      circuit_state: 'open',
      lag_ms: 1500,
      lag_events: 12,
      catching_up: false,
      paused: false,
      cursor: '1-0',
      last_event_ms_ago: null,
      last_success_ms_ago: null,
      consecutive_errors: 3,
      last_error: 'NOAUTH on redis://u:s3cret@peer:6379',
      last_error_at_ms: Date.now(),
      last_commit_at_ms: null,
      commit_failures: 0,
      healthy: false,
      problems: ['peer p1 is disconnected'],
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
  problems: ['peer p1 is disconnected'],
  last_error: null,
  last_error_at_ms: null,
});

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(
  server: AdminServer,
  path: string,
  headers: Record<string, string> = {},
  method = 'GET',
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
    req.end();
  });
}

async function withServer(
  options: { host: string; token?: string },
  body: (server: AdminServer) => Promise<void>,
): Promise<void> {
  const server = await startAdminServer({
    ...options,
    port: 0,
    metrics: createMetrics(),
    health,
    admin,
    logger,
  });
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

const basic = (user: string, password: string): string =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('the dashboard on the admin server', () => {
  it('on loopback: the page and its data, no token asked even when one is set', async () => {
    await withServer({ host: '127.0.0.1', token: 's3cret-token' }, async (server) => {
      const page = await get(server, '/');
      assert.equal(page.status, 200);
      assert.match(String(page.headers['content-type']), /^text\/html/);
      const csp = String(page.headers['content-security-policy']);
      assert.match(csp, /default-src 'none'/);
      assert.match(csp, /connect-src 'self'/);
      assert.match(page.body, /<title>replication-engine<\/title>/);
      assert.match(page.body, /dashboard\.json/);
      // Self-contained: nothing is loaded from another origin (it must work offline).
      assert.doesNotMatch(page.body, /\b(src|href)=["']?(https?:)?\/\//i);

      const data = await get(server, '/dashboard.json');
      assert.equal(data.status, 200);
      const body = JSON.parse(data.body) as DashboardData;
      assert.equal(body.nodes.length, 1);
      assert.equal(body.nodes[0]?.node_id, 'n1');
      assert.equal(body.nodes[0]?.health.peers[0]?.circuit_state, 'open');
      assert.ok(body.nodes[0].samples.length >= 1, 'sampled from the start');
      assert.doesNotMatch(data.body, /s3cret/, 'credentials redacted');

      const since = await get(server, `/dashboard.json?since=${body.now_ms + 60_000}`);
      assert.deepEqual((JSON.parse(since.body) as DashboardData).nodes[0]?.samples, []);

      assert.equal((await get(server, '/', {}, 'HEAD')).status, 200);
      const post = await get(server, '/', {}, 'POST');
      assert.equal(post.status, 405);
      assert.equal(post.headers['allow'], 'GET, HEAD');
    });
  });

  it('bound elsewhere with a token: Bearer or Basic with the token, else 401 asking for Basic', async () => {
    await withServer({ host: '0.0.0.0', token: 's3cret-token' }, async (server) => {
      for (const path of ['/', '/dashboard.json']) {
        const none = await get(server, path);
        assert.equal(none.status, 401, path);
        assert.match(String(none.headers['www-authenticate']), /^Basic realm="replication-engine"/);
        assert.equal((await get(server, path, { authorization: basic('x', 'wrong') })).status, 401);
        assert.equal((await get(server, path, { authorization: 'Bearer wrong' })).status, 401);
        assert.equal(
          (await get(server, path, { authorization: basic('anyone', 's3cret-token') })).status,
          200,
        );
        assert.equal(
          (await get(server, path, { authorization: 'Bearer s3cret-token' })).status,
          200,
        );
      }
      assert.equal((await get(server, '/health')).status, 503, '/health stays open for probes');
    });
  });

  it('bound elsewhere without a token: refused (403), like the admin endpoints', async () => {
    await withServer({ host: '0.0.0.0' }, async (server) => {
      const page = await get(server, '/');
      assert.equal(page.status, 403);
      assert.equal((JSON.parse(page.body) as { code: string }).code, 'DASHBOARD_DISABLED');
      assert.match(page.body, /set http\.token to enable it/);
      assert.equal((await get(server, '/dashboard.json')).status, 403);
    });
  });

  it('npm pack ships the page next to the code that serves it, and the monitoring files', async () => {
    const { stdout } = await promisify(execFile)(
      'npm',
      ['pack', '--dry-run', '--json', '--ignore-scripts'],
      { cwd: REPO },
    );
    const [packed] = JSON.parse(stdout) as { files: { path: string }[] }[];
    const files = new Set(packed?.files.map((f) => f.path));
    for (const path of [
      'dist/observability/dashboard.js',
      'dist/observability/dashboard.html',
      'docs/DASHBOARD.md',
      'docs/dashboard.png',
      'docs/grafana/replication-engine.json',
      'docs/prometheus/alerts.yml',
    ]) {
      assert.ok(files.has(path), `${path} is in the tarball`);
    }
  });
});
