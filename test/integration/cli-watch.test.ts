/**
 * `replication-engine watch [PREFIX]` as an operator runs it: one line per change (or JSON with
 * --json) until SIGINT, which exits 0; --from resumes after a printed position.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { sha256Hex } from '../../src/store/input.js';
import { SyncStore } from '../../src/store/sync-store.js';
import { REPO, runCli } from '../fixtures/cli/cli-process.js';
import { startRedis, type RedisServer } from '../helpers/redis-server.js';

/** A running `watch`: its stdout lines so far, and a wait for a line. */
function startWatch(args: readonly string[]): {
  child: ChildProcess;
  lines: string[];
  waitFor(match: (line: string) => boolean, what: string): Promise<string>;
  exited: Promise<number | null>;
} {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'watch', ...args], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let pending = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  child.stdout.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8');
    let newline: number;
    while ((newline = pending.indexOf('\n')) !== -1) {
      lines.push(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
    }
    for (const waiter of waiters) waiter();
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return {
    child,
    lines,
    exited,
    waitFor: (match, what) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const found = lines.find(match);
          if (found === undefined) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(found);
        };
        // A deadline, not a timing assertion: each CLI child takes seconds on a loaded machine.
        const timer = setTimeout(() => {
          waiters.delete(check);
          child.kill('SIGKILL');
          reject(
            new Error(`no line for ${what}; stdout:\n${lines.join('\n')}\nstderr:\n${stderr}`),
          );
        }, 120_000);
        waiters.add(check);
        check();
      }),
  };
}

describe('watch', { timeout: 300_000 }, () => {
  let redis: RedisServer;
  let store: SyncStore;

  before(async () => {
    redis = await startRedis();
    store = await SyncStore.connect({ redisUrl: redis.url, nodeId: 'node-a' });
  });
  after(async () => {
    await store?.close();
    await redis?.stop();
  });

  it('prints each change under PREFIX with its source and position until SIGINT (exit 0), and resumes with --from', async () => {
    await store.put('uk.first', { n: 1 });
    await store.put('other.skipped', 'x');
    const watch = startWatch(['uk.', '--redis', redis.url, '--from', 'start']);
    const first = await watch.waitFor((l) => l.includes('"uk.first"'), 'uk.first');
    assert.match(
      first,
      /^\d{4}-\d\d-\d\dT\S+ put "uk\.first" v1 origin "node-a" local position 1$/,
    );
    // A replicated change while it runs.
    const content = Buffer.from('{"n":2}');
    await store.apply(
      [
        {
          key: 'uk.second',
          content,
          contentHash: sha256Hex(content),
          contentType: 'json',
          version: 1,
          updatedAt: Date.now(),
          origin: 'node-b',
          deleted: false,
        },
      ],
      { source: { path: 'hot', peerId: 'node-b' } },
    );
    await store.delete('uk.first');
    const second = await watch.waitFor((l) => l.includes('"uk.second"'), 'uk.second');
    assert.match(second, / put "uk\.second" v1 origin "node-b" hot:node-b position 3$/);
    await watch.waitFor((l) => l.includes(' del "uk.first" v2 '), 'the delete');
    watch.child.kill('SIGINT');
    assert.equal(await watch.exited, 0);
    assert.equal(watch.lines.length, 3, watch.lines.join('\n'));
    assert.ok(!watch.lines.some((l) => l.includes('other.skipped')));

    // --json from the first line's position: the changes after it, with their records.
    const json = startWatch(['uk.', '--redis', redis.url, '--from', '1', '--json']);
    const line = await json.waitFor((l) => l.includes('uk.second'), 'uk.second as JSON');
    json.child.kill('SIGINT');
    assert.equal(await json.exited, 0);
    const event = JSON.parse(line) as Record<string, unknown>;
    assert.equal(event['type'], 'change');
    assert.deepEqual(event['source'], { kind: 'hot', peer: 'node-b' });
    assert.equal(event['position'], '3');
    assert.equal((event['record'] as { content: string }).content, '{"n":2}');
    assert.equal(json.lines.length, 2, json.lines.join('\n'));
  });

  it('a --from that is not a position fails with exit 1', async () => {
    const result = await runCli(['watch', '--redis', redis.url, '--from', 'yesterday']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /not a position of this store's change feed/);
  });
});
