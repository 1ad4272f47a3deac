/**
 * `ls [PREFIX]` (issue 23): the keys of a node's store under a prefix, as an operator runs it (the
 * CLI as a child process, a real redis-server): plain keys, --json records, --deleted, --limit,
 * --count, and a prefix that is text, not a glob.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SyncStore } from '../../src/store/sync-store.js';
import { runCli } from '../fixtures/cli/cli-process.js';
import { startRedis, type RedisServer } from '../helpers/redis-server.js';

describe('ls', { timeout: 180_000 }, () => {
  let redis: RedisServer;
  let store: SyncStore;
  let target: string[];

  before(async () => {
    redis = await startRedis();
    store = await SyncStore.connect({ redisUrl: redis.url, redisPrefix: 'n1:', nodeId: 'node-a' });
    target = ['--redis', redis.url, '--prefix', 'n1:'];
    const keys = ['user.1.a', 'user.1.b', 'user.10.a', 'user.2.a', 'a*b', 'axb', 'gone'];
    await store.putMany(keys.map((key) => ({ key, content: { key } })));
    await store.deleteMany(['gone', 'user.1.b']);
  });

  after(async () => {
    await store.close();
    await redis.stop();
  });

  const lines = (out: Buffer): string[] => out.toString().split('\n').filter(Boolean).sort();

  it('lists the live keys under a prefix, one a line, and tombstones with --deleted', async () => {
    const [prefixed, all, deleted, glob] = await Promise.all([
      runCli(['ls', 'user.1', ...target]),
      runCli(['ls', ...target]),
      runCli(['ls', 'user.1.', '--deleted', ...target]),
      runCli(['ls', 'a*', ...target]),
    ]);
    assert.equal(prefixed.code, 0, prefixed.stderr);
    assert.deepEqual(lines(prefixed.stdout), ['user.1.a', 'user.10.a']);
    assert.deepEqual(lines(all.stdout), ['a*b', 'axb', 'user.1.a', 'user.10.a', 'user.2.a']);
    assert.deepEqual(lines(deleted.stdout), ['user.1.a', 'user.1.b\t(deleted)']);
    assert.deepEqual(lines(glob.stdout), ['a*b']);
  });

  it('--json prints one record a line, --limit stops, --count counts', async () => {
    const [json, limited, count, countDeleted, none] = await Promise.all([
      runCli(['ls', 'user.', '--json', ...target]),
      runCli(['ls', '--limit', '2', ...target]),
      runCli(['ls', 'user.', '--count', ...target]),
      runCli(['ls', '--count', '--deleted', ...target]),
      runCli(['ls', 'nothing.', ...target]),
    ]);
    assert.equal(json.code, 0, json.stderr);
    const records = lines(json.stdout).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      records.map((r) => [r['key'], r['content'], r['deleted'], r['origin']]).sort(),
      [
        ['user.1.a', '{"key":"user.1.a"}', false, 'node-a'],
        ['user.10.a', '{"key":"user.10.a"}', false, 'node-a'],
        ['user.2.a', '{"key":"user.2.a"}', false, 'node-a'],
      ],
    );
    assert.equal(lines(limited.stdout).length, 2);
    assert.equal(count.stdout.toString(), '3\n');
    assert.equal(countDeleted.stdout.toString(), '7\n');
    assert.equal(none.code, 0);
    assert.equal(none.stdout.length, 0);
  });

  it('refuses a bad --limit and extra arguments (exit 2)', async () => {
    const [zero, extra, both] = await Promise.all([
      runCli(['ls', '--limit', '0', ...target]),
      runCli(['ls', 'a', 'b', ...target]),
      runCli(['ls', '--count', '--json', ...target]),
    ]);
    assert.equal(zero.code, 2);
    assert.match(zero.stderr, /--limit must be a positive integer/);
    assert.equal(extra.code, 2);
    assert.match(extra.stderr, /unexpected argument: b/);
    assert.equal(both.code, 2);
  });
});
