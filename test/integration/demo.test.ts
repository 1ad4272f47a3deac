/**
 * `demo --quick` runs to the end and leaves nothing behind; Ctrl-C in the middle cleans up too.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { REPO, isAlive, runCli } from '../fixtures/cli/cli-process.js';

/** The redis-server pids and the temp dir the demo announced. */
function announced(out: string): { pids: number[]; root: string } {
  const pids = [...out.matchAll(/pid (\d+)/g)].map((m) => Number(m[1]));
  const root = /in (\S*replication-engine-demo-\S+)/.exec(out)?.[1] ?? '';
  return { pids, root };
}

describe('demo', { timeout: 150_000 }, () => {
  it('--quick runs to the end: three identical nodes, no process or file left', async () => {
    const result = await runCli(['demo', '--quick'], { timeoutMs: 90_000 });
    const out = result.stdout.toString();
    assert.equal(result.code, 0, `${out}\n${result.stderr}`);
    for (const step of [
      '1. Writes',
      '2. Deletes',
      '3. Conflicts',
      '4. Failure',
      '5. Recovery',
      '6. Result',
    ]) {
      assert.ok(out.includes(step), `narrates ${step}`);
    }
    const table = out
      .split('\n')
      .filter((l) => /^ {2}(london|paris|tokyo) +\d+ +\d+ +[0-9a-f]{64}$/.test(l));
    assert.equal(table.length, 3, out);
    const cells = table.map((l) => l.trim().split(/ +/).slice(1));
    assert.deepEqual(cells[1], cells[0]);
    assert.deepEqual(cells[2], cells[0]);
    assert.match(out, /identical: 3 nodes/);
    const { pids, root } = announced(out);
    assert.ok(
      pids.length >= 4,
      `redis pids announced (including tokyo's restart): ${pids.join(',')}`,
    );
    for (const pid of pids) assert.equal(isAlive(pid), false, `redis-server ${pid} is gone`);
    assert.ok(root !== '' && !existsSync(root), `temp dir ${root} removed`);
  });

  it('--quick --cluster runs paris on a 3-master Redis Cluster and converges, no process left', async () => {
    const result = await runCli(['demo', '--quick', '--cluster'], { timeoutMs: 110_000 });
    const out = result.stdout.toString();
    assert.equal(result.code, 0, `${out}\n${result.stderr}`);
    assert.match(out, /paris +Redis Cluster: (127\.0\.0\.1:\d+ ){2}127\.0\.0\.1:\d+ /);
    const table = out
      .split('\n')
      .filter((l) => /^ {2}(london|paris|tokyo) +\d+ +\d+ +[0-9a-f]{64}$/.test(l));
    assert.equal(table.length, 3, out);
    const cells = table.map((l) => l.trim().split(/ +/).slice(1));
    assert.deepEqual(cells[1], cells[0], 'the cluster node holds what london holds');
    assert.deepEqual(cells[2], cells[0]);
    const { pids, root } = announced(out);
    assert.ok(
      pids.length >= 6,
      `redis pids announced (3 of them the cluster's): ${pids.join(',')}`,
    );
    for (const pid of pids) assert.equal(isAlive(pid), false, `redis-server ${pid} is gone`);
    assert.ok(root !== '' && !existsSync(root), `temp dir ${root} removed`);
  });

  it('Ctrl-C in the middle exits 130 and cleans up', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'demo'], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => resolve(code)),
    );
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`demo did not reach step 1:\n${out}`)),
        60_000,
      );
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('1. Writes')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    child.kill('SIGINT');
    assert.equal(await exited, 130, out);
    assert.match(out, /interrupted/);
    const { pids, root } = announced(out);
    assert.equal(pids.length, 3);
    for (const pid of pids) assert.equal(isAlive(pid), false, `redis-server ${pid} is gone`);
    assert.ok(!existsSync(root), `temp dir ${root} removed`);
  });
});
