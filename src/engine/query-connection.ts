/**
 * The connection a peer is queried on (the PeerLink's query connection: the cold path's Merkle
 * reads and record fetches, XINFO for the stream's lag and gaps, TIME, pings), with every reply
 * parsed within bounds as it streams in (issue 19), like the hot path's stream reader: a
 * {@link StreamConnection} (bounded-resp.ts) serving the {@link CommandSender} interface the
 * readers use. node-redis gathers a reply whole before handing it out, so a node hash, a dirty
 * mark or a bucket field name of 100 MB in the peer's Redis was received whole; here each value
 * has the bound of what the command reads ({@link queryBounds}): a value over it is skipped
 * unread and comes back as a {@link Dropped} marker (its size), which the readers treat as
 * malformed, and a reply over its own bound is refused ({@link PeerReplyTooLargeError}). Both are
 * reported to `onOversized` (the peer misbehaving), except the entries `XINFO STREAM` shows,
 * whose values are the stream's business, not this read's.
 *
 * Replies are RESP2 (what StreamConnection speaks): hashes come back as flat arrays, which every
 * reader of a peer accepts. Bulk strings are utf-8 strings, or Buffers with `AS_BUFFERS`.
 */
import { RESP_TYPES, type RedisArgument } from '@redis/client';
import { MAX_KEY_BYTES } from '../codec/cdc.js';
import { PeerReplyTooLargeError } from '../errors.js';
import type { QUERY_COMMANDS } from '../observability/metric-definitions.js';
import type { CommandSender, SendOptions } from '../store/redis-io.js';
import {
  Dropped,
  Truncated,
  VALUE_OVERHEAD_BYTES,
  type ReplyBounds,
  type RespValue,
} from './bounded-resp.js';
import { StreamConnection, type StreamConnectionOptions } from './stream-connection.js';

/** A Merkle node hash: sha256 in lowercase hex. */
const NODE_HASH_BYTES = 64;
/** A value that is no key, hash or record: a count, an id, a clock, a cursor, a short reply. */
const SMALL_VALUE_BYTES = 1024;
/**
 * What a reply may hold beyond its values: the parser charges a reply for each socket chunk one
 * of its kept values is a view of (up to 64 KiB each), so a reply's bound is about twice its
 * values plus this.
 */
const REPLY_SLACK_BYTES = 1024 * 1024;
/**
 * Replies whose length the request does not bound (pages, samples): held to this. It is the
 * repair's fetch budget (merkle-repair.ts), and far above what an honest page brings: a page of
 * 1,000 fields reaches it only with keys of 16 KiB on average.
 */
const LARGE_REPLY_BYTES = 16 * 1024 * 1024;
/** What the entries `XINFO STREAM` shows may keep: their ids and small fields. */
const XINFO_ENTRY_BYTES = 256 * 1024;
/** `INFO` (a few KiB from an honest server). */
const INFO_BYTES = 1024 * 1024;
/** @default for {@link QueryConnectionOptions.commandTimeoutMs} */
const COMMAND_TIMEOUT_MS = 15_000;

/** The bounds of one command's reply, and whether values it drops are the peer misbehaving. */
export interface QueryBounds extends ReplyBounds {
  /** The command's name as metrics label it (lowercase; `other` for one not listed). */
  readonly command: QueryCommand;
  /** Dropped values and truncated elements are expected (XINFO's entries): not reported. */
  readonly dropsExpected: boolean;
}

/** A command as metrics label it. */
export type QueryCommand = (typeof QUERY_COMMANDS)[number];

function bounds(
  command: QueryCommand,
  valueBytes: number,
  replyBytes: number,
  entryDepth = 1,
): QueryBounds {
  return {
    command,
    dropsExpected: false,
    maxValueBytes: valueBytes,
    maxReplyBytes: replyBytes,
    maxElementBytes: replyBytes,
    entryDepth,
  };
}

/** The bound of a reply of `values` values of at most `valueBytes` each. */
function replyOf(values: number, valueBytes: number): number {
  return values * (2 * valueBytes + VALUE_OVERHEAD_BYTES) + REPLY_SLACK_BYTES;
}

/**
 * The bounds of the reply to `args`, from the request alone: a node hash (a field of
 * `…merkle:nodes`) is 64 hex digits, a hash field name is a key (at most 64 KiB, as the hot path
 * bounds keys), a `GETRANGE` brings no more than the range asked (the repair measured the value
 * with `STRLEN` and asks no more than `max_item_bytes` and a frame's overhead), and a reply
 * whose length the request leaves open (a page, a sample) is held to 16 MiB.
 */
