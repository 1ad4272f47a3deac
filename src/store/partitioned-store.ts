/**
 * A store split into P partitions for a Redis Cluster (docs/PROTOCOL.md §9). Each partition is a
 * whole store of the single-instance layout under its own hash-tagged prefix (`<prefix>{<tag>}:`):
 * its records, buckets, dirty marks, tombstone index, CDC stream and Merkle nodes live in one hash
 * slot, so every write and every apply is still one script call on one shard, and each partition
 * brings its own subtree up to date. What spans partitions lives under the tag `meta`
 * (`<prefix>{meta}:`): the tree above the partitions (`merkle:nodes`: the root, the partition
 * roots and, with 256 partitions, the 16 nodes of depth 1), the store's identity and owner, the
 * acknowledgements, the store-wide purge horizon and the dead letters; the layout record is
 * `<prefix>store:layout`, where a reader looks first.
 *
 * A partition holds only keys of its own subtree, so the node hashes it computes at and below its
 * path are exactly the whole store's; the levels above are recomputed from the P subtree roots
 * after each refresh. The tree is therefore the one a single instance holding the same records
 * has, at every level, and a repair compares any two nodes whatever their layouts.
 */
import type { RecordVersion, StoredRecord } from '../model/record.js';
import { StoreError } from '../errors.js';
import type {
  ApplyRecordsOptions,
  ApplyResult,
  DeadLetter,
  GcState,
  HeldTombstones,
  LocalStore,
  MerkleNode,
  TombstoneStore,
} from '../engine/local-store.js';
import { bucketOf, childPaths, interiorHash, nodeField, ZERO_HASH } from './merkle-hash.js';
import { MerkleReader } from './merkle-reader.js';
import { checkRecord } from './input.js';
import { applyReplyResults, CHUNK_BYTES, recordBytes, type ApplyCall } from './apply-batch.js';
import { SCRIPTS } from './lua-script.js';
import { ClusterSender } from '../redis/cluster-sender.js';
import type { RefreshRunOptions, RefreshStats } from './merkle-refresh.js';
import {
  formatLayoutRecord,
  parseLayoutRecord,
  partitionIndex,
  partitionLayout,
  partitionPrefix,
  type PartitionCount,
  type PartitionLayout,
} from './partitions.js';
import { AS_STRINGS, asString, type CommandSender } from './redis-io.js';
import type { GcStore } from './gc-store.js';
import { storeKeys, type StoreKeys } from './keys.js';
import type { PutContent } from './input.js';
import type { CountOptions, ScanOptions } from './listing.js';
import { checkBatch } from './local-write.js';
import {
  DEFAULT_APPLY_CHUNK_SIZE,
  SyncStore,
  type BatchWriteResult,
  type PurgeResult,
  type PutEntry,
  type PutOptions,
  type SyncStoreOptions,
  type WriteResult,
} from './sync-store.js';
import type { ResolvedStore } from '../config/types.js';
import { FeedStream } from './change-feed.js';
import {
  feedPosition,
  requireChangeFeed,
  watchFeeds,
  type WatchEvent,
  type WatchOptions,
} from './watch.js';

/**
 * Applies run at once; more wait, and are merged into one when one ends. The hot path keeps
 * three batches in flight per peer (ApplyPipeline); with 256 partitions a 500-record batch puts
 * ~2 records in each, and what one partition's call costs beside its records (type checks, the
 * horizon, its dirty marks, a feed entry) then outweighs them: merged, a partition's call holds
 * the records of every batch that waited.
 */
const APPLIES_AT_ONCE = 2;

/** Records in one merged apply (what waits beyond it forms the next). */
const MERGED_APPLY_RECORDS = 5_000;

/**
 * Partitions refreshed at once. A partition's refresh is a few round trips of little work each
 * (a clean-up after 5,000 writes costs the shards ~20 ms of CPU in all, 256 partitions or 16), so
 * its time is latency: refreshing 16 of 256 at a time made the upkeep grow with P.
 */
const REFRESH_PARALLELISM = 64;

/**
 * Dirty keys the partitions refreshed at once claim per round, in all: each claims its share, so
 * a refresh holds at most this many at once whatever P (before: 16 partitions of 8,192).
 */
