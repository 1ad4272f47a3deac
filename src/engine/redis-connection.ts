/**
 * node-redis connections to peers (queries: XINFO, records, the Merkle tree, pings) and the local
 * node: reconnect forever with capped, jittered exponential backoff, fail fast while disconnected.
 * A peer's stream is read on a StreamConnection instead (stream-connection.ts: replies bounded).
 */
import type { ResolvedTls } from '../config/types.js';
import { socketOptions } from '../redis/connect.js';
import { newRedisClient } from '../store/redis-io.js';

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
 * Creates (does not connect) a client that reconnects forever and rejects commands at once while
 * disconnected (no offline queue), so callers see failures and can back off.
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
    disableOfflineQueue: true,
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
