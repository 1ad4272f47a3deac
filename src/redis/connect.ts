/**
 * The one place Redis connections are built (SPEC §8): socket and TLS options, credentials, and
 * whether a `redis_url` is a single instance or a Redis Cluster. A URL whose server reports
 * `cluster_enabled:1` ({@link reportsCluster}, asked on the first connection) is used as a
 * cluster (node-redis `RedisCluster`, seeded by the URL, the rest discovered) unless the config's
 * `cluster` says otherwise; callers get a {@link CommandSender} either way.
 */
import { RedisCluster } from '@redis/client';
import type { RedisClusterOptions } from '@redis/client';
import type { ResolvedTls } from '../config/types.js';
import { AS_STRINGS, asString, type CommandSender } from '../store/redis-io.js';
import { ClusterSender } from './cluster-sender.js';

/** Socket settings shared by every connection. */
export interface SocketSettings {
  readonly url: string;
  readonly tls?: ResolvedTls | undefined;
  /** @default 5000 */
  readonly connectTimeoutMs?: number;
  /** Delay before reconnect attempt `retries` (0-based), ms. */
  readonly reconnectDelay: (retries: number) => number;
}

/** node-redis socket options for `settings`: TLS for `rediss://`, with its CA and client cert. */
export function socketOptions(settings: SocketSettings) {
  const tls = settings.tls;
  return {
    connectTimeout: settings.connectTimeoutMs ?? 5000,
    reconnectStrategy: settings.reconnectDelay,
    ...(new URL(settings.url).protocol === 'rediss:'
      ? {
          tls: true as const,
          rejectUnauthorized: tls?.rejectUnauthorized ?? true,
          ...(tls?.ca !== undefined ? { ca: tls.ca } : {}),
          ...(tls?.cert !== undefined ? { cert: tls.cert } : {}),
          ...(tls?.key !== undefined ? { key: tls.key } : {}),
          ...(tls?.servername !== undefined ? { servername: tls.servername } : {}),
        }
      : {}),
  };
}

/** The user name and password a URL carries (percent-decoded), for connections it does not seed. */
export function urlCredentials(url: string): { username?: string; password?: string } {
  const parsed = new URL(url);
  return {
    ...(parsed.username !== '' ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password !== '' ? { password: decodeURIComponent(parsed.password) } : {}),
  };
}

/** True when the server behind `client` runs in cluster mode (`INFO cluster`). */
export async function reportsCluster(client: CommandSender): Promise<boolean> {
  const info = asString(await client.sendCommand(['INFO', 'cluster'], AS_STRINGS)) ?? '';
  return /^cluster_enabled:1\b/m.test(info);
}

/** Options of {@link createClusterSender}. */
export interface ClusterConnectionOptions extends SocketSettings {
  /** Shown as CLIENT SETNAME on every shard connection. */
  readonly name?: string;
  /** Per-command timeout, ms; 0 disables it. @default 15_000 */
  readonly commandTimeoutMs?: number;
  /** Queue commands while a shard reconnects (else they fail at once). @default false */
  readonly offlineQueue?: boolean;
}

/** A cluster connection: its sender, and the client to connect, watch and close. */
/** The bare cluster client (no command methods attached: we only send raw commands). */
export type ClusterClient = ReturnType<typeof newClusterClient>;

function newClusterClient(options: RedisClusterOptions) {
  return new RedisCluster(options);
}

export interface ClusterConnection {
  readonly sender: ClusterSender;
  readonly client: ClusterClient;
}

/**
 * Creates (does not connect) a Redis Cluster client seeded by `options.url`: every shard
 * connection, discovered or not, gets the URL's credentials, the TLS settings and the timeouts.
 */
export function createClusterConnection(options: ClusterConnectionOptions): ClusterConnection {
  const defaults = {
    socket: socketOptions(options),
    ...urlCredentials(options.url),
    disableOfflineQueue: options.offlineQueue !== true,
    commandOptions: { timeout: options.commandTimeoutMs ?? 15_000 },
    ...(options.name !== undefined ? { name: options.name } : {}),
  };
  const clusterOptions: RedisClusterOptions = {
    rootNodes: [{ url: options.url, socket: socketOptions(options) }],
    defaults,
  };
  const client = newClusterClient(clusterOptions);
  return { client, sender: new ClusterSender(client) };
}

/**
 * `WAIT numreplicas timeout` on the connection that wrote `key` (on a cluster: the connection to
 * the master of its slot): how many replicas hold every write made on it so far.
 */
export async function waitForReplicas(
  sender: CommandSender,
  key: string,
  replicas: number,
  timeoutMs: number,
): Promise<number> {
  const args = ['WAIT', String(replicas), String(timeoutMs)];
  const reply =
    sender instanceof ClusterSender
      ? await sender.sendToMasterOf(key, args)
      : await sender.sendCommand(args);
  return Number(reply);
}
