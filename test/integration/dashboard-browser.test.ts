/**
 * The live dashboard in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven by
 * playwright-core) opens the pages of a running 2-node mesh, two daemons started as an operator
 * starts them (`node bin/replication-engine.js run -c FILE`, so from dist/ with the page copied
 * there by the build), each with its own redis-server. The page follows the peer's lag as writes
 * pile up behind a paused peer and drain when it resumes, shows the peer disconnected and the node
 * unhealthy when the peer's Redis is killed, and on the killed node's own page its local Redis
 * unreachable and the lag rising while the other node keeps writing, then falling once it is back.
 *
 * `UPDATE_DASHBOARD_SCREENSHOT=1` (or `node scripts/screenshot-dashboard.mjs`) writes the
 * screenshot docs/DASHBOARD.md shows, docs/dashboard.png; otherwise it goes to a temp dir.
 * Needs dist/ built (`npm ci` does it; `npm run build` after changing src/).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { chromium, type BrowserContext, type Page } from 'playwright-core';

import { SyncStore } from '../../src/store/sync-store.js';
import { REPO } from '../fixtures/cli/cli-process.js';
import { eventually, freePort, startRedis, type RedisServer } from '../helpers/redis-server.js';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = process.env['UPDATE_DASHBOARD_SCREENSHOT'] === '1';

/** Flags without which Chromium reaches for the network this machine closes (and stalls). */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

interface Daemon {
  readonly name: string;
  readonly url: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  output(): string;
}

let dir: string;
const servers: RedisServer[] = [];
const daemons: Daemon[] = [];
const stores: SyncStore[] = [];
let context: BrowserContext | undefined;
let writing = true;
let trickle: Promise<void> = Promise.resolve();