export function queryBounds(args: readonly RedisArgument[]): QueryBounds {
  const name = String(args[0]).toUpperCase();
  const key = args[1] === undefined ? '' : String(args[1]);
  const nodeHashes = key.endsWith('merkle:nodes');
  switch (name) {
    case 'HGET':
      return nodeHashes
        ? bounds('hget', NODE_HASH_BYTES, replyOf(1, NODE_HASH_BYTES))
        : bounds('hget', MAX_KEY_BYTES, replyOf(1, MAX_KEY_BYTES));
    case 'HMGET': {
      const value = nodeHashes ? NODE_HASH_BYTES : MAX_KEY_BYTES;
      return bounds('hmget', value, replyOf(args.length - 2, value));
    }
    case 'GET':
      return bounds('get', MAX_KEY_BYTES, replyOf(1, MAX_KEY_BYTES));
    case 'GETRANGE': {
      const start = Number(String(args[2]));
      const end = Number(String(args[3]));
      const length =
        Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && end >= start
          ? end - start + 1
          : 0;
      return bounds('getrange', length, replyOf(1, length));
    }
    case 'HRANDFIELD':
      return bounds('hrandfield', MAX_KEY_BYTES, LARGE_REPLY_BYTES);
    case 'HSCAN':
      // [cursor, [field, value, …]]: the fields are counted against the bound one by one.
      return bounds('hscan', MAX_KEY_BYTES, LARGE_REPLY_BYTES, 2);
    case 'HGETALL':
      return bounds('hgetall', MAX_KEY_BYTES, LARGE_REPLY_BYTES);
    case 'XINFO':
      // Its first and last entries are whole entries: their values are skipped past 64 KiB and
      // each entry keeps at most XINFO_ENTRY_BYTES (its id comes first, and is all that is read).
      return {
        command: 'xinfo',
        dropsExpected: true,
        maxValueBytes: MAX_KEY_BYTES,
        maxElementBytes: XINFO_ENTRY_BYTES,
        maxReplyBytes: LARGE_REPLY_BYTES,
        entryDepth: 1,
      };
    case 'XRANGE':
    case 'XREVRANGE':
      return bounds('xrange', MAX_KEY_BYTES, LARGE_REPLY_BYTES);
    case 'INFO':
      return bounds('info', INFO_BYTES, replyOf(1, INFO_BYTES));
    case 'HLEN':
    case 'STRLEN':
    case 'XLEN':
    case 'TIME':
    case 'PING':
      return bounds(
        name.toLowerCase() as QueryCommand,
        SMALL_VALUE_BYTES,
        replyOf(2, SMALL_VALUE_BYTES),
      );
    default:
      return bounds('other', MAX_KEY_BYTES, LARGE_REPLY_BYTES);
  }
}

/** Options of {@link QueryConnection}. */
export interface QueryConnectionOptions extends StreamConnectionOptions {
  /** A reply that has not come by then fails (the socket stays: see StreamConnection.send). @default 15_000 */
  readonly commandTimeoutMs?: number;
  /**
   * The peer sent something over its bound: `values` values skipped (or, with `values` 0, a
   * whole reply refused) in the reply to `command`.
   */
  readonly onOversized?: (command: QueryCommand, values: number) => void;
}

/** Whether `options` ask for bulk strings as Buffers (`AS_BUFFERS`). */
function wantsBuffers(options: SendOptions | undefined): boolean {
  return options?.typeMapping?.[RESP_TYPES.BLOB_STRING] === Buffer;
}

/** What {@link convert} met: values dropped, an element truncated, and the bytes it kept. */
interface Converted {
  count: number;
  truncated: boolean;
  bytes: number;
}

/**
 * A reply as node-redis would hand it out (strings, or Buffers), with {@link Dropped} markers
 * where values were skipped.
 */
function convert(value: RespValue, buffers: boolean, seen: Converted): unknown {
  seen.bytes += VALUE_OVERHEAD_BYTES;
  if (Buffer.isBuffer(value)) {
    seen.bytes += value.length;
    if (!buffers) return value.toString('utf8');
    // A view of a socket chunk would keep the whole chunk alive: a copy of its own bytes.
    return value.length === value.buffer.byteLength ? value : Buffer.from(value);
  }
  if (Array.isArray(value)) return value.map((v) => convert(v, buffers, seen));
  if (value instanceof Dropped) seen.count += 1;
  if (value instanceof Truncated) seen.truncated = true;
  return value;
}

/** A peer's query connection: commands sent, and replies parsed, within {@link queryBounds}. */
export class QueryConnection extends StreamConnection implements CommandSender {
  readonly #timeoutMs: number;
  readonly #onOversized: QueryConnectionOptions['onOversized'];

  constructor(options: QueryConnectionOptions) {
    super(options);
    this.#timeoutMs = options.commandTimeoutMs ?? COMMAND_TIMEOUT_MS;
    this.#onOversized = options.onOversized;
  }

  async sendCommand<T = unknown>(
    args: readonly RedisArgument[],
    options?: SendOptions,
  ): Promise<T> {
    const limits = queryBounds(args);
    const budget = options?.replyBudget;
    let bound = limits.maxReplyBytes;
    // With a shared budget, the bound is what is left of it when the reply starts (the replies
    // before it in the pipeline spent the rest), as the parser charges it: a value is charged the
    // socket chunk it is a view of, up to twice its size (see replyOf). What is spent is what the
    // reply keeps once converted, which is what the caller holds.
    const replyBounds =
      budget === undefined
        ? limits
        : (): ReplyBounds => {
            bound = Math.min(
              limits.maxReplyBytes,
              2 * Math.max(0, budget.remaining) + REPLY_SLACK_BYTES,
            );
            return { ...limits, maxReplyBytes: bound, maxElementBytes: bound };
          };
    const reply = await this.send(args, replyBounds, this.#timeoutMs);
    const overBudget = bound < limits.maxReplyBytes;
    if (reply.cut) {
      if (!overBudget) this.#onOversized?.(limits.command, 0);
      throw new PeerReplyTooLargeError(limits.command, bound, overBudget);
    }
    const seen: Converted = { count: 0, truncated: false, bytes: 0 };
    const value = convert(reply.value, wantsBuffers(options), seen);
    if (seen.truncated && !limits.dropsExpected) {
      if (!overBudget) this.#onOversized?.(limits.command, 0);
      throw new PeerReplyTooLargeError(limits.command, bound, overBudget);
    }
    if (budget !== undefined) budget.remaining -= seen.bytes;
    if (seen.count > 0 && !limits.dropsExpected) {
      this.#onOversized?.(limits.command, seen.count);
    }
    return value as T;
  }
}
