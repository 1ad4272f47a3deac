/**
 * This node's own store: a {@link SyncStore} over a connection to `local.redis_url` built from the
 * resolved config (TLS files, reconnect with backoff, no offline queue).
 */
import type { ResolvedConfig } from '../config/types.js';
import { ReplicationError } from '../errors.js';
import { closeQuietly, createRedisConnection } from '../engine/redis-connection.js';
import type { RedisConnection } from '../engine/redis-connection.js';
import { redactSecrets } from '../observability/redact.js';
import { SyncStore } from '../store/sync-store.js';
import { redisClientName } from './client-name.js';

/** A store and the connection it runs on (which the caller closes with {@link LocalStoreHandle.close}). */
export interface LocalStoreHandle {
  readonly store: SyncStore;
  readonly client: RedisConnection;
  /** Closes the connection; safe to call twice. */
  close(): Promise<void>;
}

/** Options of {@link connectLocalStore}. */
export interface ConnectLocalOptions {
  /**
   * Shown as the Redis CLIENT SETNAME, made legal there by {@link redisClientName} (a node id may
   * be any Unicode text). @default 'replication-engine'
   */
  readonly clientName?: string;
  /**
   * Give up after this long without a first connection (`LOCAL_REDIS_UNAVAILABLE`); by default
   * the connection is retried until `signal` aborts.
   */
  readonly timeoutMs?: number;
  /** Aborts the wait for the first connection. */
  readonly signal?: AbortSignal;
  /** Every connection error, credentials redacted (the client keeps retrying on its own). */
  readonly onError?: (message: string) => void;
}

/**
 * Connects to this node's Redis (`config.local`) and returns its {@link SyncStore}, with the
 * `store:` settings and `replication.local_node_id` as the origin of local writes.
 * @throws {ReplicationError} `LOCAL_REDIS_UNAVAILABLE` on timeout, `ABORTED` when `signal` aborts.
 */
export async function connectLocalStore(
  config: ResolvedConfig,
  options: ConnectLocalOptions = {},
): Promise<LocalStoreHandle> {
  const { local } = config;
  let lastError = 'no answer';
  const client = createRedisConnection({
    url: local.redisUrl,
    tls: local.tls,
    name: redisClientName(options.clientName ?? 'replication-engine'),
    onError: (error) => {
      lastError = redactSecrets(error.message);
      options.onError?.(lastError);
    },
  });
  const close = (): Promise<void> => closeQuietly(client);
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const giveUp = new Promise<never>((_resolve, reject) => {
    if (options.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        reject(
          new ReplicationError(
            'LOCAL_REDIS_UNAVAILABLE',
            `cannot connect to the local Redis ${local.displayUrl} within ${options.timeoutMs} ms: ${lastError}`,
          ),
        );
      }, options.timeoutMs);
    }
    const signal = options.signal;
    if (signal !== undefined) {
      onAbort = () => reject(new ReplicationError('ABORTED', 'aborted while connecting to Redis'));
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
  });
  try {
    await Promise.race([client.connect(), giveUp]);
  } catch (error) {
    await close();
    throw error;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    if (onAbort !== undefined) options.signal?.removeEventListener('abort', onAbort);
  }
  const store = new SyncStore(client, {
    nodeId: config.replication.localNodeId,
    redisPrefix: local.redisPrefix,
    store: config.store,
  });
  return {
    store,
    client,
    close: async () => {
      await store.close();
      await close();
    },
  };
}
