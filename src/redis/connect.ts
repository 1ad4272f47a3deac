/**
 * The one place Redis connections are built (SPEC §8): socket and TLS options, credentials, and
 * whether a `redis_url` is a single instance or a Redis Cluster. A URL whose server reports
 * `cluster_enabled:1` ({@link reportsCluster}, asked on the first connection) is used as a
 * cluster (node-redis `RedisCluster`, seeded by the URL, the rest discovered) unless the config's
 * `cluster` says otherwise; callers get a {@link CommandSender} either way. Single-instance
 * clients ({@link createRedisConnection}) reconnect forever with jittered backoff; errors are
 * described with credentials masked ({@link describeError}). A peer's stream and queries are read
 * on bounded connections (engine/stream-connection.ts, engine/query-connection.ts), whose sockets
 * take the same {@link socketOptions}.
 */
import { RedisCluster } from '@redis/client';
import type { RedisClusterOptions } from '@redis/client';
import type { ResolvedTls } from '../config/types.js';
import { redactSecrets } from '../observability/redact.js';
import { newRedisClient } from '../store/redis-io.js';
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

/** The client type this package uses (RESP3). */
export type RedisConnection = ReturnType<typeof createRedisConnection>;

/** Options for {@link createRedisConnection}. */
export interface RedisConnectionOptions {
  readonly url: string;
  readonly tls?: ResolvedTls | undefined;
  /** Shown as CLIENT SETNAME, so operators can see who is connected. */
  readonly name?: string;
  /** @default 100 */
  readonly reconnectBaseMs?: number;
  /** @default 5000 */
  readonly reconnectMaxMs?: number;
  /** @default 5000 */
  readonly connectTimeoutMs?: number;
  /**
   * Per-command timeout; 0 disables it (for blocking reads, which carry their own deadline: the
   * client's 5 s default would cut every `XREAD BLOCK 5000` short). @default 15_000
   */
  readonly commandTimeoutMs?: number;
  /**
   * Queue commands while disconnected (the application's store: a command waits for the
   * reconnection) instead of rejecting them at once (the engine's connections, which back off).
   * @default false
   */
  readonly offlineQueue?: boolean;
  /** Called on every connection error (the client keeps retrying on its own). */
  readonly onError?: (error: Error) => void;
  readonly onReady?: () => void;
  readonly onEnd?: () => void;
}

/** Capped exponential backoff with full jitter in [delay/2, delay]. */
export function reconnectDelay(retries: number, baseMs: number, maxMs: number): number {
  const delay = Math.min(maxMs, baseMs * 2 ** Math.min(retries, 20));
  return Math.round(delay / 2 + (Math.random() * delay) / 2);
}

/**
 * Creates (does not connect) a single-instance client that reconnects forever with capped,
 * jittered backoff, and by default rejects commands at once while disconnected (no offline
 * queue), so callers see failures and can back off.
 */
export function createRedisConnection(options: RedisConnectionOptions) {
  const base = options.reconnectBaseMs ?? 100;
  const max = options.reconnectMaxMs ?? 5000;
  const socket = socketOptions({
    url: options.url,
    tls: options.tls,
    connectTimeoutMs: options.connectTimeoutMs ?? 5000,
    reconnectDelay: (retries) => reconnectDelay(retries, base, max),
  });
  const client = newRedisClient({
    url: options.url,
    socket,
    disableOfflineQueue: options.offlineQueue !== true,
    commandOptions: { timeout: options.commandTimeoutMs ?? 15_000 },
    ...(options.name !== undefined ? { name: options.name } : {}),
  });
  client.on('error', (error: Error) => options.onError?.(error));
  if (options.onReady !== undefined) client.on('ready', options.onReady);
  if (options.onEnd !== undefined) client.on('end', options.onEnd);
  return client;
}

/**
 * Destroys a client without waiting for pending replies; never throws. Called whatever the client
 * reports as open: one destroyed while connecting may still have opened its socket since.
 */
export function destroyQuietly(client: Closable): void {
  try {
    client.destroy();
  } catch {
    // already closed
  }
}

/** What {@link closeQuietly} closes: a client, or a cluster client. */
export interface Closable {
  readonly isOpen: boolean;
  close(): Promise<unknown>;
  destroy(): void;
}

/** Closes a client gracefully (QUIT-like), falling back to destroy after `timeoutMs`. */
export async function closeQuietly(client: Closable, timeoutMs = 1000): Promise<void> {
  if (!client.isOpen) return;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.close(),
      new Promise((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
  } catch {
    // fall through to destroy
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    destroyQuietly(client);
  }
}

/**
 * A Redis error (or any error) as text safe to log or expose: its message, with the credentials
 * of every `redis://`/`rediss://` URL in it masked whole (`redis://***@host`) and any other
 * URL's password or password parameter masked (observability/redact.ts); at most 300 characters.
 */
export function describeError(error: unknown): string {
  const text = error instanceof Error ? error.message || error.name : String(error);
  return redactSecrets(text.replace(/\b(rediss?:\/\/)[^@\s/]*@/gi, '$1***@')).slice(0, 300);
}
