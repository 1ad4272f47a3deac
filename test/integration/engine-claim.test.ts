/**
 * One node per store, for a library user too (issue 21): `engine.start()` claims its local store
 * as the daemon does, so a second engine with another node id on the same Redis and prefix fails
 * to start, naming the owner, before it replicates anything into it. Real redis-server.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { createClient } from '@redis/client';

import { resolveConfig } from '../../src/config/index.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import { ReplicationEngine } from '../../src/engine/engine.js';
import { StoreError } from '../../src/errors.js';
import { createLogger } from '../../src/observability/logger.js';
import { SyncStore } from '../../src/store/sync-store.js';
import { startRedis, type RedisServer } from '../helpers/redis-server.js';

const quiet = createLogger({ level: 'silent' });

async function owner(url: string, prefix: string): Promise<unknown> {
  const client = createClient({ url });
  await client.connect();
  try {
    return await client.sendCommand(['GET', `${prefix}owner`]);
  } finally {
    client.destroy();
  }
}

describe('engine.start() claims the local store', { timeout: 60_000 }, () => {
  let redis: RedisServer;
  let dir: string;
  const stores: SyncStore[] = [];
  const engines: ReplicationEngine[] = [];

  before(async () => {
    redis = await startRedis();
    dir = mkdtempSync(join(tmpdir(), 'engine-claim-'));
  });

  after(async () => {
    // Stopped here too, so that a failed assertion does not leave an engine holding the process.
    await Promise.allSettled(engines.map((e) => e.stop()));
    await Promise.allSettled(stores.map((s) => s.close()));
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const configOf = (nodeId: string, prefix: string): ResolvedConfig =>
    resolveConfig({
      replication: {
        local_node_id: nodeId,
        peers: [],
        cursor: { sqlite_path: join(dir, `${nodeId}-${prefix}cursors.db`) },
      },
      local: { redis_url: redis.url, redis_prefix: prefix },
      http: { enabled: false },
    });

  const engineOf = async (nodeId: string, prefix: string): Promise<ReplicationEngine> => {
    const config = configOf(nodeId, prefix);
    const store = await SyncStore.connect({
      redisUrl: config.local.redisUrl,
      redisPrefix: prefix,
      nodeId,
      store: config.store,
    });
    stores.push(store);
    const engine = new ReplicationEngine(config, store, { logger: quiet });
    engines.push(engine);
    return engine;
  };

  it('a second node id on the same Redis and prefix: start() rejects, naming the owner', async () => {
    const first = await engineOf('lib-x', 'shared:');
    await first.start();
    assert.equal(await owner(redis.url, 'shared:'), 'lib-x');

    const second = await engineOf('lib-y', 'shared:');
    await assert.rejects(second.start(), (error: unknown) => {
      assert.ok(error instanceof StoreError, String(error));
      assert.match(
        error.message,
        /this Redis \(prefix "shared:"\) belongs to node "lib-x", not "lib-y": two nodes must not share a store/,
      );
      assert.match(error.message, /DEL shared:owner/);
      return true;
    });
    assert.equal(second.state, 'failed');
    assert.equal(await owner(redis.url, 'shared:'), 'lib-x');

    // The same id again is a restart, and another prefix is another store.
    await first.stop();
    const again = await engineOf('lib-x', 'shared:');
    await again.start();
    assert.equal(again.state, 'running');
    await again.stop();
    const elsewhere = await engineOf('lib-y', 'other:');
    await elsewhere.start();
    assert.equal(await owner(redis.url, 'other:'), 'lib-y');
    await elsewhere.stop();
  });
});