const REFRESH_CLAIMED_KEYS = 131_072;

/** Options of {@link PartitionedStore.open}. */
export interface PartitionedStoreOptions extends SyncStoreOptions {
  /** Partitions of a store created now; a store that exists keeps its own. @default 16 */
  readonly partitions?: PartitionCount;
}

/** A {@link LocalStore} over P single-layout partitions, for a Redis Cluster. */
export class PartitionedStore implements LocalStore {
  readonly nodeId: string;
  readonly layout: PartitionLayout;
  /** The partitions, in tree order (partition i holds the subtree `layout.paths[i]`). */
  readonly partitions: readonly SyncStore[];
  /**
   * Key names of what spans partitions (the tree's top, owner, identity, GC state, dead
   * letters), under the tag `meta`: `<prefix>{meta}:…`, one slot, like a partition's.
   */
  readonly keys: StoreKeys;
  /** The layout record's key, `<prefix>store:layout`: where a reader learns this is partitioned. */
  readonly layoutKey: string;
  readonly settings: ResolvedStore;
  readonly keepsFrames = true;
  readonly tombstones: TombstoneStore;

  readonly #client: CommandSender;
  /**
   * The store under the `meta` tag. It holds no records: it serves what spans partitions (owner,
   * identity, acknowledgements, the store-wide purge horizon, dead letters).
   */
  readonly #meta: SyncStore;
  /** Reads the whole tree, routed to where each node and bucket lives (the peers' reader). */
  readonly #reader: MerkleReader;
  #refreshing: Promise<RefreshStats> | undefined;
  #refreshQueued: Promise<RefreshStats> | undefined;
  /** Each partition's `merkle:gen` when the top was last recomputed from a clean state. */
  #topGenerations: readonly string[] = [];
  #appliesRunning = 0;
  #appliesWaiting: WaitingApply[] = [];
  /** Partitions on one shard are applied in one call (false once the server refused one). */
  #shardCalls = true;
  /** Records in one shard call: a single store's call size. */
  readonly #applyChunkRecords: number;

  /**
   * Opens the store under `options.redisPrefix`: with the layout it recorded (`store:layout`),
   * or, for a store that has none, records one of `options.partitions` and opens it with that. A
   * store keeps the partition count it was created with: compare `layout.count` to see whether
   * `options.partitions` was used.
   * @throws {StoreError} when the recorded layout is unreadable.
   */
  static async open(
    client: CommandSender,
    options: PartitionedStoreOptions,
  ): Promise<PartitionedStore> {
    const key = storeKeys(options.redisPrefix ?? '').layout;
    const wanted = partitionLayout(options.partitions ?? 16);
    await client.sendCommand(['SET', key, formatLayoutRecord(wanted), 'NX']);
    const recorded = asString(await client.sendCommand(['GET', key], AS_STRINGS)) ?? '';
    const layout = parseLayoutRecord(recorded);
    if (layout === undefined) {
      throw new StoreError(`the layout record ${key} is unreadable: ${recorded.slice(0, 200)}`);
    }
    return new PartitionedStore(client, options, layout);
  }

