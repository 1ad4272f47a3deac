/**
 * `put` and `get` rough edges (issue 21): a `put` reading a terminal says so on stderr, an empty
 * value (stdin or VALUE) is refused unless --empty, plain text reads back as text in `get --json`, and a mistyped
 * flag gets "did you mean"; `put --ttl` expires the document for `get` and `ls`. Real redis-server, the CLI as a child process.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

import { REPO, runCli } from '../fixtures/cli/cli-process.js';
import { eventually, startRedis, type RedisServer } from '../helpers/redis-server.js';

const exec = promisify(execFile);

describe('put and get', { timeout: 180_000 }, () => {
  let redis: RedisServer;
  let target: string[];

  before(async () => {
    redis = await startRedis();
    target = ['--redis', redis.url, '--node-id', 'node-cli'];
  });

  after(async () => {
    await redis.stop();
  });

  it('put KEY with no value on a terminal prints a hint on stderr', async (t) => {
    const script = await exec('sh', ['-c', 'command -v script']).catch(() => undefined);
    if (script === undefined) {
      t.skip('util-linux script(1) is not installed');
      return;
    }
    // script(1) gives the command a terminal; its stdin (/dev/null) ends it at once.
    const command = `${process.execPath} --import tsx src/cli/main.ts put k.tty ${target.join(' ')}`;
    const { stdout } = await exec('sh', ['-c', `script -qec '${command}' /dev/null < /dev/null`], {
      cwd: REPO,
    }).catch((error: { stdout: string }) => error);
    assert.match(
      stdout,
      /replication-engine put: reading the value of k\.tty from the terminal; end it with Ctrl-D/,
    );
  });

  it('an empty stdin is refused unless --empty', async () => {
    const refused = await runCli(['put', 'k.empty', ...target], { input: '' });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /stdin was empty: nothing to store \(use --empty/);
    const absent = await runCli(['get', 'k.empty', ...target]);
    assert.equal(absent.code, 1, 'nothing was stored');
    const stored = await runCli(['put', 'k.empty', '--empty', ...target], { input: '' });
    assert.equal(stored.code, 0, stored.stderr);
    const got = await runCli(['get', 'k.empty', ...target]);
    assert.equal(got.code, 0);
    assert.equal(got.stdout.length, 0);
  });

  it("an empty VALUE argument (put KEY '') is refused unless --empty, like an empty stdin", async () => {
    const refused = await runCli(['put', 'k.empty-arg', '', ...target]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /VALUE was empty: nothing to store \(use --empty/);
    const absent = await runCli(['get', 'k.empty-arg', ...target]);
    assert.equal(absent.code, 1, 'nothing was stored');
    const stored = await runCli(['put', 'k.empty-arg', '', '--empty', ...target]);
    assert.equal(stored.code, 0, stored.stderr);
    const got = await runCli(['get', 'k.empty-arg', ...target]);
    assert.equal(got.code, 0);
    assert.equal(got.stdout.length, 0);
  });

  it('plain text is shown as text by get --json (stored as binary), other bytes as base64', async () => {
    assert.equal((await runCli(['put', 'k.text', 'hello wörld', ...target])).code, 0);
    const text = JSON.parse(
      (await runCli(['get', 'k.text', '--json', ...target])).stdout.toString(),
    ) as Record<string, unknown>;
    assert.equal(text['content_type'], 'binary');
    assert.equal(text['content_encoding'], 'utf8');
    assert.equal(text['content'], 'hello wörld');
    const bytes = Buffer.from([0xff, 0xfe, 0x00, 0x80]);
    assert.equal((await runCli(['put', 'k.bytes', ...target], { input: bytes })).code, 0);
    const raw = JSON.parse(
      (await runCli(['get', 'k.bytes', '--json', ...target])).stdout.toString(),
    ) as Record<string, unknown>;
    assert.equal(raw['content_encoding'], 'base64');
    assert.equal(raw['content'], bytes.toString('base64'));
  });

  it('put --ttl: get and ls serve the document until it expires, then say not found (expired)', async () => {
    const stored = await runCli(['put', 'k.ttl', '{"a":1}', '--ttl', '1500', ...target]);
    assert.equal(stored.code, 0, stored.stderr);
    const expires = /, expires (\S+)$/m.exec(stored.stdout.toString())?.[1];
    assert.ok(expires !== undefined, stored.stdout.toString());
    const expiresAt = Date.parse(expires);
    const json = await runCli(['get', 'k.ttl', '--json', ...target]);
    const record = JSON.parse(json.stdout.toString()) as Record<string, unknown>;
    assert.equal(record['expires_at'], expiresAt);
    await eventually(() => Date.now() >= expiresAt, 'the document expired');
    const got = await runCli(['get', 'k.ttl', ...target]);
    assert.equal(got.code, 1);
    assert.match(got.stderr, new RegExp(`k\\.ttl: expired at ${expires.replaceAll('.', '\\.')}`));
    const ls = await runCli(['ls', 'k.ttl', ...target]);
    assert.equal(ls.stdout.toString(), '');
    const all = await runCli(['ls', 'k.ttl', '--deleted', ...target]);
    assert.equal(all.stdout.toString(), 'k.ttl\t(expired)\n');
    const bad = await runCli(['put', 'k.ttl', 'v', '--ttl', '0s', ...target]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--ttl must be a positive duration/);
    // A put without --ttl clears the expiry.
    assert.equal((await runCli(['put', 'k.ttl', 'again', ...target])).code, 0);
    assert.equal((await runCli(['get', 'k.ttl', ...target])).stdout.toString(), 'again');
  });

  it('a mistyped flag gets "did you mean"', async () => {
    const r = await runCli(['get', 'k.text', '--jsn', ...target]);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /^replication-engine get: unknown option --jsn \(did you mean --json\?\)$/m,
    );
    const far = await runCli(['status', '--zzzzzzzz']);
    assert.match(far.stderr, /^replication-engine status: unknown option --zzzzzzzz$/m);
  });
});
