/**
 * The production install docs/OPERATIONS.md documents, driven as written: the package installed
 * with `npm install -g` (into a temp prefix), its `replication-engine` program started as the
 * systemd unit's ExecStart starts it, then SIGHUP (a reload) and SIGTERM (a drain, exit 0) sent to
 * that very process. The unit used to run `npx`, which passes no signal on. Needs dist/ built
 * (`npm ci` does it; `npm run build` after changing src/).
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

import { REPO } from '../fixtures/cli/cli-process.js';
import { freePort, startRedis, type RedisServer } from '../helpers/redis-server.js';

const run = promisify(execFile);
const operations = readFileSync(join(REPO, 'docs/OPERATIONS.md'), 'utf8');

describe('installed as OPERATIONS.md says', { timeout: 120_000 }, () => {
  let dir: string;
  let redis: RedisServer;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'install-'));
    redis = await startRedis();
  });

  after(async () => {
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the systemd unit runs the installed program itself, not npx', () => {
    const unit = /```ini\n([\s\S]*?)```/.exec(operations)?.[1] ?? '';
    const exec = /^ExecStart=(.*)$/m.exec(unit)?.[1];
    assert.ok(exec, 'OPERATIONS.md has a unit with an ExecStart');
    assert.doesNotMatch(exec, /\bnpx\b|\bnpm\b/, 'npx and npm do not pass signals on');
    assert.match(exec, /^\/usr\/local\/bin\/replication-engine run -c \S+\.yaml$/);
    assert.match(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    assert.match(operations, /npm install -g [^\n]*replication-engine-0\.1\.0\.tgz/);
  });

  it('npm pack ships the program and what it runs', async () => {
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: REPO,
    });
    const [packed] = JSON.parse(stdout) as { files: { path: string }[] }[];
    const files = new Set(packed?.files.map((f) => f.path));
    for (const path of ['bin/replication-engine.js', 'dist/cli/main.js', 'dist/index.js']) {
      assert.ok(files.has(path), `${path} is in the tarball`);
    }
    assert.ok(
      [...files].some((f) => f.endsWith('.lua')),
      'the Lua scripts are in the tarball',
    );
  });

  it('npm install -g, then `replication-engine run -c`: SIGHUP reloads, SIGTERM drains and exits 0', async () => {
    assert.ok(existsSync(join(REPO, 'dist/cli/main.js')), 'dist/ is built (npm run build)');
    const prefix = join(dir, 'prefix');
    // The documented command, from the package directory instead of its tarball (offline: the
    // tarball's dependencies would be fetched and built again).
    await run(
      'npm',
      ['install', '-g', '--prefix', prefix, REPO, '--offline', '--ignore-scripts', '--no-audit'],
      { cwd: dir },
    );
    const program = join(prefix, 'bin', 'replication-engine');
    assert.ok(existsSync(program), `${program} installed`);

    const file = join(dir, 'node.yaml');
    writeFileSync(
      file,
      [
        'replication:',
        '  local_node_id: "node-installed"',
        '  peers: []',
        '  cursor:',
        `    sqlite_path: "${join(dir, 'cursors.db')}"`,
        'local:',
        `  redis_url: "${redis.url}"`,
        'http:',
        `  port: ${await freePort()}`,
        '',
      ].join('\n'),
    );
    const child = spawn(program, ['run', '-c', file], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const logs: Record<string, unknown>[] = [];
    let output = '';
    const waiters = new Set<() => void>();
    let pending = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      pending += chunk.toString();
      let nl: number;
      while ((nl = pending.indexOf('\n')) !== -1) {
        try {
          logs.push(JSON.parse(pending.slice(0, nl)) as Record<string, unknown>);
        } catch {
          // not a log line
        }
        pending = pending.slice(nl + 1);
      }
      for (const w of waiters) w();
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => resolve(code)),
    );
    const waitFor = (msg: string): Promise<void> =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          if (logs.some((l) => l['msg'] === msg)) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no "${msg}" in:\n${output.slice(-3000)}`));
        }, 30_000);
        waiters.add(check);
        check();
      });
    try {
      await waitFor('running');
      // The process systemd would signal ($MAINPID) is Node running the daemon, not a wrapper.
      const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
      assert.match(cmdline[0] ?? '', /node$/);
      assert.equal(cmdline[1], program, cmdline.join(' '));
      child.kill('SIGHUP');
      await waitFor('reloaded');
      child.kill('SIGTERM');
      assert.equal(await exited, 0, output.slice(-3000));
      assert.ok(
        logs.some((l) => l['msg'] === 'stopped'),
        'drained',
      );
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