  /** A store of `layout` (see {@link open}, which reads or records it). */
  constructor(client: CommandSender, options: SyncStoreOptions, layout: PartitionLayout) {
    const prefix = options.redisPrefix ?? '';
    this.layout = layout;
    this.#client = client;
    this.#meta = new SyncStore(client, {
      ...options,
      redisPrefix: partitionPrefix(prefix, 'meta'),
    });
    this.nodeId = this.#meta.nodeId;
    this.settings = this.#meta.settings;
    this.#reader = new MerkleReader(client, prefix, this.settings.maxItemBytes, layout);
    this.#applyChunkRecords = options.applyChunkSize ?? DEFAULT_APPLY_CHUNK_SIZE;
    this.keys = this.#meta.keys;
    this.layoutKey = storeKeys(prefix).layout;
    this.partitions = this.layout.tags.map(
      (tag, i) =>
        new SyncStore(client, {
          ...options,
          redisPrefix: partitionPrefix(prefix, tag),
          merkle: {
            claimBatch: REFRESH_CLAIMED_KEYS / Math.min(layout.count, REFRESH_PARALLELISM),
            ...options.merkle,
            subtree: layout.paths[i]!,
          },
        }),
    );
    this.tombstones = new PartitionedTombstones(this, this.#meta.tombstones);
  }

  /** The partition that holds `key`. */
  partitionOf(key: string): SyncStore {
    return this.partitions[partitionIndex(this.layout, bucketOf(key))]!;
  }

  /** See {@link SyncStore.claimOwner}; the owner key is under the plain prefix. */
  claimOwner(): Promise<void> {
    return this.#meta.claimOwner();
  }

  put(key: string, content: PutContent, options: PutOptions = {}): Promise<WriteResult> {
    return this.partitionOf(key).put(key, content, options);
  }

  delete(key: string, options: Pick<PutOptions, 'traceParent'> = {}): Promise<WriteResult> {
    return this.partitionOf(key).delete(key, options);
  }

  /**
   * {@link SyncStore.putMany} over the partitions: each partition's entries (an entry with an
   * invalid key goes to the first, which refuses it) are written by that partition's script
   * calls on its shard, all partitions at once, and its `WAIT` (with `store.waitReplicas`) asks
   * that shard's master. Results in input order.
   */
  async putMany(entries: readonly PutEntry[]): Promise<BatchWriteResult[]> {
    checkBatch(entries);
    return this.#inPartitions(
      entries,
      (e) => (e as PutEntry | null | undefined)?.key,
      (p, group) => p.putMany(group),
    );
  }

  /** {@link SyncStore.deleteMany} over the partitions, as {@link putMany} is. */
  async deleteMany(
    keys: readonly string[],
    options: Pick<PutOptions, 'traceParent'> = {},
  ): Promise<BatchWriteResult[]> {
    checkBatch(keys);
    return this.#inPartitions(
      keys,
      (k) => k,
      (p, group) => p.deleteMany(group, options),
    );
  }

  /**
   * {@link SyncStore.scan} over the partitions, one after another in tree order, each walking
   * only its own buckets on its own shard: every key present throughout exactly once.
   */
  async *scan(options: ScanOptions = {}): AsyncGenerator<StoredRecord, void, undefined> {
    for (const partition of this.partitions) yield* partition.scan(options);
  }

  /** {@link SyncStore.count}: the sum over the partitions, counted at once. */
  async count(options: CountOptions = {}): Promise<number> {
    const counts = await Promise.all(this.partitions.map((p) => p.count(options)));
    return sum(counts, (n) => n);
  }

  /** `write` on each partition's share of `items`, all partitions at once; results in input order. */
  async #inPartitions<T, R>(
    items: readonly T[],
    keyOf: (item: T) => unknown,
    write: (partition: SyncStore, group: T[]) => Promise<R[]>,
  ): Promise<R[]> {
    const results = new Array<R>(items.length);
    const indexed = items.map((item, i) => ({ item, i }));
    const groups = this.#byPartition(indexed, (e) => keyOf(e.item));
    await Promise.all(
      groups.map(async ([partition, group]) => {
        const written = await write(
          partition,
          group.map((e) => e.item),
        );
        written.forEach((result, j) => (results[group[j]!.i] = result));
      }),
    );
    return results;
  }

  get(key: string): Promise<StoredRecord | undefined> {
    return this.partitionOf(key).get(key);
  }

  getRecord(key: string): Promise<StoredRecord | undefined> {
    return this.partitionOf(key).getRecord(key);
  }

  async getRecords(keys: readonly string[]): Promise<StoredRecord[]> {
    const found = new Map<string, StoredRecord>();
    await Promise.all(
      this.#byPartition(keys, (k) => k).map(async ([partition, group]) => {
        for (const record of await partition.getRecords(group)) found.set(record.key, record);
      }),
    );
    return keys.flatMap((key) => {
      const record = found.get(key);
      return record === undefined ? [] : [record];
    });
  }

  isCurrent(key: string, contentHash: string): Promise<boolean> {
    return this.partitionOf(key).isCurrent(key, contentHash);
  }

  /**
   * Applies each partition's records by that partition's `apply` calls, and sends the calls of
   * the partitions one shard serves together, as one `apply_shard` call of at most a single
   * store's call size (Redis 7: one script may touch any slots of its server). A batch then costs
   * about as many script calls as it does on a single instance, whatever P: per partition, they
   * grew with it (a 500-record batch over 256 partitions was ~220 calls of 2 records). A shard
   * call refused (its slots moving, Redis before 7) is made again call by call, as before.
   */
  async apply(
    records: readonly StoredRecord[],
    options: ApplyRecordsOptions = {},
  ): Promise<ApplyResult[]> {
    records.forEach((record, i) => checkRecord(record, i));
    if (this.#appliesRunning < APPLIES_AT_ONCE) return this.#runApply(records, options);
    return new Promise((resolve, reject) => {
      this.#appliesWaiting.push({ records, options, resolve, reject });
    });
  }

  /** Applies `records` now, then starts what waited meanwhile. */
  async #runApply(
    records: readonly StoredRecord[],
    options: ApplyRecordsOptions,
  ): Promise<ApplyResult[]> {
    this.#appliesRunning += 1;
    try {
      return await this.#applyNow(records, options);
    } finally {
      this.#appliesRunning -= 1;
      this.#startWaiting();
    }
  }

  /**
   * Starts the applies that waited, those of the first one's options merged into one (in the
   * order they came, up to {@link MERGED_APPLY_RECORDS} records): each partition then gets the
   * records of several batches in one call, where it got ~2 of each batch with 256 partitions.
   */
  #startWaiting(): void {
    while (this.#appliesRunning < APPLIES_AT_ONCE && this.#appliesWaiting.length > 0) {
      const key = applyOptionsKey(this.#appliesWaiting[0]!.options);
      const merged: WaitingApply[] = [];
      let count = 0;
      this.#appliesWaiting = this.#appliesWaiting.filter((w) => {
        const take =
          applyOptionsKey(w.options) === key &&
          (merged.length === 0 || count + w.records.length <= MERGED_APPLY_RECORDS);
        if (take) {
          merged.push(w);
          count += w.records.length;
        }
        return !take;
      });
      this.#runApply(
        merged.flatMap((w) => w.records),
        merged[0]!.options,
      ).then(
        (results) => {
          let at = 0;
          for (const w of merged) {
            w.resolve(results.slice(at, at + w.records.length));
            at += w.records.length;
          }
        },
        (error: unknown) => merged.forEach((w) => w.reject(error)),
      );
    }
  }

  async #applyNow(
    records: readonly StoredRecord[],
    options: ApplyRecordsOptions,
  ): Promise<ApplyResult[]> {
    const planned: { partition: SyncStore; call: ApplyCall; first: number[] }[] = [];
    const results = new Array<ApplyResult>(records.length);
    const indexed = records.map((record, i) => ({ record, i }));
    for (const [partition, group] of this.#byPartition(indexed, (e) => e.record.key)) {
      let offset = 0;
      for (const call of partition.applyCalls(
        group.map((e) => e.record),
        options,
      )) {
        const indices = group.slice(offset, offset + call.records.length).map((e) => e.i);
        planned.push({ partition, call, first: indices });
        offset += call.records.length;
      }
    }
    const byShard = new Map<unknown, typeof planned>();
    for (const entry of planned) {
      const shard = this.#shardOf(String(entry.call.keys[0]));
      const list = byShard.get(shard);
      if (list === undefined) byShard.set(shard, [entry]);
      else list.push(entry);
    }
    await Promise.all(
      [...byShard.values()].flatMap((entries) =>
        packShardCalls(entries, this.#applyChunkRecords).map(async (pack) => {
          const replies = await this.#applyPack(pack.map((e) => e.call));
          pack.forEach((entry, j) => {
            applyReplyResults(entry.call.records, replies[j]!).forEach(
              (result, k) => (results[entry.first[k]!] = result),
            );
          });
          // Not durable is not applied (SyncStore.apply): one WAIT on the shard's master.
          const count = sum(pack, (e) => e.call.records.length);
          await pack[0]!.partition.ensureDurable(pack[0]!.call.records[0]!.key, count);
        }),
      ),
    );
    return results;
  }

  /** The shard serving `key` (one for every key when the store is not on a cluster). */
  #shardOf(key: string): unknown {
    return this.#client instanceof ClusterSender ? this.#client.shardOf(key) : undefined;
  }

  /** Replies of `calls` (on one shard): as one `apply_shard` call, else one `apply` each. */
  async #applyPack(calls: readonly ApplyCall[]): Promise<unknown[][]> {
    if (calls.length > 1 && this.#shardCalls) {
      const header = calls.flatMap((c) => [String(c.keys.length), String(c.args.length)]);
      try {
        return await SCRIPTS.apply_shard.run<unknown[][]>(
          this.#client,
          [calls[0]!.keys[0]!],
          [String(calls.length), ...header, ...calls.flatMap((c) => [...c.keys, ...c.args])],
        );
      } catch (error) {
        // A server that cannot run it at all (before Redis 7) is not asked again.
        if (/compil|shebang|flags/i.test(String((error as Error).cause ?? error))) {
          this.#shardCalls = false;
        }
      }
    }
    return Promise.all(
      calls.map((c) => SCRIPTS.apply.run<unknown[]>(this.#client, c.keys, c.args)),
    );
  }

  /**
   * Every change of every partition ({@link SyncStore.watch}): each partition's feed is read in
   * pages and the partitions merged by stream id (exact order within a partition, so for each
   * key; across partitions, by the ms of the shards' clocks). A position holds one stream position
   * per partition, comma-separated.
   */
  watch(options: WatchOptions = {}): AsyncIterable<WatchEvent> {
    requireChangeFeed(this.settings);
    return watchFeeds(this.#feedSource(), options);
  }

  /** See {@link SyncStore.changeFeedPosition}: every partition's. */
  changeFeedPosition(at: 'now' | 'start' = 'now'): Promise<string> {
    requireChangeFeed(this.settings);
    return feedPosition(this.#feedSource(), at);
  }

  #feedSource() {
    return {
      streams: this.partitions.map(
        (p) => new FeedStream(this.#client, p.keys.changes, p.keys.changesSeq),
      ),
      getRecords: (keys: readonly string[]) => this.getRecords(keys),
    };
  }

  shouldAcceptWrites(): Promise<boolean> {
    return this.#meta.shouldAcceptWrites();
  }

  ping(): Promise<void> {
    return this.#meta.ping();
  }

  quarantine(peerId: string, entries: readonly DeadLetter[]): Promise<void> {
    return this.#meta.quarantine(peerId, entries);
  }

  /**
   * Brings every partition's subtree up to date ({@link REFRESH_PARALLELISM} at a time), then the
   * levels above them. One pipelined round trip finds the partitions with dirty marks and every
   * partition's generation, so only those are refreshed, and the top is recomputed only when one
   * of them changed (here or by another process): a clean store costs that one round trip, not
   * one per partition. With `budgetMs`, each partition gets that budget; `complete` says whether
   * all of them settled. A call made while a refresh runs waits for one more pass, so it sees
   * every write made before it.
   */
  refreshMerkle(options: RefreshRunOptions = {}): Promise<RefreshStats> {
    if (this.#refreshQueued !== undefined) return this.#refreshQueued;
    const previous = this.#refreshing;
    if (previous !== undefined && options.budgetMs !== undefined) return previous;
    const next: Promise<RefreshStats> =
      previous === undefined
        ? this.#refresh(options)
        : previous
            .catch(() => undefined)
            .then(() => {
              this.#refreshQueued = undefined;
              return this.#refresh({});
            });
    if (previous !== undefined) this.#refreshQueued = next;
    this.#refreshing = next;
    const done = (): void => {
      if (this.#refreshing === next) this.#refreshing = undefined;
    };
    next.then(done, done);
    return next;
  }

  async #refresh(options: RefreshRunOptions): Promise<RefreshStats> {
    const started = performance.now();
    const state = await Promise.all(
      this.partitions.map((p) =>
        Promise.all([
          this.#client.sendCommand(['EXISTS', p.keys.dirty, p.keys.claimed]),
          this.#client.sendCommand(['GET', p.keys.gen], AS_STRINGS),
        ]),
      ),
    );
    const dirty = this.partitions.filter((_, i) => Number(state[i]![0]) > 0);
    const stats: RefreshStats[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < dirty.length) stats.push(await dirty[next++]!.refreshMerkle(options));
    };
    await Promise.all(Array.from({ length: Math.min(REFRESH_PARALLELISM, dirty.length) }, worker));
    const generations = state.map(([, gen]) => asString(gen) ?? '');
    const moved = generations.some((gen, i) => gen !== this.#topGenerations[i]);
    let nodes = 0;
    if (dirty.length > 0 || moved) {
      nodes = await this.#refreshTop();
      // What a partition committed after the generations were read is seen by the next call.
      this.#topGenerations = dirty.length > 0 ? [] : generations;
    }
    return {
      keys: sum(stats, (s) => s.keys),
      buckets: sum(stats, (s) => s.buckets),
      nodes: sum(stats, (s) => s.nodes) + nodes,
      rounds: sum(stats, (s) => s.rounds),
      elapsedMs: performance.now() - started,
      complete: stats.every((s) => s.complete),
    };
  }

  /** Recomputes the levels above the partitions from their subtree roots; nodes written. */
  async #refreshTop(): Promise<number> {
    const roots = await Promise.all(
      this.partitions.map(async (partition, i) => {
        const path = this.layout.paths[i]!;
        const hash = await this.#client.sendCommand(
          ['HGET', partition.keys.nodes, nodeField(path)],
          AS_STRINGS,
        );
        return [path, asString(hash) ?? ZERO_HASH] as const;
      }),
    );
    let level = new Map<string, string>(roots);
    const fields: string[] = [];
    for (let depth = this.layout.depth; depth > 0; depth--) {
      const parents = new Map<string, string>();
      for (const [path, hash] of level) fields.push(nodeField(path), hash);
      for (const parent of new Set(Array.from(level.keys(), (p) => p.slice(0, depth - 1)))) {
        parents.set(parent, interiorHash(childPaths(parent).map((c) => level.get(c))));
      }
      level = parents;
    }
    fields.push(nodeField(''), level.get('') ?? ZERO_HASH);
    await this.#client.sendCommand(['HSET', this.keys.nodes, ...fields]);
    return fields.length / 2;
  }

  async merkleRoot(): Promise<string> {
    await this.refreshMerkle();
    return (
      asString(await this.#client.sendCommand(['HGET', this.keys.nodes, 'root'], AS_STRINGS)) ??
      ZERO_HASH
    );
  }

  /** Children above the partitions come from the top of the tree, the rest from a partition. */
  async merkleChildren(path: string): Promise<MerkleNode[]> {
    return (await this.merkleChildrenMany([path]))[0]!;
  }

  /**
   * {@link merkleChildren} of many paths after one refresh: one `HMGET` per node hash they
   * touch (the top of the tree's, or a partition's), all in one pipeline.
   */
  async merkleChildrenMany(paths: readonly string[]): Promise<MerkleNode[][]> {
    await this.refreshMerkle();
    return this.#reader.childrenMany(paths);
  }

  merkleLeaves(bucket: string): Promise<RecordVersion[]> {
    return this.partitions[partitionIndex(this.layout, bucket)]!.merkleLeaves(bucket);
  }

  /** {@link merkleLeaves} of many buckets, each read on its partition's shard, in one pipeline. */
  merkleLeavesMany(buckets: readonly string[]): Promise<RecordVersion[][]> {
    return this.#reader.leavesMany(buckets);
  }

  purgeTombstones(now: number = Date.now(), horizon = Infinity): Promise<PurgeResult> {
    return this.tombstones.purgeTombstones(now, horizon);
  }

  async close(): Promise<void> {
    await Promise.all([this.#meta.close(), ...this.partitions.map((p) => p.close())]);
  }

  /**
   * `items` grouped by the partition of their key, partitions in first-seen order; an item whose
   * key is not a string goes to the first partition (whose checks refuse it).
   */
  #byPartition<T>(items: readonly T[], keyOf: (item: T) => unknown): [SyncStore, T[]][] {
    const groups = new Map<SyncStore, T[]>();
    for (const item of items) {
      const key = keyOf(item);
      const partition = typeof key === 'string' ? this.partitionOf(key) : this.partitions[0]!;
      const group = groups.get(partition);
      if (group === undefined) groups.set(partition, [item]);
      else group.push(item);
    }
    return [...groups];
  }
}

/** An {@link PartitionedStore.apply} call waiting for one running to end. */
interface WaitingApply {
  readonly records: readonly StoredRecord[];
  readonly options: ApplyRecordsOptions;
  readonly resolve: (results: ApplyResult[]) => void;
  readonly reject: (error: unknown) => void;
}

/** Applies with the same options can be merged: the same source and the same horizon rule. */
function applyOptionsKey(options: ApplyRecordsOptions): string {
  const { acceptOld, horizonMarginMs, source } = options;
  return JSON.stringify([acceptOld ?? false, horizonMarginMs ?? null, source ?? null]);
}

/**
 * `entries` (one shard's `apply` calls) packed into shard calls of at most `maxRecords` records
 * and {@link CHUNK_BYTES} of stored bytes (a pack holds at least one call), so one shard call
 * holds Redis no longer than one call of a single store does.
 */
function packShardCalls<E extends { readonly call: ApplyCall }>(
  entries: readonly E[],
  maxRecords: number,
): E[][] {
  const packs: E[][] = [];
  let pack: E[] = [];
  let records = 0;
  let bytes = 0;
  for (const entry of entries) {
    const size = sum(entry.call.records, recordBytes);
    const n = entry.call.records.length;
    if (pack.length > 0 && (records + n > maxRecords || bytes + size > CHUNK_BYTES)) {
      packs.push(pack);
      pack = [];
      records = 0;
      bytes = 0;
    }
    pack.push(entry);
    records += n;
    bytes += size;
  }
  if (pack.length > 0) packs.push(pack);
  return packs;
}

/**
 * Tombstone collection over partitions: acknowledgements and identity are store-wide (under the
 * plain prefix); tombstones, their arrivals and their purge are each partition's. A purge raises
 * the store-wide horizon first, then each partition's (which its apply script reads): a crash in
 * between leaves the store-wide horizon ahead, which only refuses more, never less.
 */
class PartitionedTombstones implements TombstoneStore {
  constructor(
    private readonly store: PartitionedStore,
    private readonly meta: GcStore,
  ) {}

  gcState(): Promise<GcState> {
    return this.meta.gcState();
  }

  acknowledge(peerId: string, atMs: number): Promise<void> {
    return this.meta.acknowledge(peerId, atMs);
  }

  async tombstoneArrivals(keys: readonly string[]): Promise<(number | undefined)[]> {
    return Promise.all(
      keys.map(
        async (key) => (await this.store.partitionOf(key).tombstones.tombstoneArrivals([key]))[0],
      ),
    );
  }

  async purgeTombstones(now: number, horizon: number): Promise<{ readonly purged: number }> {
    const partitions = this.store.partitions.map((p) => p.tombstones);
    const due = await Promise.all(partitions.map((p) => p.hasPurgeable(now, horizon)));
    if (!due.includes(true)) return { purged: 0 };
    await this.meta.raiseHorizon(now, horizon);
    let purged = 0;
    for (const [i, partition] of partitions.entries()) {
      if (due[i]) purged += (await partition.purgeTombstones(now, horizon)).purged;
    }
    return { purged };
  }

  async heldTombstones(from: number, to: number): Promise<HeldTombstones> {
    const held = await Promise.all(
      this.store.partitions.map((p) => p.tombstones.heldTombstones(from, to)),
    );
    return { count: sum(held, (h) => h.count), bytes: sum(held, (h) => h.bytes) };
  }

  async countTombstones(from: number, to: number): Promise<number> {
    const counts = await Promise.all(
      this.store.partitions.map((p) => p.tombstones.countTombstones(from, to)),
    );
    return sum(counts, (n) => n);
  }

  supersede(key: string, stale: RecordVersion, peerId?: string): Promise<boolean> {
    return this.store.partitionOf(key).tombstones.supersede(key, stale, peerId);
  }

  identity(): Promise<{ readonly id: string; readonly created: boolean }> {
    return this.meta.identity();
  }
}

function sum<T>(items: readonly T[], of: (item: T) => number): number {
  return items.reduce((total, item) => total + of(item), 0);
}
