/**
 * The small slice of a Redis client the store and the reader use, so any `@redis/client` client
 * (plain, type-mapped, or a test double of the same shape) fits.
 */
import { RedisClient, RESP_TYPES } from '@redis/client';
import type { RedisArgument, RedisClientOptions, TypeMapping } from '@redis/client';

/**
 * Bytes the replies to a pipeline of commands may hold together, shared by the commands it is
 * given to and spent as their replies arrive. Only a peer's query connection
 * (engine/query-connection.ts) honours it: there a reply that does not fit what is left is refused
 * (`PeerReplyTooLargeError` with `overBudget`), to be sent again on its own. Other senders ignore
 * it (this node's own Redis is trusted).
 */
export interface ReplyBudget {
  remaining: number;
}

/** Per-command options a {@link CommandSender} takes. */
export interface SendOptions {
  readonly typeMapping?: TypeMapping;
  readonly replyBudget?: ReplyBudget;
}

/** A client that can send a raw command; `@redis/client`'s `RedisClientType` satisfies it. */
export interface CommandSender {
  sendCommand<T = unknown>(args: readonly RedisArgument[], options?: SendOptions): Promise<T>;
}

/** Per-command options that make bulk strings come back as Buffers (binary-safe content). */
export const AS_BUFFERS = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } } as const;

/** Per-command options that make bulk strings come back as utf-8 strings. */
export const AS_STRINGS = { typeMapping: {} } as const;

/** A bulk reply as a string (a Buffer decoded as utf-8), or undefined for a nil. */
export function asString(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (typeof value === 'number') return String(value);
  return undefined;
}

/**
 * Every client of ours is a bare `RedisClient`: we only send raw commands, and `createClient` (or
 * `RedisClient.factory`) builds a subclass with every Redis command attached, which costs the
 * process about 20 MB of RSS for methods we never call.
 */
export function newRedisClient(options: RedisClientOptions) {
  return new RedisClient(options);
}
