/**
 * The node-local store (SPEC §1): documents in Redis, written together with their CDC entry and
 * Merkle leaf in one atomic script call, replicated records applied by last-writer-wins, and a
 * Merkle tree brought up to date lazily. Layout: docs/PROTOCOL.md.
 */
import { NotDurableError, StoreError, WriteRefusedError } from '../errors.js';
import { createRedisConnection, waitForReplicas } from '../redis/connect.js';
import { isLive, type RecordVersion, type StoredRecord } from '../model/record.js';
import type { ResolvedStore, ResolvedTls } from '../config/types.js';
import { hasLoneSurrogate } from '../codec/cdc.js';
import { applyCalls, applyRecords, type ApplyCall } from './apply-batch.js';
import { checkKey, checkRecord, type PutContent } from './input.js';
import {
  countRecords,
  scanRecords,
  type CountOptions,
  type ListingSource,
  type ScanOptions,
} from './listing.js';
import {
  prepareDelete,
  preparePut,
  writeBatch,
  writeCall,
  writtenRecord,
  type BatchWriteResult,
  type PreparedWrite,
  type PutEntry,
  type PutOptions,
  type WriteResult,
} from './local-write.js';
import { DEAD_LETTER_ERROR_CHARS, DEAD_LETTER_MAXLEN, deadLetterFields } from './dead-letter.js';
import { storeKeys, type StoreKeys } from './keys.js';
import { GcStore } from './gc-store.js';
import type {
  ApplyRecordsOptions,
  ApplyResult,
  DeadLetter,
  LocalStore,
  MerkleNode,
} from '../engine/local-store.js';
import { applySourceName, FeedStream } from './change-feed.js';
import { bucketOf, parseVersionTuple } from './merkle-hash.js';
import { MerkleReader } from './merkle-reader.js';
import {
  MerkleRefresher,
  type MerkleRefreshOptions,
  type RefreshRunOptions,
  type RefreshStats,
} from './merkle-refresh.js';
import { AS_STRINGS, asString, type CommandSender } from './redis-io.js';
import {
  feedPosition,
  requireChangeFeed,
  watchFeeds,
  type WatchEvent,
  type WatchOptions,
} from './watch.js';
import { feedMaxlen, runWrite } from './write-call.js';

/** Store settings when none are given (SPEC §3, §5). */
export const DEFAULT_STORE: ResolvedStore = Object.freeze({
  cdcMaxlen: 100_000,
  changeFeed: true,
  changeFeedMaxlen: 100_000,
  tombstoneTtlMs: 7 * 24 * 60 * 60 * 1000,
  relay: false,
  maxItemBytes: 64 * 1024 * 1024,
  conflictLog: false,
  maxMemoryBytes: 0,
  maxClockSkewMs: 5 * 60 * 1000,
  partitions: 16,
  waitReplicas: 0,
  waitTimeoutMs: 1000,
});

/** Maximum length of the conflict log stream (approximate trimming). */
export const CONFLICT_LOG_MAXLEN = 10_000;

export { DEAD_LETTER_MAXLEN } from './dead-letter.js';

/** Records per `apply` script call (`SyncStoreOptions.applyChunkSize`). */
export const DEFAULT_APPLY_CHUNK_SIZE = 200;

/** Options of a {@link SyncStore} over an existing client. */
export interface SyncStoreOptions {
  /** This node's id: the `origin` of its writes. */
  readonly nodeId: string;
  /** Prefix of every Redis key. @default '' */
  readonly redisPrefix?: string;
  /** Store settings; missing ones take {@link DEFAULT_STORE}'s. */
  readonly store?: Partial<ResolvedStore>;
  /** Milliseconds since the epoch; injectable for tests. @default Date.now */
  readonly clock?: () => number;
  /** Merkle refresh tuning. */
  readonly merkle?: MerkleRefreshOptions;
  /** Records per apply script call. @default 200 */
  readonly applyChunkSize?: number;
}

/** Options of {@link SyncStore.connect}. */
export interface SyncStoreConnectOptions extends SyncStoreOptions {
  /** `redis://` or `rediss://` URL of this node's Redis. */
  readonly redisUrl: string;
  /** Connection errors after connect (the failing command also rejects). @default ignored */
  readonly onError?: (error: unknown) => void;
  /** Bound on each Redis command, from queueing to reply. @default 30_000 */
  readonly commandTimeoutMs?: number;
  /** Give up when the first connection does not succeed within this time. @default 10_000 */
  readonly connectTimeoutMs?: number;
  /** TLS settings for a `rediss://` URL (CA, client certificate for mTLS). */
  readonly tls?: ResolvedTls;
}

