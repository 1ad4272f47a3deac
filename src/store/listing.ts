/**
 * Listing and counting a store's records by key prefix (`scan`, `count`), in bounded pages, by
 * walking the Merkle buckets (docs/PROTOCOL.md §4) instead of `SCAN MATCH` over the item keys.
 *
 * Why the buckets: every write and apply keeps a key's bucket entry in the same script call as
 * its record, a key is in exactly one bucket for ever (its bucket is a hash of the key), and a
 * bucket is read whole and atomically. A walk over the buckets in order therefore returns every
 * key present throughout it exactly once, with no memory of what it returned, whatever is written
 * meanwhile. `SCAN` promises only "at least once" (a key may come twice when Redis resizes its
 * table), so exactly once would cost a set of every key returned so far, which grows with the
 * store; and `MATCH` is a glob that a prefix must be escaped for. `SCAN` also walks every key of
 * the Redis database (other prefixes, streams, buckets), where this walks only this store's
 * buckets; on a Redis Cluster each partition walks its own buckets on its own shard, through
 * failovers and resharding like any other command of it. The price: the order is the buckets'
 * (by the SHA-256 of the key), not the keys', and a prefix does not narrow the walk, only what it
 * returns (as with `SCAN MATCH`).
 */
import { hasLoneSurrogate } from '../codec/cdc.js';
import { StoreError } from '../errors.js';
import { isLive, type StoredRecord } from '../model/record.js';
import type { StoreKeys } from './keys.js';
import { SCRIPTS } from './lua-script.js';
import { DEPTH, FANOUT } from './merkle-hash.js';
import type { MerkleReader } from './merkle-reader.js';
import { type CommandSender } from './redis-io.js';

/** Options of `scan`. */
export interface ScanOptions {
  /** Only keys that start with this (compared as UTF-8 bytes; no glob). @default '' (all) */
  readonly prefix?: string;
  /**
   * Records per page: each page is one script call and one pipeline of `GET`s, and holds about
   * this many records (up to one bucket more). Lower it for large documents. @default 100
   */
  readonly count?: number;
  /** Tombstones and expired records too (`deleted: true`, or `expiresAt` passed). @default false */
  readonly includeDeleted?: boolean;
  /** Stops the iteration (it then throws the signal's reason) between pages. */
  readonly signal?: AbortSignal;
}

/** Options of `count`. */
export interface CountOptions {
  /** Only keys that start with this. @default '' (all) */
  readonly prefix?: string;
  /** Count tombstones and expired records too. @default false */
  readonly includeDeleted?: boolean;
}

/** Records per page by default. */
export const SCAN_PAGE = 100;
/** The largest page a scan takes. */
export const MAX_SCAN_PAGE = 10_000;
/**
 * Buckets one script call reads at most: a call stops earlier, after the bucket in which it found
 * a page's worth, so this bounds only a walk that finds little (a narrow prefix, a sparse store).
 */
export const BUCKETS_PER_CALL = 1024;

/** The buckets under `subtree` (`''` = all 65,536), as 4-hex-digit ids, in walk order. */
export function bucketsOf(subtree: string): { readonly first: number; readonly count: number } {
  const depth = subtree.length;
  if (depth > DEPTH || (depth > 0 && !/^[0-9a-f]+$/.test(subtree))) {
    throw new StoreError(`${JSON.stringify(subtree)} is not a Merkle path`);
  }
  return {
    first: depth === 0 ? 0 : Number.parseInt(subtree, 16) * FANOUT ** (DEPTH - depth),
    count: FANOUT ** (DEPTH - depth),
  };
}

function bucketIds(from: number, count: number): string[] {
  return Array.from({ length: count }, (_, i) => (from + i).toString(16).padStart(DEPTH, '0'));
}

function checkPrefix(prefix: unknown): string {
  if (prefix === undefined) return '';
  if (typeof prefix !== 'string') throw new StoreError('prefix must be a string');
  if (hasLoneSurrogate(prefix)) {
    throw new StoreError('prefix is not well-formed unicode (lone surrogate)');
  }
  return prefix;
}

