/**
 * This node's own store over a connection to `local.redis_url` built from the resolved config
 * (TLS files, reconnect with backoff, no offline queue): a {@link SyncStore} on a single
 * instance, a {@link PartitionedStore} on a Redis Cluster (`local.cluster`, or what the server
 * reports when that is not set: docs/PROTOCOL.md §9).
 */
import type { ResolvedConfig } from '../config/types.js';
import { ReplicationError } from '../errors.js';
import { redactSecrets } from '../observability/redact.js';
import {
  closeQuietly,
  createClusterConnection,
  createRedisConnection,
  reconnectDelay,
  reportsCluster,
} from '../redis/connect.js';
import { PartitionedStore } from '../store/partitioned-store.js';
import type { CommandSender } from '../store/redis-io.js';
import { SyncStore } from '../store/sync-store.js';
import { redisClientName } from './client-name.js';

/** The store of a node: one Redis, or a partitioned store on a Redis Cluster. */
export type NodeStore = SyncStore | PartitionedStore;

/** A store and the connection it runs on (which the caller closes with {@link LocalStoreHandle.close}). */
export interface LocalStoreHandle {
  readonly store: NodeStore;
  /** Raw commands to the store's Redis (routed by key on a cluster). */
  readonly sender: CommandSender;
  /** True when the store is on a Redis Cluster. */
  readonly cluster: boolean;
  /** Calls `listener` each time the connection (on a cluster: a shard's) is ready again. */
  onReady(listener: () => void): void;
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
    if (!(local.cluster ?? (await Promise.race([reportsCluster(client), giveUp])))) {
      const store = new SyncStore(client, storeOptions(config));
      return {
        store,
        sender: client,
        cluster: false,
        onReady: (listener) => client.on('ready', listener),
        close: async () => {
          await store.close();
          await close();
        },
      };
    }
    // A cluster: its own client, seeded by the URL, every shard discovered.
    const { client: cluster, sender } = createClusterConnection({
      url: local.redisUrl,
      tls: local.tls,
      name: redisClientName(options.clientName ?? 'replication-engine'),
      reconnectDelay: (retries) => reconnectDelay(retries, 100, 5000),
    });
    cluster.on('error', (error: Error) => {
      lastError = redactSecrets(error.message);
      options.onError?.(lastError);
    });
    cluster.on('node-error', (error: Error) => {
      lastError = redactSecrets(error.message);
      options.onError?.(lastError);
    });
    await close();
    const closeCluster = async (): Promise<void> => {
      await cluster.close().catch(() => cluster.destroy());
    };
    try {
      await Promise.race([cluster.connect(), giveUp]);
      const store = await Promise.race([
        PartitionedStore.open(sender, {
          ...storeOptions(config),
          partitions: config.store.partitions,
        }),
        giveUp,
      ]);
      return {
        store,
        sender,
        cluster: true,
        onReady: (listener) => cluster.on('node-ready', listener),
        close: async () => {
          await store.close();
          await closeCluster();
        },
      };
    } catch (error) {
      await closeCluster();
      throw error;
    }
  } catch (error) {
    await close();
    throw error;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    if (onAbort !== undefined) options.signal?.removeEventListener('abort', onAbort);
  }
}

/** A node's store options: its id, prefix and `store:` settings. */
function storeOptions(config: ResolvedConfig) {
  return {
    nodeId: config.replication.localNodeId,
    redisPrefix: config.local.redisPrefix,
    store: config.store,
  };
}
