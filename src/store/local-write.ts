/**
 * Local writes, one or many (docs/PROTOCOL.md §5): what `put`, `delete`, `putMany` and
 * `deleteMany` take and return, the checks and encoding done before any script runs (one place,
 * so a batch entry is refused exactly when a single write of it would be), and the batches'
 * `write_many` script calls: chunked, issued together (one pipeline), a result per entry.
 */
import type { RedisArgument } from '@redis/client';
import { MAX_UPDATED_AT, MAX_VERSION } from '../codec/bounds.js';
import { encodeData } from '../codec/zstd.js';
import { NotDurableError, StoreError, WriteRefusedError } from '../errors.js';
import type { ContentType, StoredRecord } from '../model/record.js';
import { CHUNK_BYTES } from './apply-batch.js';
import {
  checkKey,
  checkTraceParent,
  expiryOf,
  normalizeContent,
  sha256Hex,
  type PutContent,
} from './input.js';
import type { StoreKeys } from './keys.js';
import { SCRIPTS } from './lua-script.js';
import { bucketOf } from './merkle-hash.js';
import type { CommandSender } from './redis-io.js';

/** Options of a local write. */
export interface PutOptions {
  /** Overrides the content type inferred from the content. */
  readonly contentType?: 'json' | 'binary';
  /** W3C traceparent, carried in the record and the CDC meta. */
  readonly traceParent?: string;
  /**
   * Expire the record this many milliseconds from now (a positive integer; this node's clock):
   * from `now + ttlMs` on no node serves it (docs/API.md, "Expiry"). Not with `expiresAt`.
   */
  readonly ttlMs?: number;
  /**
   * Expire the record at this time (an integer ms epoch, after now). Not with `ttlMs`. Neither:
   * the record does not expire (a put without one clears an earlier write's expiry).
   */
  readonly expiresAt?: number;
}

/** One entry of `putMany`: a key, its content, and the options `put` takes. */
export interface PutEntry extends PutOptions {
  readonly key: string;
  readonly content: PutContent;
}

/** What a local write stored and emitted. */
export interface WriteResult {
  /** The record written, with the clock the store gave it. */
  readonly record: StoredRecord;
  /** Id of the CDC stream entry. */
  readonly streamId: string;
}

/**
 * The outcome of one entry of `putMany` / `deleteMany`: written (its {@link WriteResult}), or not,
 * and why: a {@link WriteRefusedError} (nothing of it was written: invalid input, or a clock the
 * store refuses to build on), a {@link NotDurableError} (written, but fewer replicas than
 * `store.wait_replicas` confirmed the batch: not acknowledged; `written` says what was written),
 * or a plain {@link StoreError} (the script call carrying it failed, e.g. Redis went away: whether
 * it was written is unknown, as for a `put` that fails so).
 */
export type BatchWriteResult =
  | { readonly key: string; readonly ok: true; readonly written: WriteResult }
  | {
      readonly key: string;
      readonly ok: false;
      readonly error: WriteRefusedError | NotDurableError | StoreError;
    };

/** A write checked and encoded, ready for a script: everything but the clock. */
export interface PreparedWrite {
  readonly key: string;
  readonly deleted: boolean;
  readonly content: Buffer;
  readonly contentHash: string;
  readonly contentType: ContentType;
  readonly traceParent: string | undefined;
  /** The CDC `data` and the item's body: the content, or its zstd frame when `compressed`. */
  readonly data: Buffer;
  readonly compressed: boolean;
  /** When a put's record expires (ms since the epoch); undefined: never (always, for a delete). */
  readonly expiresAt: number | undefined;
}

/**
 * Checks and encodes a put (content hash, zstd frame, its expiry from `now`: this node's clock).
 * @throws {WriteRefusedError} `invalid` on invalid input (a bad key, content or option, or content
 *   above `maxBytes`), with the check's message.
 */
export function preparePut(
  key: unknown,
  content: unknown,
  options: PutOptions,
  maxBytes: number,
  now: number,
): PreparedWrite {
  return refusedIfInvalid(key, () => {
    checkKey(key);
    checkTraceParent(options.traceParent);
    const expiresAt = expiryOf(options, now);
    const { bytes, contentType } = normalizeContent(content, options.contentType, maxBytes);
    const { data, compressed } = encodeData(bytes);
    return {
      key,
      deleted: false,
      content: bytes,
      contentHash: sha256Hex(bytes),
      contentType,
      traceParent: options.traceParent,
      data,
      compressed,
      expiresAt,
    };
  });
}

