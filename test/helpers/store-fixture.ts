/**
 * SyncStores on one real redis-server for a test file: each store under its own key prefix, a raw
 * client (replies as Buffers) to look at what they keep, and everything closed by `close()`.
 */
import { createClient, RESP_TYPES } from '@redis/client';
import { SyncStore, type SyncStoreOptions } from '../../src/store/sync-store.js';
import { startRedis, type RedisServer } from './redis-server.js';

/** A raw client whose string replies are Buffers. */
export function createRawClient(url: string) {
  return createClient({ url }).withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
}

export interface StoreFixture {
  readonly server: RedisServer;
  readonly raw: ReturnType<typeof createRawClient>;
  /** A store of node `node-a` under a fresh prefix, its clock at `now` unless `options` say. */
  newStore(options?: Partial<SyncStoreOptions>): Promise<SyncStore>;
  close(): Promise<void>;
}

/** Starts a redis-server and a raw client on it; stores' prefixes are `<tag><n>:`. */
export async function storeFixture(tag: string, now: number): Promise<StoreFixture> {
  const server = await startRedis();
  const raw = createRawClient(server.url);
  await raw.connect();
  const stores: SyncStore[] = [];
  return {
    server,
    raw,
    async newStore(options = {}) {
      const store = await SyncStore.connect({
        redisUrl: server.url,
        redisPrefix: `${tag}${stores.length + 1}:`,
        nodeId: 'node-a',
        clock: () => now,
        ...options,
      });
      stores.push(store);
      return store;
    },
    async close() {
      await Promise.all(stores.map((s) => s.close()));
      await raw.close();
      await server.stop();
    },
  };
}
