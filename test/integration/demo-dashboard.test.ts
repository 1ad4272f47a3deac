/**
 * `demo` serves one page with its three nodes side by side, at the URL it prints at the start;
 * `--stay` keeps the mesh and the page up after the end until Ctrl-C (exit 0, all cleaned up).
 * The page is opened in headless Chromium (Debian's /usr/bin/chromium, playwright-core).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { chromium } from 'playwright-core';

import type { DashboardData } from '../../src/observability/dashboard.js';
import { REPO } from '../fixtures/cli/cli-process.js';

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

describe('the demo dashboard', { timeout: 120_000 }, () => {
  it('shows london, paris and tokyo on one page; --stay keeps it until Ctrl-C, then exit 0', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'demo', '--quick', '--stay'],
      { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => resolve(code)),
    );
    const profile = mkdtempSync(join(tmpdir(), 'demo-dashboard-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1500, height: 900 },
    });
    try {
      const printed = (pattern: RegExp, what: string): Promise<RegExpExecArray> =>
        new Promise((resolve, reject) => {
          const check = (): void => {
            const m = pattern.exec(out);
            if (m !== null) {
              clearInterval(timer);
              clearTimeout(deadline);
              resolve(m);
            }
          };
          const timer = setInterval(check, 50);
          const deadline = setTimeout(() => {
            clearInterval(timer);
            reject(new Error(`demo never printed ${what}:\n${out}`));
          }, 90_000);
          check();
        });
      const url = (
        await printed(/dashboard of the three nodes[^:]*: (http:\/\/127\.0\.0\.1:\d+\/)/, 'the URL')
      )[1]!;

      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(url);
      await page.waitForFunction(
        () =>
          (
            globalThis as unknown as {
              document: { querySelectorAll(s: string): { length: number } };
            }
          ).document.querySelectorAll('[data-node]').length === 3,
        undefined,
        { timeout: 20_000 },
      );
      const nodes = await page
        .locator('[data-node]')
        .evaluateAll((els) =>
          els.map((el) =>
            (el as unknown as { getAttribute(n: string): string }).getAttribute('data-node'),
          ),
        );
      assert.deepEqual(nodes, ['london', 'paris', 'tokyo'], 'side by side, in order');
      assert.equal(await page.locator('[data-node="london"] [data-peer]').count(), 2);

      await printed(/keep running: Ctrl-C/, 'the --stay line');
      assert.ok(out.indexOf(url) < out.indexOf('1. Writes'), 'the URL is printed at the start');
      const data = (await (await fetch(`${url}dashboard.json`)).json()) as DashboardData;
      assert.deepEqual(
        data.nodes.map((n) => n.node_id),
        ['london', 'paris', 'tokyo'],
      );
      for (const node of data.nodes) {
        assert.ok(node.samples.length > 0, `${node.node_id} has history`);
        assert.equal(node.health.peers.length, 2);
      }
      assert.deepEqual(errors, []);

      child.kill('SIGINT');
      assert.equal(await exited, 0, out);
      await assert.rejects(fetch(url), 'the page is gone with the demo');
      const root = /in (\S*replication-engine-demo-\S+)/.exec(out)?.[1] ?? '';
      assert.ok(root !== '' && !existsSync(root), `temp dir ${root} removed`);
    } finally {
      // A failed assertion: Ctrl-C lets the demo stop its redis-servers and remove its temp dir
      // (SIGKILL would orphan them); SIGKILL only if it does not exit within 20 s.
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGINT');
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        await exited;
        clearTimeout(timer);
      }
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    }
  });
});