/**
 * Checks a delete: its tombstone has no content, no hash, type binary.
 * @throws {WriteRefusedError} `invalid` on a bad key or traceparent.
 */
export function prepareDelete(key: unknown, traceParent: unknown): PreparedWrite {
  return refusedIfInvalid(key, () => {
    checkKey(key);
    checkTraceParent(traceParent);
    const empty = Buffer.alloc(0);
    return {
      key,
      deleted: true,
      content: empty,
      contentHash: '',
      contentType: 'binary',
      traceParent,
      data: empty,
      compressed: false,
      expiresAt: undefined,
    };
  });
}

/** `prepare()`, its check failures (StoreErrors of input.ts) as `invalid` refusals of `key`. */
function refusedIfInvalid(key: unknown, prepare: () => PreparedWrite): PreparedWrite {
  try {
    return prepare();
  } catch (cause) {
    if (!(cause instanceof StoreError)) throw cause;
    throw new WriteRefusedError(String(key), 'invalid', cause.message, { cause });
  }
}

/** The record a local write stored, given the clock the script gave it. */
export function writtenRecord(
  write: PreparedWrite,
  origin: string,
  updatedAt: number,
  version: number,
): StoredRecord {
  return {
    key: write.key,
    content: write.content,
    contentHash: write.contentHash,
    contentType: write.contentType,
    version,
    updatedAt,
    origin,
    deleted: write.deleted,
    ...(write.traceParent === undefined ? {} : { traceParent: write.traceParent }),
    ...(write.compressed ? { frame: write.data } : {}),
    ...(write.expiresAt === undefined ? {} : { expiresAt: write.expiresAt }),
  };
}

/** Entries per `write_many` call at most (and at most {@link CHUNK_BYTES} of data, one at least). */
export const WRITE_CHUNK_ENTRIES = 500;

/** How a batch is written. */
export interface WriteManyOptions {
  readonly keys: StoreKeys;
  /** The origin of the writes: this node's id. */
  readonly nodeId: string;
  /** This node's clock (ms) for the call. */
  readonly now: number;
  readonly cdcMaxlen: number;
  readonly maxClockSkewMs: number;
  /** The change feed's MAXLEN argument (`feedMaxlen`: `'0'` when the feed is off). */
  readonly feedMaxlen: string;
}

/** A prepared write's outcome: written, refused, or its call failed. */
export type WriteOutcome = WriteResult | StoreError;

/**
 * Writes `chunk` in order with one `write_many` call; outcomes in input order. Never rejects: when
 * the call fails, each entry's outcome is its error.
 */
export async function writeCall(
  client: CommandSender,
  chunk: readonly PreparedWrite[],
  options: WriteManyOptions,
): Promise<WriteOutcome[]> {
  const { keys, nodeId } = options;
  const redisKeys: string[] = [
    keys.dirty,
    keys.tombstones,
    keys.cdc,
    keys.changes,
    keys.changesSeq,
  ];
  const args: RedisArgument[] = [
    String(options.now),
    nodeId,
    JSON.stringify(nodeId),
    String(options.cdcMaxlen),
    String(options.maxClockSkewMs),
    String(MAX_UPDATED_AT),
    String(MAX_VERSION),
    String(keys.itemPrefixBytes),
    String(keys.bucketPrefixBytes),
    options.feedMaxlen,
    'local',
  ];
  for (const w of chunk) {
    redisKeys.push(keys.item(w.key), keys.bucket(bucketOf(w.key)));
    args.push(
      w.deleted ? '1' : '0',
      w.compressed ? '1' : '0',
      w.contentHash,
      w.contentType,
      w.traceParent === undefined ? '' : JSON.stringify(w.traceParent),
      w.expiresAt === undefined ? '' : String(w.expiresAt),
      w.data,
    );
  }
  let reply: string[];
  try {
    reply = await SCRIPTS.write_many.run<string[]>(client, redisKeys, args);
  } catch (error) {
    const failure =
      error instanceof StoreError ? error : new StoreError(String(error), { cause: error });
    return chunk.map(() => failure);
  }
  return chunk.map((w, i) => {
    const [ts, v, id] = [reply[3 * i], reply[3 * i + 1], reply[3 * i + 2]];
    if (ts === '') {
      const reason = v === 'CLOCK_SKEW' ? 'clock_skew' : 'clock_overflow';
      return new WriteRefusedError(
        w.key,
        reason,
        `refusing to write ${JSON.stringify(w.key)}: ${id}`,
      );
    }
    return {
      record: writtenRecord(w, nodeId, Number(ts), Number(v)),
      streamId: String(id),
    };
  });
}