function checkPage(count: unknown): number {
  if (count === undefined) return SCAN_PAGE;
  if (!Number.isInteger(count) || (count as number) < 1 || (count as number) > MAX_SCAN_PAGE) {
    throw new StoreError(`count must be an integer in [1, ${MAX_SCAN_PAGE}]`);
  }
  return count as number;
}

/** Where a scan walks: a store's keys, its reader, and the subtree its buckets are under. */
export interface ListingSource {
  readonly client: CommandSender;
  readonly keys: StoreKeys;
  readonly reader: MerkleReader;
  /** `''` for a whole store; a partition's path for a partition (it holds no other bucket). */
  readonly subtree: string;
  /** This node's clock (ms): a record is expired from its `expiresAt` on. */
  readonly clock: () => number;
}

/**
 * The records under `source` whose key starts with `options.prefix`, page by page: live ones, and
 * tombstones and expired records with `includeDeleted`. Every key present (and live, without `includeDeleted`) for the
 * whole iteration is returned exactly once; a key written, deleted or purged meanwhile is returned
 * at most once, at the version read when its page was fetched.
 *
 * @throws {StoreError} on invalid options (when the iteration starts) or a Redis failure.
 */
export async function* scanRecords(
  source: ListingSource,
  options: ScanOptions = {},
): AsyncGenerator<StoredRecord, void, undefined> {
  const prefix = checkPrefix(options.prefix);
  const page = checkPage(options.count);
  const includeDeleted = options.includeDeleted === true;
  const { first, count } = bucketsOf(source.subtree);
  const end = first + count;
  let at = first;
  while (at < end) {
    options.signal?.throwIfAborted();
    const batch = bucketIds(at, Math.min(BUCKETS_PER_CALL, end - at));
    const reply = await SCRIPTS.list.run<unknown[]>(
      source.client,
      batch.map((b) => source.keys.bucket(b)),
      [
        'keys',
        prefix,
        includeDeleted ? '1' : '0',
        String(page),
        String(Math.floor(source.clock())),
      ],
    );
    const read = Number(reply[0]);
    if (!(read >= 1 && read <= batch.length)) {
      throw new StoreError(`list: a call over ${batch.length} buckets read ${String(reply[0])}`);
    }
    at += read;
    const keys = reply.slice(1).map(String);
    if (keys.length === 0) continue;
    // Read after the bucket: a key deleted or purged in between is dropped, not returned stale.
    const records = await source.reader.getRecords(keys);
    // Judged after the read, on this node's clock then: an expired record is never returned.
    const now = source.clock();
    for (const record of records) {
      if (includeDeleted || isLive(record, now)) yield record;
    }
  }
}

/** Buckets per `count` call: each is read whole, so this bounds how long one call holds Redis. */
const COUNT_BUCKETS_PER_CALL = 1024;

/**
 * How many keys under `source` start with `options.prefix` (live ones; tombstones and expired
 * records too with `includeDeleted`), from one walk over its buckets in calls issued together.
 * @throws {StoreError} on invalid options or a Redis failure.
 */
export async function countRecords(
  source: Omit<ListingSource, 'reader'>,
  options: CountOptions = {},
): Promise<number> {
  const prefix = checkPrefix(options.prefix);
  const { first, count } = bucketsOf(source.subtree);
  const calls: Promise<unknown[]>[] = [];
  for (let at = first; at < first + count; at += COUNT_BUCKETS_PER_CALL) {
    const batch = bucketIds(at, Math.min(COUNT_BUCKETS_PER_CALL, first + count - at));
    calls.push(
      SCRIPTS.list.run<unknown[]>(
        source.client,
        batch.map((b) => source.keys.bucket(b)),
        [
          'count',
          prefix,
          options.includeDeleted === true ? '1' : '0',
          '0',
          String(Math.floor(source.clock())),
        ],
      ),
    );
  }
  const replies = await Promise.all(calls);
  return replies.reduce((total, reply) => total + Number(reply[1]), 0);
}