async function startDaemon(
  name: string,
  local: RedisServer,
  peer: { name: string; redis: RedisServer },
): Promise<Daemon> {
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
      '      interval_sec: 2',
      '      backoff_base_sec: 1',
      '      backoff_max_sec: 2',
      '    peer_health:',
      '      ping_interval_sec: 1',
      '      idle_threshold_sec: 1',
      '  peers:',
      `    - node_id: "${peer.name}"`,
      `      redis_url: "${peer.redis.url}"`,
      '      circuit_failure_threshold: 2',
      '      circuit_reset_timeout_sec: 1',
      '  cursor:',
      `    sqlite_path: "${join(dir, `${name}-cursors.db`)}"`,
      'local:',
      `  redis_url: "${local.url}"`,
      'http:',
      `  port: ${port}`,
      '',
    ].join('\n'),
  );
  const child = spawn(
    process.execPath,
    ['bin/replication-engine.js', 'run', '-c', file, '--log-level', 'warn'],
    { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let text = '';
  child.stdout.on('data', (c: Buffer) => (text += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (text += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const daemon: Daemon = {
    name,
    url: `http://127.0.0.1:${port}/`,
    child,
    exited,
    output: () => text,
  };
  daemons.push(daemon);
  await eventually(
    async () => {
      if (child.exitCode !== null) throw new Error(`${name} exited: ${text}`);
      return (await fetch(`${daemon.url}ready`)).status === 200;
    },
    `${name} ready`,
    20_000,
  );
  return daemon;
}

/** What {@link until} waits for: the element's text, or its `data-value` as text or number. */
interface Expect {
  readonly text?: string;
  readonly includes?: string;
  readonly value?: string;
  readonly atLeast?: number;
}

interface PageDocument {
  querySelector(selector: string): {
    getAttribute(name: string): string | null;
    readonly textContent: string | null;
  } | null;
}

/** Waits, in the page itself (no eval: the page's CSP forbids it), until `selector` matches `expect`. */
async function until(
  page: Page,
  selector: string,
  expect: Expect,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  try {
    await page.waitForFunction(
      ({ selector, expect }) => {
        // Runs in the page: its document, typed here without the DOM library.
        const doc = (globalThis as unknown as { document: PageDocument }).document;
        const el = doc.querySelector(selector);
        if (el === null) return false;
        const value = el.getAttribute('data-value') ?? '';
        const text = el.textContent ?? '';
        return (
          (expect.text === undefined || text === expect.text) &&
          (expect.includes === undefined || text.includes(expect.includes)) &&
          (expect.value === undefined || value === expect.value) &&
          (expect.atLeast === undefined || (value !== '' && Number(value) >= expect.atLeast))
        );
      },
      { selector, expect },
      { timeout: timeoutMs, polling: 100 },
    );
  } catch (error) {
    const html = await page
      .locator('main')
      .innerText()
      .catch(() => '(no page)');
    throw new Error(`timed out waiting for ${what}:\n${html}`, { cause: error });
  }
}

const peerField = (node: string, peer: string, field: string): string =>
  `[data-node="${node}"] [data-peer="${peer}"] [data-field="${field}"]`;

async function writeMany(store: SyncStore, prefix: string, n: number): Promise<void> {
  for (let i = 0; i < n; i += 1) await store.put(`${prefix}.${i}`, { n: i, at: Date.now() });
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'dashboard-browser-'));
});

after(async () => {
  writing = false;
  await trickle.catch(() => undefined);
  await context?.close();
  for (const d of daemons) if (d.child.exitCode === null) d.child.kill('SIGKILL');
  await Promise.all(daemons.map((d) => d.exited));
  await Promise.all(stores.map((s) => s.close().catch(() => undefined)));
  await Promise.all(servers.map((s) => s.stop()));
  rmSync(dir, { recursive: true, force: true });
});

describe('the dashboard in headless Chromium', { timeout: 180_000 }, () => {
  it('follows a 2-node mesh: lag behind a paused peer, the peer down, its own Redis down and back', async () => {
    const built = join(REPO, 'dist/observability/dashboard.html');
    assert.ok(existsSync(built), 'dist/ is built (npm run build)');
    assert.equal(
      readFileSync(built, 'utf8'),
      readFileSync(join(REPO, 'src/observability/dashboard.html'), 'utf8'),
      'dist/ has the current page (npm run build)',
    );
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} (apt-get install chromium)`);

    const redisA = await startRedis();
    const redisB = await startRedis({ persistent: true });
    servers.push(redisA, redisB);
    const a = await startDaemon('node-a', redisA, { name: 'node-b', redis: redisB });
    const b = await startDaemon('node-b', redisB, { name: 'node-a', redis: redisA });
    const storeA = await SyncStore.connect({ redisUrl: redisA.url, nodeId: 'node-a' });
    const storeB = await SyncStore.connect({ redisUrl: redisB.url, nodeId: 'node-b' });
    stores.push(storeA, storeB);

    context = await chromium.launchPersistentContext(join(dir, 'chromium-profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 400 }, // the screenshot is the full page, as tall as it is
    });
    const errors: string[] = [];
    const foreign: string[] = [];
    const open = async (daemon: Daemon): Promise<Page> => {
      const page = await context!.newPage();
      page.on('pageerror', (e) => errors.push(`${daemon.name}: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(`${daemon.name}: ${m.text()}`);
      });
      page.on('request', (r) => {
        if (!r.url().startsWith(daemon.url)) foreign.push(r.url());
      });
      await page.goto(daemon.url);
      return page;
    };
    const pageA = await open(a);
    const pageB = await open(b);

    // Both nodes up, each seeing the other.
    const ab = (field: string): string => peerField('node-a', 'node-b', field);
    const ba = (field: string): string => peerField('node-b', 'node-a', field);
    const nodeA = (field: string): string => `[data-node="node-a"] [data-field="${field}"]`;
    const nodeB = (field: string): string => `[data-node="node-b"] [data-field="${field}"]`;
    await until(pageA, ab('connection'), { text: 'connected' }, 'A sees B connected');
    await until(pageA, ab('circuit'), { value: 'closed' }, 'the circuit closed');
    await until(pageB, ba('connection'), { text: 'connected' }, 'B sees A connected');
    await until(pageA, nodeA('local'), { includes: 'connected' }, "A's local Redis");
    assert.equal(await pageA.title(), 'node-a — replication-engine');

    // A steady trickle of writes on A for the rest of the test: B applies them as they come.
    let written = 0;
    trickle = (async () => {
      while (writing) {
        await storeA.put(`trickle.${written}`, { n: written });
        written += 1;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await until(pageB, ba('applied-rate'), { atLeast: 1 }, "B applying A's writes");

    // Writes behind a paused peer: A's page shows them as lag, which drains once resumed.
    assert.equal((await fetch(`${a.url}peers/node-b/pause`, { method: 'POST' })).status, 200);
    await until(pageA, ab('paused'), { text: 'paused' }, 'the paused badge');
    await writeMany(storeB, 'behind', 30);
    await until(pageA, ab('lag-events'), { value: '30' }, '30 events behind');
    await until(pageA, ab('lag-ms'), { atLeast: 1 }, 'the lag in ms');
    assert.equal((await fetch(`${a.url}peers/node-b/resume`, { method: 'POST' })).status, 200);
    await until(pageA, ab('lag-events'), { value: '0' }, 'the lag drained');
    await until(pageA, ab('taken'), { value: '30' }, 'the 30 records applied');
    const chart = pageA.locator(ab('chart'));
    const points = Number(await chart.getAttribute('data-points'));
    assert.ok(points >= 3, `the chart has history (${points} samples)`);
    assert.ok((await chart.locator('polyline').count()) >= 1, 'the chart draws the lag');

    // B's Redis killed: A sees its peer down; B's own page its local Redis down, lag rising.
    await storeB.close();
    stores.splice(stores.indexOf(storeB), 1);
    await redisB.kill();
    await until(pageA, ab('connection'), { text: 'disconnected' }, 'B disconnected');
    await until(pageA, nodeA('healthy'), { text: 'unhealthy' }, 'A unhealthy');
    await until(pageB, nodeB('local'), { includes: 'UNREACHABLE' }, "B's local Redis down");
    await until(pageB, nodeB('problems'), { includes: 'local Redis' }, 'the reason');
    await until(pageB, ba('lag-events'), { atLeast: 20 }, 'B falling behind A');

    // Back (with its data): B catches up, A sees it again.
    await redisB.restart();
    await until(pageB, nodeB('local'), { includes: 'connected' }, "B's Redis back", 30_000);
    await until(pageA, ab('connection'), { text: 'connected' }, 'B reconnected', 30_000);
    writing = false;
    await trickle;
    await until(pageB, ba('lag-events'), { value: '0' }, 'B caught up', 30_000);
    await until(pageB, nodeB('healthy'), { text: 'healthy' }, 'B healthy', 30_000);
    await until(pageA, nodeA('healthy'), { text: 'healthy' }, 'A healthy', 30_000);
    await until(pageB, ba('taken'), { value: String(written) }, 'every write of A on B', 30_000);

    const shot = SCREENSHOT ? join(REPO, 'docs/dashboard.png') : join(dir, 'dashboard.png');
    await pageB.screenshot({ path: shot, fullPage: true });
    console.log(`# screenshot: ${shot}`);

    assert.deepEqual(foreign, [], 'nothing loaded from another origin');
    assert.deepEqual(errors, [], 'no script errors');

    for (const d of daemons) d.child.kill('SIGTERM');
    assert.deepEqual(await Promise.all(daemons.map((d) => d.exited)), [0, 0]);
  });
});
