/**
 * A bad config fails `run` fast with its message (file, line, path, expected/found) and exit 2,
 * before anything connects: local.redis_url points at a listener that counts connections.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../fixtures/cli/cli-process.js';

describe('run with a bad config', () => {
  let dir: string;
  let listener: Server;
  let port: number;
  let connections = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cli-config-'));
    listener = createServer((socket) => {
      connections += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    port = (listener.address() as { port: number }).port;
  });
  after(async () => {
    await new Promise<void>((resolve) => listener.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  const local = (): string => `local:\n  redis_url: "redis://127.0.0.1:${port}"\n`;

  const cases: { name: string; yaml: () => string; expect: RegExp[] }[] = [
    {
      name: 'unknown key',
      yaml: () =>
        `replication:\n  local_node_id: "a"\n  settings:\n    hot_path:\n      batch_sise: 10\n${local()}`,
      expect: [/:5:\d+ replication\.settings\.hot_path\.batch_sise/, /unknown/i],
    },
    {
      name: 'duplicate peer ids',
      yaml: () =>
        `replication:\n  local_node_id: "a"\n  peers:\n    - node_id: "b"\n      redis_url: "redis://127.0.0.1:1"\n    - node_id: "b"\n      redis_url: "redis://127.0.0.1:2"\n${local()}`,
      expect: [/replication\.peers\[1\]\.node_id/, /duplicate|unique|already/i, /"b"/],
    },
    {
      name: 'own id among peers',
      yaml: () =>
        `replication:\n  local_node_id: "a"\n  peers:\n    - node_id: "a"\n      redis_url: "redis://127.0.0.1:1"\n${local()}`,
      expect: [/replication\.peers\[0\]\.node_id/, /local_node_id/],
    },
    {
      name: 'bad URL',
      yaml: () =>
        `replication:\n  local_node_id: "a"\n  peers:\n    - node_id: "b"\n      redis_url: "http://user:hunter2@peer:6379"\n${local()}`,
      expect: [
        /:5:\d+ replication\.peers\[0\]\.redis_url/,
        /expected a redis:\/\/ or rediss:\/\/ URL/,
      ],
    },
    {
      name: 'YAML syntax error',
      yaml: () => `replication:\n  local_node_id: "a\n  peers: [\n${local()}`,
      expect: [/node\.yaml/, /YAML|syntax|unexpected|missing/i],
    },
  ];

  for (const c of cases) {
    it(`${c.name}: message, exit 2, nothing connected`, async () => {
      const path = join(dir, 'node.yaml');
      writeFileSync(path, c.yaml());
      const result = await runCli(['run', '-c', path]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /invalid config/);
      for (const pattern of c.expect) assert.match(result.stderr, pattern);
      assert.doesNotMatch(result.stderr, /hunter2/);
      assert.doesNotMatch(result.stderr, /ECONNREFUSED|connect/i);
      assert.equal(result.stdout.length, 0, 'no log line: nothing started');
      assert.equal(connections, 0, 'nothing connected to local.redis_url');
      assert.ok(result.ms < 15_000, `took ${result.ms} ms`);
    });
  }

  it('missing file: message, exit 2', async () => {
    const result = await runCli(['run', '-c', join(dir, 'absent.yaml')]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /absent\.yaml: cannot read the config file \(no such file\)/);
  });

  it('missing --config is a usage error', async () => {
    const result = await runCli(['run']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--config FILE is required/);
    assert.match(result.stderr, /run --help/);
  });

  it('a bad --log-level is a usage error', async () => {
    const path = join(dir, 'ok.yaml');
    writeFileSync(path, `replication:\n  local_node_id: "a"\n${local()}`);
    const result = await runCli(['run', '-c', path, '--log-level', 'loud']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--log-level: expected one of trace, debug/);
    assert.equal(connections, 0);
  });
});
