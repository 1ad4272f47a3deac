/**
 * The production install docs/OPERATIONS.md documents, driven as written: `npm pack`, the tarball
 * installed with the documented `npm install -g` line (into a temp prefix, the native modules from
 * the local prebuilds the doc describes), its `replication-engine` program started as the
 * systemd unit's ExecStart starts it, then SIGHUP (a reload) and SIGTERM (a drain, exit 0) sent to
 * that very process. The unit used to run `npx`, which passes no signal on. Needs dist/ built
 * (`npm ci` does it; `npm run build` after changing src/).
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

  it('npm pack, npm install -g the tarball, then `replication-engine run -c`: SIGHUP reloads, SIGTERM drains and exits 0', async () => {
    assert.ok(existsSync(join(REPO, 'dist/cli/main.js')), 'dist/ is built (npm run build)');
    // The documented build: `npm pack`, with its scripts off because `npm ci` (or `npm run build`)
    // already built dist/, and `prepare` would rebuild it under the other tests that run it.
    await run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: REPO });
    const tarball = join(dir, 'replication-engine-0.1.0.tgz');
    assert.ok(existsSync(tarball), 'npm pack made the tarball OPERATIONS.md names');

    // The documented install, word for word but for `sudo` and a temp prefix for `-g`.
    // --prefer-offline: the dependencies' metadata from the npm cache when it has them.
    const documented = /^sudo (npm install -g .*) \.\/replication-engine-0\.1\.0\.tgz$/m.exec(
      operations,
    )?.[1];
    assert.ok(documented, 'OPERATIONS.md has the `sudo npm install -g … ./<tarball>` line');
    const [npm, ...args] = documented.split(' ');
    const prefix = join(dir, 'prefix');
    await run(
      npm ?? 'npm',
      [...args, '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball],
      { cwd: dir, env: { ...process.env, ...(await localPrebuilds(join(dir, 'prebuilds'))) } },
    );
    const installed = join(prefix, 'lib', 'node_modules', 'replication-engine');
    for (const dep of ['better-sqlite3', 'zstd-napi']) {
      assert.ok(
        !existsSync(join(installed, 'node_modules', dep, 'build', 'Release', 'obj.target')),
        `${dep} was built from source: its local prebuild was not found (named as prebuild-install looks for it?)`,
      );
    }
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

/**
 * prebuild-install's local prebuilds (`<package>_local_prebuilds`, OPERATIONS.md "Installing it"):
 * the native modules `npm ci` built for this checkout, packed under the names prebuild-install
 * looks for, so that the install unpacks them instead of building from source (2.5 min measured)
 * or fetching them from GitHub. Returns the environment that points each install script at them.
 */
async function localPrebuilds(into: string): Promise<Record<string, string>> {
  mkdirSync(into, { recursive: true });
  const napi = (
    JSON.parse(readFileSync(join(REPO, 'node_modules/zstd-napi/package.json'), 'utf8')) as {
      binary: { napi_versions: number[] };
    }
  ).binary.napi_versions
    .filter((v) => v <= Number(process.versions.napi))
    .reduce((a, b) => Math.max(a, b));
  const modules = [
    {
      name: 'better-sqlite3',
      binary: 'better_sqlite3.node',
      abi: `node-v${process.versions.modules}`,
    },
    { name: 'zstd-napi', binary: 'binding.node', abi: `napi-v${napi}` },
  ];
  const env: Record<string, string> = {};
  for (const { name, binary, abi } of modules) {
    const dir = join(REPO, 'node_modules', name);
    const { version } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
      version: string;
    };
    const file = `${name}-v${version}-${abi}-${process.platform}-${process.arch}.tar.gz`;
    await run('tar', ['-czf', join(into, file), '-C', dir, `build/Release/${binary}`]);
    env[`npm_config_${name.replace(/-/g, '_')}_local_prebuilds`] = into;
  }
  return env;
}
