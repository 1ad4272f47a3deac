import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { APPLIES_IN_FLIGHT } from '../../src/engine/tailer.js';
import { SyncStore } from '../../src/store/sync-store.js';
import { startDaemon, type Daemon } from '../fixtures/cli/cli-process.js';
import { eventually, freePort, startRedis, type RedisServer } from '../helpers/redis-server.js';
import { snapshot } from '../helpers/mesh.js';

const BACKLOG = 20_000;
const BATCH = 500;

describe('hot path: the engine killed with SIGKILL mid-backlog', () => {
  let a: RedisServer;
  let b: RedisServer;
  let dir: string;
  let source: SyncStore;
  let target: SyncStore;
  const keys: string[] = [];

  before(async () => {
    [a, b] = await Promise.all([startRedis(), startRedis()]);
    dir = mkdtempSync(join(tmpdir(), 'repl-crash-'));
    source = await SyncStore.connect({ redisUrl: a.url, nodeId: 'node-a' });
    target = await SyncStore.connect({ redisUrl: b.url, nodeId: 'node-b' });
    // A backlog on A, with overwrites and deletes so a replayed batch would show up if misapplied.
    for (let i = 0; i < BACKLOG; i += 1000) {
      await Promise.all(
        Array.from({ length: 1000 }, (_, j) => {
          const n = i + j;
          const key = `uk.nhs.patient.${n % 15_000}`;
          return n % 97 === 0 ? source.delete(key) : source.put(key, { n, pad: 'x'.repeat(300) });
        }),
      );
    }
    for (let n = 0; n < 15_000; n++) keys.push(`uk.nhs.patient.${n}`);
  });

  after(async () => {
    await Promise.allSettled([source.close(), target.close()]);
    await Promise.allSettled([a.stop(), b.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  function config(port: number): string {
    const path = join(dir, 'node-b.yaml');
    writeFileSync(
      path,
      [
        'replication:',
        '  local_node_id: node-b',
        '  settings:',
        `    hot_path: { batch_size: ${BATCH}, max_batch_size: ${BATCH}, block_timeout: 1s }`,
        '    cold_path: { enabled: false }',
        '  peers:',
        `    - { node_id: node-a, redis_url: "${a.url}" }`,
        '  cursor:',
        `    sqlite_path: ${join(dir, 'cursors.db')}`,
        'local:',
        `  redis_url: "${b.url}"`,
        'http:',
        `  port: ${port}`,
        '',
      ].join('\n'),
    );
    return path;
  }

  async function metric(port: number, name: string): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    return text
      .split('\n')
      .filter((l) => l.startsWith(`${name}{`))
      .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
  }

  it('replays at most the last uncommitted batch and ends equal to the source', async () => {
    const port1 = await freePort();
    let daemon: Daemon = startDaemon(['-c', config(port1)]);
    // Kill it for real while it is in the middle of the backlog.
    await eventually(
      async () => (await metric(port1, 'replication_cdc_events_read_total')) >= 4 * BATCH,
      'mid-backlog',
      60_000,
    );
    daemon.child.kill('SIGKILL');
    const exit = await daemon.exited;
    assert.equal(exit.signal, 'SIGKILL');
    const before = (await target.getRecords(keys)).length;
    assert.ok(before < keys.length, 'killed before the end');

    const port2 = await freePort();
    daemon = startDaemon(['-c', config(port2)]);
    try {
      await eventually(
        async () =>
          JSON.stringify(await snapshot(target, keys)) ===
          JSON.stringify(await snapshot(source, keys)),
        'B equals A after the restart',
        90_000,
      );
      // Events re-read after the restart are exactly those of the batches that were applied but
      // not yet committed: every one is a duplicate, and there are at most the batches in flight
      // (one applied while the next ones wait in Redis's queue) of them.
      const deduped = await metric(port2, 'replication_cdc_events_deduped_total');
      const read = await metric(port2, 'replication_cdc_events_read_total');
      assert.ok(
        deduped <= APPLIES_IN_FLIGHT * BATCH,
        `replayed ${deduped} events, more than the ${APPLIES_IN_FLIGHT} batches in flight`,
      );
      assert.ok(read <= BACKLOG, `read ${read}`);
    } finally {
      daemon.child.kill('SIGTERM');
      await daemon.exited;
    }
  });
});
