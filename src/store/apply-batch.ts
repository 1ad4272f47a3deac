/**
 * Applying replicated records: the arguments of the `apply` script, chunked into calls that are all
 * issued before any is awaited (one pipeline), and the per-record results.
 */
import type { RedisArgument } from '@redis/client';
import { encodeData } from '../codec/zstd.js';
import { StoreError } from '../errors.js';
import type { StoredRecord } from '../model/record.js';
import type { StoreKeys } from './keys.js';
import type { ApplyOutcome, ApplyResult } from '../engine/local-store.js';
import { SCRIPTS } from './lua-script.js';
import { bucketOf, formatVersionTuple, parseVersionTuple } from './merkle-hash.js';
import { encodeRecordArena, storedBody } from './record-value.js';
import type { CommandSender } from './redis-io.js';

/** How one apply call behaves. */
export interface ApplyOptions {
  readonly keys: StoreKeys;
  /** Re-emit applied records to the local CDC stream with their origin and clock. */
  readonly relay: boolean;
  /** Record conflicts in the `conflicts` stream. */
  readonly conflictLog: boolean;
  /** This node's clock (ms): a tombstone applied is indexed at max(its clock, now). */
  readonly now: number;
  /**
   * Records of a key this node lacks, dated more than this (ms, `store.max_clock_skew`) before
   * its purge horizon, look purged: a tombstone is stale, a live record `purged` (refused).
   */
  readonly horizonMarginMs: number;
  /** Apply such live records all the same (they come from a peer in sync since the horizon). */
  readonly acceptOld: boolean;
  readonly cdcMaxlen: number;
  readonly conflictMaxlen: number;
  /** The change feed's MAXLEN argument (`'0'`: off) and its entries' source. */
  readonly feedMaxlen: string;
  readonly feedSource: string;
  /** Records per script call. */
  readonly chunkSize: number;
}

/**
 * Stored bytes (contents, or their frames) per script call: a call ends before the record that
 * would pass this (a call holds at least one record), so one call never blocks Redis long or nears
 * its 512 MB argument limit.
 */
export const CHUNK_BYTES = 4 * 1024 * 1024;

const OUTCOMES: readonly ApplyOutcome[] = ['applied', 'duplicate', 'stale', 'conflict', 'purged'];

/** One `apply` script call: its records, and its keys and arguments. */
export interface ApplyCall {
  readonly records: readonly StoredRecord[];
  readonly keys: readonly RedisArgument[];
  readonly args: readonly RedisArgument[];
}

/** Runs `calls` (one pipeline) and returns their per-record results, in order. */
export async function applyRecords(
  client: CommandSender,
  calls: readonly ApplyCall[],
): Promise<ApplyResult[]> {
  const replies = await Promise.all(
    calls.map((call) => SCRIPTS.apply.run<unknown[]>(client, call.keys, call.args)),
  );
  return calls.flatMap((call, i) => applyReplyResults(call.records, replies[i]!));
}

/**
 * The `apply` script calls that apply `records` (in order): at most `options.chunkSize` records
 * and {@link CHUNK_BYTES} of stored bytes each (a call holds at least one record).
 */
export function applyCalls(records: readonly StoredRecord[], options: ApplyOptions): ApplyCall[] {
  const calls: ApplyCall[] = [];
  if (records.length === 0) return calls;
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < records.length; i++) {
    const size = recordBytes(records[i]!);
    if (i > start && (i - start >= options.chunkSize || bytes + size > CHUNK_BYTES)) {
      calls.push(applyChunk(records.slice(start, i), options));
      start = i;
      bytes = 0;
    }
    bytes += size;
  }
  calls.push(applyChunk(records.slice(start), options));
  return calls;
}

/** The stored bytes of a record a call carries (its content or frame; none for a tombstone). */
export function recordBytes(record: StoredRecord): number {
  return record.deleted ? 0 : storedBody(record).length;
}

/** The per-record results of one `apply` call's reply, in the order of its `records`. */
export function applyReplyResults(
  records: readonly StoredRecord[],
  reply: readonly unknown[],
): ApplyResult[] {
  const results: ApplyResult[] = [];
  let index = 0;
  let i = 0;
  while (i < reply.length) {
    const record = records[index++]!;
    const code = Number(reply[i]);
    if (code > 10) {
      results.push(toResult(record.key, code - 10, reply[i + 1]));
      i += 2;
    } else {
      results.push({ key: record.key, outcome: OUTCOMES[code - 1] ?? 'stale' });
      i += 1;
    }
  }
  if (results.length !== records.length) {
    throw new StoreError(`apply: ${results.length} results for ${records.length} records`);
  }
  return results;
}

function applyChunk(chunk: readonly StoredRecord[], options: ApplyOptions): ApplyCall {
  const { keys, relay } = options;
  const redisKeys: string[] = [
    keys.dirty,
    keys.tombstones,
    keys.cdc,
    keys.conflicts,
    keys.gcHorizon,
    keys.changes,
    keys.changesSeq,
  ];
  // Relayed without a frame: compressed once, for the CDC entry and the stored record alike.
  const records = relay
    ? chunk.map((r) => (!r.deleted && r.frame === undefined ? withFrame(r) : r))
    : chunk;
  const tuples: string[] = new Array<string>(records.length);
  let flags = '';
  const datas: RedisArgument[] = [];
  const relayed: string[][] = [];
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    redisKeys.push(keys.item(r.key), keys.bucket(bucketOf(r.key)));
    // A tombstone is normalised (no content, no hash, no expiry, binary) so every node stores it
    // identically.
    tuples[i] = formatVersionTuple(
      r.deleted
        ? {
            updatedAt: r.updatedAt,
            version: r.version,
            origin: r.origin,
            deleted: true,
            contentHash: '',
          }
        : r,
    );
    flags += r.deleted ? '1' : r.expiresAt === undefined ? '0' : '2';
    if (relay) {
      datas.push(r.deleted ? '' : storedBody(r));
      const tp = r.traceParent;
      relayed.push([
        r.deleted ? 'binary' : r.contentType,
        JSON.stringify(r.origin),
        tp === undefined ? '' : JSON.stringify(tp),
      ]);
    }
  }
  const { arena, ends } = encodeRecordArena(records, tuples);
  const args: RedisArgument[] = [
    relay ? '1' : '0',
    options.conflictLog ? '1' : '0',
    String(options.now),
    String(options.cdcMaxlen),
    String(options.conflictMaxlen),
    relay ? JSON.stringify(relayed) : '',
    String(keys.itemPrefixBytes),
    String(keys.bucketPrefixBytes),
    flags,
    arena,
    ends,
    String(options.horizonMarginMs),
    options.acceptOld ? '1' : '0',
    options.feedMaxlen,
    options.feedSource,
    ...datas,
  ];
  return { records: chunk, keys: redisKeys, args };
}

/**
 * The record with its content's zstd frame when compression makes it smaller, or when the content
 * begins with the zstd magic (relayed raw, every reader would take it for a frame).
 */
function withFrame(record: StoredRecord): StoredRecord {
  const { data, compressed } = encodeData(record.content);
  return compressed ? { ...record, frame: data } : record;
}

function toResult(key: string, code: number, tuple: unknown): ApplyResult {
  const outcome = OUTCOMES[code - 1] ?? 'stale';
  const previous = parseVersionTuple(key, String(tuple));
  if (previous === undefined) {
    throw new StoreError(`apply: the stored version of ${JSON.stringify(key)} is not a tuple`);
  }
  return { key, outcome, previous };
}
