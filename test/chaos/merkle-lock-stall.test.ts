/**
 * Found by the chaos suite (slow convergence after an engine was kill -9'd): a process killed while
 * it holds a node's Merkle refresh lock stalls every later `merkleRoot()` on that node for the
 * lock's full expiry (30 s), so the node's cold path, and anyone checking convergence, waits that
 * long. Marked `todo` until the store fixes it: the store is not ours to change here.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import { SyncStore } from '../../src/store/sync-store.js';
import { startRedis, type RedisServer } from '../helpers/redis-server.js';

describe('Merkle refresh lock left by a crashed process', () => {
  let redis: RedisServer;
  let store: SyncStore;
  before(async () => {
    redis = await startRedis();
    store = await SyncStore.connect({ redisUrl: redis.url, nodeId: 'node-a' });
  });
  after(async () => {
    await store.close();
    await redis.stop();
  });

  it(
    'merkleRoot() answers within 5 s although a crashed holder left the lock',
    {
      todo: 'store bug: merkleRoot() waits lockWaitMs (30 s) for a lock whose holder is dead',
      timeout: 60_000,
    },
    async () => {
      await store.put('uk.a.1', { v: 1 });
      await store.merkleRoot();
      await store.put('uk.a.2', { v: 2 });
      // What a process kill -9'd mid-refresh leaves behind: the lock, with its token and expiry
      // (the store sets 30 s; 10 s here keeps the suite quicker and shows the stall as well).
      const admin = createClient({ url: redis.url });
      await admin.connect();
      await admin.set(store.keys.lock, 'token-of-a-dead-process', { PX: 10_000 });
      admin.destroy();
      const start = Date.now();
      await store.merkleRoot();
      const took = Date.now() - start;
      assert.ok(took < 5_000, `merkleRoot() took ${took} ms`);
    },
  );
});