export type { BatchWriteResult, PutEntry, PutOptions, WriteResult } from './local-write.js';
export type { CountOptions, ScanOptions } from './listing.js';

/** Outcome of {@link SyncStore.purgeTombstones}. */
export interface PurgeResult {
  /** Tombstones removed. */
  readonly purged: number;
}

/** The Redis-backed {@link LocalStore}, plus local writes. */
export class SyncStore implements LocalStore {
  /** This node's id. */
  readonly nodeId: string;
  /** Key names of this store. */
  readonly keys: StoreKeys;
  /** Store settings in force. */
  readonly settings: ResolvedStore;
  /** Read-only access to this store's tree and records (no refresh). */
  readonly reader: MerkleReader;
  /** A record's frame is stored as it came (docs/PROTOCOL.md §2): its content is not read. */
  readonly keepsFrames = true;
  /** Acknowledged tombstone collection and the store's identity (docs/PROTOCOL.md §6). */
  readonly tombstones: GcStore;

  private readonly client: CommandSender;
  private readonly clock: () => number;
  private readonly refresher: MerkleRefresher;
  private readonly applyChunkSize: number;
  /** The subtree this store's buckets are under: a partition's path, or '' (all). */
  private readonly subtree: string;
  private owned: { close(): Promise<void> } | undefined;
  private refreshing: Promise<RefreshStats> | undefined;
  private refreshQueued: Promise<RefreshStats> | undefined;
  private memory: { at: number; accept: Promise<boolean> } | undefined;
  private closed = false;

  /** A store over an existing client (which the caller keeps and closes). */
  constructor(client: CommandSender, options: SyncStoreOptions) {
    if (typeof options.nodeId !== 'string' || options.nodeId.length === 0) {
      throw new StoreError('nodeId must be a non-empty string');
    }
    // Its UTF-8 in Redis would not be the string the records returned here carry (SPEC §8).
    if (hasLoneSurrogate(options.nodeId)) {
      throw new StoreError('nodeId is not well-formed unicode (lone surrogate)');
    }
    this.client = client;
    this.nodeId = options.nodeId;
    this.keys = storeKeys(options.redisPrefix ?? '');
    this.settings = Object.freeze({ ...DEFAULT_STORE, ...definedOnly(options.store ?? {}) });
    this.clock = options.clock ?? Date.now;
    this.applyChunkSize = options.applyChunkSize ?? DEFAULT_APPLY_CHUNK_SIZE;
    this.subtree = options.merkle?.subtree ?? '';
    this.reader = new MerkleReader(client, this.keys.prefix, this.settings.maxItemBytes);
    this.refresher = new MerkleRefresher(client, this.keys, options.merkle);
    this.tombstones = new GcStore({
      client,
      keys: this.keys,
      nodeId: this.nodeId,
      settings: this.settings,
      clock: this.clock,
    });
  }