/** Checks that a batch is an array (a batch's one whole-batch refusal). @throws {StoreError} */
export function checkBatch(items: unknown): void {
  if (!Array.isArray(items)) throw new StoreError('a batch must be an array');
}

/** What {@link writeBatch} runs on: a store's batch script call and its `WAIT`. */
export interface BatchWriter {
  /** Writes one chunk with one script call on the store's connection ({@link writeCall}). */
  write(chunk: readonly PreparedWrite[]): Promise<WriteOutcome[]>;
  /** `store.wait_replicas` for everything written so far by the connection that wrote `key`. */
  waitDurable(key: string, what: string): Promise<void>;
}

/**
 * A batch from the checks to the results: each item prepared (one that fails its checks is
 * refused alone, `invalid`) into chunks of at most {@link WRITE_CHUNK_ENTRIES} entries and
 * {@link CHUNK_BYTES} of data (one entry at least), the chunks' calls issued together (one
 * connection runs them in order: a key given twice is written in order); then one `WAIT` for the
 * batch. When that falls short every
 * written entry reports a {@link NotDurableError} carrying what it wrote.
 * @throws {StoreError} when `items` is not an array, or the `WAIT` itself fails.
 */
export async function writeBatch<T>(
  items: readonly T[],
  prepare: (item: T) => PreparedWrite,
  keyOf: (item: T) => unknown,
  writer: BatchWriter,
): Promise<BatchWriteResult[]> {
  checkBatch(items);
  const outcomes = new Array<WriteOutcome>(items.length);
  const calls: Promise<void>[] = [];
  let chunk: PreparedWrite[] = [];
  let at: number[] = [];
  let bytes = 0;
  const flush = (): void => {
    const [taken, where] = [chunk, at];
    calls.push(
      writer.write(taken).then((written) => {
        written.forEach((outcome, j) => (outcomes[where[j]!] = outcome));
      }),
    );
    [chunk, at, bytes] = [[], [], 0];
  };
  for (const [i, item] of items.entries()) {
    let write: PreparedWrite;
    try {
      write = prepare(item);
    } catch (cause) {
      // A check's refusal, or an entry that is not even an object (reading its fields threw).
      outcomes[i] =
        cause instanceof WriteRefusedError
          ? cause
          : new WriteRefusedError(keyText(item, keyOf), 'invalid', String(cause), { cause });
      continue;
    }
    const size = write.data.length;
    if (chunk.length > 0 && (chunk.length >= WRITE_CHUNK_ENTRIES || bytes + size > CHUNK_BYTES)) {
      flush();
    }
    chunk.push(write);
    at.push(i);
    bytes += size;
  }
  if (chunk.length > 0) flush();
  await Promise.all(calls);
  const stored = outcomes.filter((o): o is WriteResult => !(o instanceof Error));
  if (stored.length > 0) {
    try {
      await writer.waitDurable(stored[0]!.record.key, `a batch of ${stored.length} writes`);
    } catch (error) {
      if (!(error instanceof NotDurableError)) throw error;
      outcomes.forEach((o, i) => {
        if (!(o instanceof Error)) {
          outcomes[i] = new NotDurableError(error.message, error.replicas, error.wanted, o);
        }
      });
    }
  }
  return outcomes.map((o, i) =>
    o instanceof Error
      ? { key: keyText(items[i]!, keyOf), ok: false, error: o }
      : { key: o.record.key, ok: true, written: o },
  );
}

/** An item's key for its result: the key given, as text, even when it is not a valid key. */
function keyText<T>(item: T, keyOf: (item: T) => unknown): string {
  try {
    return String(keyOf(item));
  } catch {
    return String(item);
  }
}
