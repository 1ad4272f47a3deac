/**
 * Found by the chaos suite (slow convergence after an engine was kill -9'd): a process killed while
 * it held a node's Merkle refresh lock stalled every later `merkleRoot()` on that node for the
 * lock's full expiry (30 s). Fixed: the lock names its holder's connection, and a waiter that finds
 * that connection gone takes the lock over at once.
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
    { timeout: 60_000 },
    async () => {
      await store.put('uk.a.1', { v: 1 });
      await store.merkleRoot();
      await store.put('uk.a.2', { v: 2 });
      // What a process kill -9'd mid-refresh leaves behind: the lock, with its holder's token and a
      // long expiry, and the holder's connection closed.
      const dead = createClient({ url: redis.url });
      await dead.connect();
      const id = await dead.sendCommand<number>(['CLIENT', 'ID']);
      await dead.set(store.keys.lock, `${id}:a-refresh-that-never-finished`, { PX: 30_000 });
      dead.destroy();
      const start = Date.now();
      await store.merkleRoot();
      const took = Date.now() - start;
      assert.ok(took < 5_000, `merkleRoot() took ${took} ms`);
    },
  );
});