  /**
   * Connects to `redisUrl` and returns a store that owns the connection ({@link close} closes it).
   *
   * @throws {StoreError} when Redis cannot be reached.
   */
  static async connect(options: SyncStoreConnectOptions): Promise<SyncStore> {
    let lastError: unknown;
    // Reconnects forever once connected (the first connect is bounded below); while
    // disconnected, commands wait for the reconnection, as an application expects.
    const client = createRedisConnection({
      url: options.redisUrl,
      tls: options.tls,
      reconnectBaseMs: 50,
      commandTimeoutMs: options.commandTimeoutMs ?? 30_000,
      offlineQueue: true,
      onError: (error: Error) => {
        lastError = error;
        options.onError?.(error);
      },
    });
    const limit = options.connectTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        client.connect(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no connection within ${limit} ms`)), limit);
        }),
      ]);
    } catch (cause) {
      client.destroy();
      throw new StoreError('cannot connect to the local Redis', { cause: lastError ?? cause });
    } finally {
      clearTimeout(timer);
    }
    const store = new SyncStore(client, options);
    store.owned = client;
    return store;
  }

  /**
   * Keeps corrupt entries from a peer in the stream `dlq:<peer>`, capped in entries and bytes
   * ({@link DEAD_LETTER_MAXLEN} entries of at most {@link DEAD_LETTER_ENTRY_BYTES}, exact trim):
   * fields `_peer`, `_id` (its id in the peer's stream), `_reason`, `_error`, then what
   * {@link deadLetterFields} keeps of its fields (small ones whole, larger ones by their size).
   */
  async quarantine(peerId: string, entries: readonly DeadLetter[]): Promise<void> {
    const key = this.keys.deadLetters(peerId);
    await Promise.all(
      entries.map((entry) =>
        this.client.sendCommand([
          'XADD',
          key,
          'MAXLEN',
          '=',
          String(DEAD_LETTER_MAXLEN),
          '*',
          '_peer',
          peerId,
          '_id',
          entry.id.slice(0, 64),
          '_reason',
          entry.reason.slice(0, 64),
          '_error',
          entry.message.slice(0, DEAD_LETTER_ERROR_CHARS),
          ...deadLetterFields(entry.fields),
        ]),
      ),
    );
  }

  /** One PING round trip: resolves when this store's Redis answers ({@link LocalStore.ping}). */
  async ping(): Promise<void> {
    await this.client.sendCommand(['PING']);
  }

  /**
   * Claims this store (its Redis, under its prefix) for this node: the key `owner` holds the id of
   * the node that writes and replicates into it, written by the first claim. Two daemons with
   * different node ids on one store would each take the other's writes for replicated ones (and
   * re-replicate them under the wrong origin), so the engine's `start()` claims the store (as
   * `run` and `demo` start it) and refuses one that another node owns.
   * @throws {StoreError} when another node id owns the store (the message names it and the key).
   */
  async claimOwner(): Promise<void> {
    const key = `${this.keys.prefix}owner`;
    const set = await this.client.sendCommand<string | null>(['SET', key, this.nodeId, 'NX']);
    if (set !== null) return;
    const owner = await this.client.sendCommand<string | null>(['GET', key], AS_STRINGS);
    if (owner === null || owner === this.nodeId) return; // deleted meanwhile, or ours
    throw new StoreError(
      `this Redis (prefix ${JSON.stringify(this.keys.prefix)}) belongs to node ${JSON.stringify(owner)}, ` +
        `not ${JSON.stringify(this.nodeId)}: two nodes must not share a store. Use another ` +
        `local.redis_prefix or Redis, or, if node ${JSON.stringify(owner)} is retired and this node ` +
        `takes its data over, DEL ${key}`,
    );
  }

  /** Closes the connection if this store opened it. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const owned = this.owned;
    this.owned = undefined;
    await this.refreshing?.catch(() => undefined);
    if (owned !== undefined) await owned.close();
  }

  /**
   * Writes a document: one atomic script call stamps the hybrid clock, stores the record and its
   * Merkle leaf and appends the CDC `PUT` entry.
   *
   * @throws {WriteRefusedError} (a StoreError) on invalid input (`invalid`) or a clock it refuses to
   *   build on (`clock_skew`: the stored record is dated more than `store.maxClockSkewMs` ahead of
   *   this node's clock; `clock_overflow`: its clock or version is at its bound, docs/PROTOCOL.md
   *   §1); then nothing was written.
   * @throws {StoreError} on a Redis failure.
   * @throws {NotDurableError} with `store.waitReplicas`, when fewer replicas confirmed the write
   *   in time: it was written, and is not acknowledged.
   */
  async put(key: string, content: PutContent, options: PutOptions = {}): Promise<WriteResult> {
    const now = this.clock();
    return this.write(preparePut(key, content, options, this.settings.maxItemBytes, now), now);
  }

  /**
   * Deletes a document by writing a tombstone with the next clock, and appends the CDC `DEL` entry.
   * Deleting an absent key also writes a tombstone (version 1), so the delete replicates and beats
   * older writes of the key elsewhere.
   *
   * @throws {StoreError} as {@link put} does; then nothing was written.
   */
  async delete(key: string, options: Pick<PutOptions, 'traceParent'> = {}): Promise<WriteResult> {
    return this.write(prepareDelete(key, options.traceParent));
  }

  /**
   * Writes many documents, each exactly as {@link put} would (its own clock, record, Merkle leaf
   * and CDC entry, atomic together), in `write_many` script calls of up to 500 entries or 4 MiB
   * issued together, in input order (a key given twice is written twice, the later last). Never
   * rejects: the result says per entry, in input order, what was written or why not
   * ({@link BatchWriteResult}); an invalid entry is refused alone.
   * With `store.waitReplicas`, one `WAIT` follows the whole batch; if it falls short, every entry
   * written reports a {@link NotDurableError} carrying what it wrote.
   */
  async putMany(entries: readonly PutEntry[]): Promise<BatchWriteResult[]> {
    const max = this.settings.maxItemBytes;
    const now = this.clock();
    return this.writeBatch(
      entries,
      (e) => preparePut(e.key, e.content, e, max, now),
      (e) => e.key,
    );
  }

  /**
   * Deletes many keys, each exactly as {@link delete} would, in the calls and with the results
   * {@link putMany} has.
   */
  async deleteMany(
    keys: readonly string[],
    options: Pick<PutOptions, 'traceParent'> = {},
  ): Promise<BatchWriteResult[]> {
    return this.writeBatch(keys, (key) => prepareDelete(key, options.traceParent), String);
  }

  /**
   * The records whose key starts with `options.prefix`, as an async iterable read in bounded
   * pages (docs/API.md): every key present for the whole iteration exactly once, in bucket order
   * (by the hash of the key), never the whole store at once.
   */
  scan(options: ScanOptions = {}): AsyncIterable<StoredRecord> {
    return scanRecords(this.listing, options);
  }

  /** How many live keys (tombstones too with `includeDeleted`) start with `options.prefix`. */
  count(options: CountOptions = {}): Promise<number> {
    return countRecords(this.listing, options);
  }

  private get listing(): ListingSource {
    return {
      client: this.client,
      keys: this.keys,
      reader: this.reader,
      subtree: this.subtree,
      clock: this.clock,
    };
  }

  private writeBatch<T>(
    items: readonly T[],
    prepare: (item: T) => PreparedWrite,
    keyOf: (item: T) => string,
  ): Promise<BatchWriteResult[]> {
    return writeBatch(items, prepare, keyOf, {
      write: (chunk) =>
        writeCall(this.client, chunk, {
          keys: this.keys,
          nodeId: this.nodeId,
          now: Math.floor(this.clock()),
          cdcMaxlen: this.settings.cdcMaxlen,
          maxClockSkewMs: this.settings.maxClockSkewMs,
          feedMaxlen: feedMaxlen(this.settings),
        }),
      waitDurable: (key, what) => this.#waitDurable(key, what),
    });
  }

  private async write(prepared: PreparedWrite, now = this.clock()): Promise<WriteResult> {
    const { key, deleted, data, compressed, traceParent } = prepared;
    const [ts, v, streamId] = await runWrite(this.client, this.keys, this.settings, {
      key,
      nodeId: this.nodeId,
      now,
      deleted,
      data,
      compressed,
      contentHash: prepared.contentHash,
      contentType: prepared.contentType,
      traceParent,
      expiresAt: prepared.expiresAt,
    }).catch((error: unknown) => {
      throw clockError(key, error) ?? error;
    });
    const record = writtenRecord(prepared, this.nodeId, Number(ts), Number(v));
    const written = { record, streamId };
    await this.#waitDurable(key, `the write of ${JSON.stringify(key)}`, written);
    return written;
  }

  /**
   * With `store.waitReplicas`, waits (`WAIT`, at most `store.waitTimeoutMs`) until that many
   * replicas hold every write made so far on the connection that wrote `key`.
   * @throws {NotDurableError} when fewer confirmed it in time.
   */
  async #waitDurable(key: string, what: string, written?: WriteResult): Promise<void> {
    const wanted = this.settings.waitReplicas;
    if (wanted <= 0) return;
    const { waitTimeoutMs } = this.settings;
    const replicas = await waitForReplicas(this.client, this.keys.item(key), wanted, waitTimeoutMs);
    if (replicas >= wanted) return;
    throw new NotDurableError(
      `${what} is in the local Redis but only ${replicas} of ${wanted} replicas confirmed it ` +
        `within ${waitTimeoutMs} ms (store.wait_replicas): it is not durable yet`,
      replicas,
      wanted,
      written,
    );
  }

  /**
   * The live document of `key`; undefined when absent, deleted or expired (its `expiresAt` is at or
   * before this node's clock, read after the record: docs/API.md, "Expiry").
   */
  async get(key: string): Promise<StoredRecord | undefined> {
    const record = await this.getRecord(key);
    return record === undefined || !isLive(record, this.clock()) ? undefined : record;
  }

  /** The record of `key`, tombstones and expired records included; undefined when absent. */
  async getRecord(key: string): Promise<StoredRecord | undefined> {
    checkKey(key);
    return this.reader.getRecord(key);
  }

  /** Records of `keys` (tombstones included) in one pipeline; absent keys are left out. */
  async getRecords(keys: readonly string[]): Promise<StoredRecord[]> {
    keys.forEach((key) => checkKey(key));
    return this.reader.getRecords(keys);
  }

  /** True when the store holds `key` with this content hash (`''` matches a tombstone). */
  async isCurrent(key: string, contentHash: string): Promise<boolean> {
    checkKey(key);
    // The bucket entry holds the record's version tuple, hash included.
    const tuple = asString(
      await this.client.sendCommand(['HGET', this.keys.bucket(bucketOf(key)), key], AS_STRINGS),
    );
    return tuple !== undefined && parseVersionTuple(key, tuple)?.contentHash === contentHash;
  }

  /**
   * Applies replicated records by LWW, in chunks of script calls issued together (pipelined).
   * Never re-emits to the local CDC stream unless `store.relay` is on.
   *
   * @throws {StoreError} on a malformed record or a Redis failure.
   */
  async apply(
    records: readonly StoredRecord[],
    applyOptions: ApplyRecordsOptions = {},
  ): Promise<ApplyResult[]> {
    const results = await applyRecords(this.client, this.applyCalls(records, applyOptions));
    // Not durable is not applied: the hot path then keeps its cursor and applies them again.
    if (records.length > 0) await this.ensureDurable(records[0]!.key, records.length);
    return results;
  }

  /**
   * The `apply` script calls that {@link apply} makes for `records`, built and not sent (a
   * partitioned store sends those of the partitions on one shard together).
   * @internal
   */
  applyCalls(
    records: readonly StoredRecord[],
    applyOptions: ApplyRecordsOptions = {},
  ): ApplyCall[] {
    records.forEach((record, i) => checkRecord(record, i));
    return applyCalls(records, {
      keys: this.keys,
      relay: this.settings.relay,
      conflictLog: this.settings.conflictLog,
      now: Math.floor(this.clock()),
      horizonMarginMs: applyOptions.horizonMarginMs ?? this.settings.maxClockSkewMs,
      acceptOld: applyOptions.acceptOld === true,
      cdcMaxlen: this.settings.cdcMaxlen,
      conflictMaxlen: CONFLICT_LOG_MAXLEN,
      feedMaxlen: feedMaxlen(this.settings),
      feedSource: applySourceName(applyOptions.source),
      chunkSize: this.applyChunkSize,
    });
  }

  /**
   * With `store.waitReplicas`, waits until that many replicas hold the `count` records applied
   * on the connection that wrote `key` (see {@link apply}).
   * @throws {NotDurableError} when fewer confirmed it in time.
   * @internal
   */
  ensureDurable(key: string, count: number): Promise<void> {
    return this.#waitDurable(key, `applying ${count} replicated records`);
  }

  /**
   * Every change this store applies (local writes, records replicated by the hot path or a repair,
   * and with `purges` purged tombstones), in the order it applied them, as an async iterable that
   * ends when `options.signal` aborts: docs/API.md, "Change feed". Each change carries a
   * `position`; `watch({ from: position })` after a restart delivers every change after it (at
   * least once), or a resync marker first when the feed was trimmed past it. The feed is read a
   * page at a time at the consumer's pace, so a slow consumer holds at most a page.
   *
   * @throws {StoreError} when the change feed is off (`store.changeFeed`), or `from` is not a
   *   position of this store's feed; while iterating, when Redis fails (resume from the last
   *   position delivered).
   */
  watch(options: WatchOptions = {}): AsyncIterable<WatchEvent> {
    requireChangeFeed(this.settings);
    return watchFeeds(this.#feedSource(), options);
  }

  /**
   * The change feed's current end (`'now'`) or oldest change kept (`'start'`), as a position to
   * pass to {@link watch}: take it before reading the store (a `scan`), then watch from it, and
   * no change made meanwhile is missed.
   */
  changeFeedPosition(at: 'now' | 'start' = 'now'): Promise<string> {
    requireChangeFeed(this.settings);
    return feedPosition(this.#feedSource(), at);
  }

  #feedSource() {
    return {
      streams: [new FeedStream(this.client, this.keys.changes, this.keys.changesSeq)],
      getRecords: (keys: readonly string[]) => this.reader.getRecords(keys),
    };
  }

  /**
   * Backpressure: false while Redis `used_memory` is above `store.maxMemoryBytes` (when set).
   * The answer is cached for 100 ms.
   */
  async shouldAcceptWrites(): Promise<boolean> {
    const limit = this.settings.maxMemoryBytes;
    if (limit <= 0) return true;
    const now = Date.now();
    if (this.memory === undefined || now - this.memory.at >= 100) {
      const accept = this.client
        .sendCommand(['INFO', 'memory'], AS_STRINGS)
        .then((info) => usedMemory(asString(info) ?? '') <= limit);
      this.memory = { at: now, accept };
      accept.catch(() => (this.memory = undefined));
    }
    return this.memory.accept;
  }

  /**
   * Brings the Merkle tree up to date (the dirty keys' buckets and their ancestors), in time
   * proportional to the keys written since the last refresh. Concurrent calls share
   * work: a call made while a refresh runs waits for one more pass, so it sees every write made
   * before it.
   *
   * With `budgetMs` (background upkeep while the store is busy), it starts no new round once that
   * long has passed, and a refresh already running or queued stands in for it; `complete` in the
   * result says whether it settled everything.
   */
  refreshMerkle(options: RefreshRunOptions = {}): Promise<RefreshStats> {
    if (this.refreshQueued !== undefined) return this.refreshQueued;
    const previous = this.refreshing;
    let next: Promise<RefreshStats>;
    if (previous === undefined) {
      next = this.refresher.refresh(options);
    } else if (options.budgetMs !== undefined) {
      return previous;
    } else {
      next = previous
        .catch(() => undefined)
        .then(() => {
          this.refreshQueued = undefined;
          return this.refresher.refresh();
        });
      this.refreshQueued = next;
    }
    this.refreshing = next;
    next.then(
      () => this.refreshDone(next),
      () => this.refreshDone(next),
    );
    return next;
  }

  private refreshDone(run: Promise<RefreshStats>): void {
    if (this.refreshing === run) this.refreshing = undefined;
  }

  /** The root hash after a refresh; 64 zeros for an empty store. */
  async merkleRoot(): Promise<string> {
    await this.refreshMerkle();
    return this.reader.root();
  }

  /** The non-empty children of `path` (`''` = root) after a refresh; `[]` for a bucket. */
  async merkleChildren(path: string): Promise<MerkleNode[]> {
    return (await this.merkleChildrenMany([path]))[0]!;
  }

  /** {@link merkleChildren} of many paths after one refresh, in one round trip. */
  async merkleChildrenMany(paths: readonly string[]): Promise<MerkleNode[][]> {
    await this.refreshMerkle();
    return this.reader.childrenMany(paths);
  }

  /** The record versions in `bucket`, sorted by key (always current; no refresh needed). */
  async merkleLeaves(bucket: string): Promise<RecordVersion[]> {
    return this.reader.leaves(bucket);
  }

  /** {@link merkleLeaves} of many buckets, pipelined in one round trip. */
  merkleLeavesMany(buckets: readonly string[]): Promise<RecordVersion[][]> {
    return this.reader.leavesMany(buckets);
  }

  /**
   * Removes tombstones that arrived here before `min(now - store.tombstoneTtlMs, horizon)`
   * (bounded batches until none is left): record, Merkle leaf and index entry; their buckets are
   * marked dirty, and the purge horizon (`gc:horizon`) is raised to that cutoff. In a mesh pass
   * the engine's horizon (`ReplicationEngine.purgeTombstones` does): without it a tombstone is
   * purged whether or not every peer holds it (docs/PROTOCOL.md §6).
   */
  purgeTombstones(now: number = this.clock(), horizon = Infinity): Promise<PurgeResult> {
    return this.tombstones.purgeTombstones(now, horizon);
  }
}

/**
 * The write script's refusal of a clock (its error code, the first word of the Redis error under
 * the script's wrapper, says which), as a {@link WriteRefusedError}; undefined for any other failure.
 */
function clockError(key: string, error: unknown): WriteRefusedError | undefined {
  const cause = error instanceof Error ? error.cause : undefined;
  const text = cause instanceof Error ? cause.message : '';
  const code = /^(CLOCK_SKEW|CLOCK_OVERFLOW) /.exec(text)?.[1];
  if (code === undefined) return undefined;
  return new WriteRefusedError(
    key,
    code === 'CLOCK_SKEW' ? 'clock_skew' : 'clock_overflow',
    `refusing to write ${JSON.stringify(key)}: ${text.slice(code.length + 1)}`,
    { cause: error },
  );
}

function usedMemory(info: string): number {
  const match = /^used_memory:(\d+)/m.exec(info);
  return match === null ? 0 : Number(match[1]);
}

function definedOnly<T extends object>(partial: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(partial).filter(([, v]) => v !== undefined),
  ) as Partial<T>;
}
