/**
 * `put`, `get`, `del` against a real redis-server, as child processes: byte-for-byte round trips
 * (argument and stdin, binary), absent and deleted keys, `get --json`, usage errors.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../fixtures/cli/cli-process.js';
import { freePort, startRedis, type RedisServer } from '../helpers/redis-server.js';

describe('put / get / del', () => {
  let redis: RedisServer;
  let dir: string;
  let config: string;
  let target: string[];

  before(async () => {
    redis = await startRedis();
    dir = mkdtempSync(join(tmpdir(), 'cli-data-'));
    config = join(dir, 'node.yaml');
    writeFileSync(
      config,
      `replication:\n  local_node_id: "uk.node.a"\nlocal:\n  redis_url: "${redis.url}"\n  redis_prefix: "n1:"\n`,
    );
    target = ['--redis', redis.url, '--prefix', 'n1:'];
  });
  after(async () => {
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('put VALUE then get prints it byte for byte; -c and --redis reach the same store', async () => {
    const put = await runCli(['put', 'uk.doc.1', '{"a": 1, "b": "é"}', '-c', config]);
    assert.equal(put.code, 0, put.stderr);
    assert.match(
      put.stdout.toString(),
      /stored uk\.doc\.1 \(json, \d+ bytes\) version 1 .* on uk\.node\.a/,
    );
    const get = await runCli(['get', 'uk.doc.1', ...target]);
    assert.equal(get.code, 0, get.stderr);
    assert.deepEqual(get.stdout, Buffer.from('{"a": 1, "b": "é"}'));
  });

  it('binary content through stdin round-trips exactly', async () => {
    const bytes = Buffer.concat([randomBytes(4096), Buffer.from([0, 0xff, 0x0a, 0x0d, 0])]);
    const put = await runCli(['put', 'uk.blob', ...target, '--node-id', 'uk.node.a'], {
      input: bytes,
    });
    assert.equal(put.code, 0, put.stderr);
    assert.match(put.stdout.toString(), /\(binary, 4101 bytes\)/);
    const get = await runCli(['get', 'uk.blob', '-c', config]);
    assert.equal(get.code, 0, get.stderr);
    assert.ok(get.stdout.equals(bytes), 'same bytes');
  });

  it('get --json prints the record with its metadata', async () => {
    await runCli(['put', 'uk.bin2', '-', '--binary', '-c', config], {
      input: Buffer.from([1, 2, 3]),
    });
    const result = await runCli(['get', 'uk.bin2', '--json', '-c', config]);
    assert.equal(result.code, 0, result.stderr);
    const record = JSON.parse(result.stdout.toString()) as Record<string, unknown>;
    assert.equal(record['key'], 'uk.bin2');
    assert.equal(record['version'], 1);
    assert.equal(typeof record['updated_at'], 'number');
    assert.equal(record['origin'], 'uk.node.a');
    assert.equal(record['content_type'], 'binary');
    assert.equal(record['deleted'], false);
    assert.equal(record['content_encoding'], 'base64');
    assert.equal(record['content'], Buffer.from([1, 2, 3]).toString('base64'));
    assert.match(String(record['content_hash']), /^[0-9a-f]{64}$/);
  });

  it('an absent key exits 1 with a message on stderr and nothing on stdout', async () => {
    const result = await runCli(['get', 'uk.never', '-c', config]);
    assert.equal(result.code, 1);
    assert.equal(result.stdout.length, 0);
    assert.match(result.stderr, /uk\.never: not found/);
  });

  it('a deleted key exits 1; get --json still shows the tombstone', async () => {
    await runCli(['put', 'uk.gone', 'x', '-c', config]);
    const del = await runCli(['del', 'uk.gone', '-c', config]);
    assert.equal(del.code, 0, del.stderr);
    assert.match(del.stdout.toString(), /deleted uk\.gone version 2/);
    const get = await runCli(['get', 'uk.gone', '-c', config]);
    assert.equal(get.code, 1);
    assert.equal(get.stdout.length, 0);
    assert.match(get.stderr, /uk\.gone: deleted \(version 2/);
    const json = await runCli(['get', 'uk.gone', '--json', '-c', config]);
    assert.equal(json.code, 1);
    const record = JSON.parse(json.stdout.toString()) as Record<string, unknown>;
    assert.equal(record['deleted'], true);
    assert.equal(record['version'], 2);
  });

  it('put --json refuses content that is not JSON', async () => {
    const result = await runCli(['put', 'uk.bad', 'not json', '--json', '-c', config]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /not valid JSON/);
  });

  it('usage errors exit 2', async () => {
    const noNode = await runCli(['put', 'uk.k', 'v', '--redis', redis.url]);
    assert.equal(noNode.code, 2);
    assert.match(noNode.stderr, /--node-id ID is required/);
    const noTarget = await runCli(['get', 'uk.k']);
    assert.equal(noTarget.code, 2);
    assert.match(noTarget.stderr, /--config FILE, or --redis URL/);
    const badUrl = await runCli(['get', 'uk.k', '--redis', 'http://x']);
    assert.equal(badUrl.code, 2);
    assert.match(badUrl.stderr, /--redis: expected a redis:\/\//);
    const unknown = await runCli(['get', 'uk.k', '--nope', '-c', config]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown option --nope/);
    const extra = await runCli(['get', 'a', 'b', '-c', config]);
    assert.equal(extra.code, 2);
  });

  it('an unreachable Redis exits 1 after the connect timeout, password hidden', async () => {
    const port = await freePort();
    const result = await runCli(['get', 'uk.k', '--redis', `redis://u:hunter2@127.0.0.1:${port}`]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /cannot connect to the local Redis/);
    assert.doesNotMatch(result.stderr, /hunter2/);
  });
});
