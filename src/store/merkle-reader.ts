/**
 * Read-only access to any store's Merkle tree and records (this node's or a peer's), with plain
 * reads only (GET, HGET, HMGET, HGETALL, HLEN, HSCAN): it works under a read-only ACL and never
 * changes anything.
 * It does not bring the tree up to date; the store's owner does that (`SyncStore.refreshMerkle`).
 */
import { isBoundedInt, MAX_UPDATED_AT, MAX_VERSION } from '../codec/bounds.js';
import { DEFAULT_MAX_ITEM_BYTES } from '../codec/zstd.js';
import { PeerReplyTooLargeError, StoreError } from '../errors.js';
import type { RecordVersion, StoredRecord } from '../model/record.js';
import type { MerkleNode } from '../engine/local-store.js';
import {
  bucketOf,
  childPaths,
  isBucketPath,
  isMerklePath,
  nodeField,
  parseVersionTuple,
  sortByKeyUtf8,
  ZERO_HASH,
} from './merkle-hash.js';
import { storeKeys, type StoreKeys } from './keys.js';
import {
  parseLayoutRecord,
  partitionIndex,
  partitionPrefix,
  type PartitionLayout,
} from './partitions.js';
import { parseRecordValue, verifyRecordValue } from './record-value.js';
import { AS_BUFFERS, AS_STRINGS, asString, type CommandSender } from './redis-io.js';

/** A peer record a repair refused, and why. */
export interface RejectedRecord {
  readonly key: string;
  /** Size of its stored value, as the peer reported it. */
  readonly bytes: number;
  readonly reason: 'hash_mismatch' | 'bad_record' | 'too_large';
}

/** A bucket field a paged read refused, and why (it is never compared). */
export interface RefusedLeaf {
  readonly key: string;
  readonly reason: string;
}

/** One `HSCAN` page of a bucket: its leaves, what was refused, and where the next page starts. */
export interface BucketPage {
  /** `'0'` once the scan is complete (Redis's convention). */
  readonly cursor: string;
  /** Well-formed leaves within the clock and version bounds, of keys that belong to the bucket. */
  readonly leaves: RecordVersion[];
  readonly refused: RefusedLeaf[];
  /** Fields the page held (leaves + refused). */
  readonly fields: number;
  /** The page was over its bound (a peer's query connection, issue 19): refused unread. */
  readonly tooLarge?: boolean;
  /** The page did not fit what the round's budget had left: not read, to be read on its own. */
  readonly deferred?: boolean;
}

/**
 * A node hash that matches none: what a hash reads as when the reply holds something other than
 * a string (a value over its bound, skipped unread by a peer's query connection): the node is
 * then divergent, and what is below it is compared, rather than passed over as equal or absent.
 */
const UNREADABLE_HASH = 'unreadable';

/** A node hash reply: zeros when absent, {@link UNREADABLE_HASH} when not a string. */
function hashOf(value: unknown): string {
  if (value === null || value === undefined) return ZERO_HASH;
  return asString(value) ?? UNREADABLE_HASH;
}

/**
 * Reads the Merkle tree and records of the store under `prefix` through `client`, in either
 * layout: a single instance's, or a Redis Cluster store's partitions (docs/PROTOCOL.md §9), whose
 * keys it finds from the store's layout record ({@link MerkleReader.open}).
 */
export class MerkleReader {
  /** The store-wide key names: the whole store's, or a partitioned store's `{meta}` keys. */
  readonly keys: StoreKeys;
  /** The partition layout of a partitioned store; undefined for the single-instance layout. */
  readonly layout: PartitionLayout | undefined;
  /** Each partition's key names, in tree order (partitioned stores only). */
  readonly #partitions: readonly StoreKeys[];

  constructor(
    private readonly client: CommandSender,
    prefix = '',
    /** Bound on a record's decompressed content: a stored frame that passes it is no record. */
    private readonly maxItemBytes = DEFAULT_MAX_ITEM_BYTES,
    layout?: PartitionLayout,
  ) {
    this.layout = layout;
    this.keys = storeKeys(layout === undefined ? prefix : partitionPrefix(prefix, 'meta'));
    this.#partitions =
      layout === undefined ? [] : layout.tags.map((tag) => storeKeys(partitionPrefix(prefix, tag)));
  }

  /**
   * The layout of the store under `prefix` (its `store:layout` record; none, or no permission to
   * read it: a single instance's), for {@link MerkleReader}'s constructor. One round trip.
   * @throws {StoreError} when the record is there but unreadable.
   */
  static async readLayout(
    client: CommandSender,
    prefix = '',
  ): Promise<PartitionLayout | undefined> {
    const key = storeKeys(prefix).layout;
    let text: string | undefined;
    try {
      const reply = await client.sendCommand(['GET', key], AS_STRINGS);
      text = asString(reply);
      if (text === undefined && reply !== null && reply !== undefined) {
        throw new StoreError(`the layout record ${key} is unreadable (over its bound)`);
      }
    } catch (error) {
      // A peer ACL from before partitioned stores does not grant the key; it grants no
      // partition's keys either, so the store it guards is read in the single-instance layout.
      if (error instanceof Error && error.message.startsWith('NOPERM')) return undefined;
      throw error;
    }
    if (text === undefined) return undefined;
    const layout = parseLayoutRecord(text);
    if (layout === undefined) {
      throw new StoreError(`the layout record ${key} is unreadable: ${text.slice(0, 200)}`);
    }
    return layout;
  }

  /** A reader of the store under `prefix`, in the layout it records. */
  static async open(
    client: CommandSender,
    prefix = '',
    maxItemBytes = DEFAULT_MAX_ITEM_BYTES,
  ): Promise<MerkleReader> {
    return new MerkleReader(client, prefix, maxItemBytes, await this.readLayout(client, prefix));
  }

  /** The keys that hold tree node `path`: the partition's below its root, store-wide above. */
  #keysOfNode(path: string): StoreKeys {
    const layout = this.layout;
    if (layout === undefined || path.length <= layout.depth) return this.keys;
    return this.#partitions[partitionIndex(layout, path)]!;
  }

  /** The keys that hold record `key` (and its bucket's leaves). */
  #keysOfBucket(bucket: string): StoreKeys {
    const layout = this.layout;
    return layout === undefined ? this.keys : this.#partitions[partitionIndex(layout, bucket)]!;
  }

  #keysOfRecord(key: string): StoreKeys {
    return this.layout === undefined ? this.keys : this.#keysOfBucket(bucketOf(key));
  }

  /** Every `merkle:dirty` and `merkle:claimed` key of the store (one pair per partition). */
  dirtyKeys(): string[] {
    const all = this.layout === undefined ? [this.keys] : this.#partitions;
    return all.flatMap((k) => [k.dirty, k.claimed]);
  }

  /** HMGET of `fields` of the node hashes, grouped by the hash that holds each; aligned. */
  async #nodeFields(
    fields: readonly string[],
    nodeOf: (field: string) => string,
  ): Promise<unknown[]> {
    const groups = new Map<string, number[]>();
    fields.forEach((field, i) => {
      const key = this.#keysOfNode(nodeOf(field)).nodes;
      const group = groups.get(key);
      if (group === undefined) groups.set(key, [i]);
      else group.push(i);
    });
    const values = new Array<unknown>(fields.length);
    await Promise.all(
      [...groups].map(async ([key, indices]) => {
        const reply = asArray(
          await this.client.sendCommand<unknown>(
            ['HMGET', key, ...indices.map((i) => fields[i]!)],
            AS_STRINGS,
          ),
        );
        indices.forEach((index, j) => (values[index] = reply[j]));
      }),
    );
    return values;
  }

  /** The root hash as last computed by the store's owner; 64 zeros for an empty store. */
  async root(): Promise<string> {
    const value = await this.client.sendCommand(['HGET', this.keys.nodes, 'root'], AS_STRINGS);
    return hashOf(value);
  }

  /**
   * The non-empty children of an interior node (`''` is the root), in order 0..f; `[]` for a
   * bucket path.
   *
   * @throws {StoreError} for a path that is not lowercase hex of at most 4 digits.
   */
  async children(path: string): Promise<MerkleNode[]> {
    const [nodes] = await this.childrenMany([path]);
    return nodes!;
  }

  /** {@link children} of many paths in one round trip. */
  async childrenMany(paths: readonly string[]): Promise<MerkleNode[][]> {
    for (const path of paths) checkPath(path);
    const interior = paths.filter((p) => !isBucketPath(p));
    const fields = interior.flatMap((p) => childPaths(p));
    const values = await this.#nodeFields(fields, (field) => field);
    const byField = new Map<string, string>();
    fields.forEach((field, i) => {
      const hash = hashOf(values[i]);
      if (hash !== ZERO_HASH) byField.set(field, hash);
    });
    return paths.map((path) =>
      isBucketPath(path)
        ? []
        : childPaths(path).flatMap((child) => {
            const hash = byField.get(child);
            return hash === undefined ? [] : [{ path: child, hash }];
          }),
    );
  }

  /** The hashes of the given tree nodes (`''` is the root) in one round trip; zeros when absent. */
  async nodeHashes(paths: readonly string[]): Promise<string[]> {
    for (const path of paths) checkPath(path);
    if (paths.length === 0) return [];
    const values = await this.#nodeFields(paths.map(nodeField), (field) =>
      field === nodeField('') ? '' : field,
    );
    return paths.map((_, i) => hashOf(values[i]));
  }

  /**
   * Every record version in a bucket (tombstones included), sorted by key (utf-8 byte order).
   *
   * @throws {StoreError} for a path that is not a 4-digit lowercase hex bucket.
   */
  async leaves(bucket: string): Promise<RecordVersion[]> {
    const [leaves] = await this.leavesMany([bucket]);
    return leaves!;
  }

  /** {@link leaves} of many buckets, pipelined in one round trip. */
  async leavesMany(buckets: readonly string[]): Promise<RecordVersion[][]> {
    for (const bucket of buckets) checkBucket(bucket);
    const replies = await Promise.all(
      buckets.map((b) =>
        this.client.sendCommand<unknown>(['HGETALL', this.#keysOfBucket(b).bucket(b)], AS_STRINGS),
      ),
    );
    return replies.map(parseBucket);
  }

  /** One record (tombstones included), or undefined when the store has none for `key`. */
  async getRecord(key: string): Promise<StoredRecord | undefined> {
    const [record] = await this.readRecords([key]);
    return record;
  }

  /**
   * The records of `keys` (tombstones included) in one pipeline, in the order of `keys`; absent
   * keys are left out.
   */
  async getRecords(keys: readonly string[]): Promise<StoredRecord[]> {
    const records = await this.readRecords(keys);
    return records.filter((r): r is StoredRecord => r !== undefined);
  }

  /**
   * The records of `keys` as a peer's repair must take them: never more than `budgetBytes` of
   * values held at once (plus one value), each value no larger than `maxValueBytes`, and every
   * body verified. Two round trips per group: `STRLEN` of every key, then `GETRANGE 0 <size − 1>`
   * of those that fit, so a value that grew in between arrives cut short (and fails its hash),
   * never larger than measured. A key that is absent is left out; one that is not a record, too
   * large, or whose content does not hash to its header's hash is `rejected` with why.
   */
  async fetchVerified(
    keys: readonly string[],
    maxValueBytes: number,
    budgetBytes: number,
  ): Promise<{ records: StoredRecord[]; rejected: RejectedRecord[] }> {
    const records: StoredRecord[] = [];
    const rejected: RejectedRecord[] = [];
    if (keys.length === 0) return { records, rejected };
    const sizes = await Promise.all(
      keys.map((key) =>
        this.client.sendCommand<unknown>(['STRLEN', this.#keysOfRecord(key).item(key)]),
      ),
    );
    let group: { key: string; size: number }[] = [];
    let groupBytes = 0;
    const flush = async (): Promise<void> => {
      const taken = group;
      group = [];
      groupBytes = 0;
      const values = await Promise.all(
        taken.map(({ key, size }) =>
          this.client.sendCommand<unknown>(
            ['GETRANGE', this.#keysOfRecord(key).item(key), '0', String(size - 1)],
            AS_BUFFERS,
          ),
        ),
      );
      values.forEach((value, i) => {
        const { key, size } = taken[i]!;
        const verdict = verifyRecordValue(key, value, this.maxItemBytes);
        if ('record' in verdict) records.push(verdict.record);
        else rejected.push({ key, bytes: size, reason: verdict.reason });
      });
    };
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const size = asCount(sizes[i]);
      if (!(size > 0)) continue; // absent (0): absence is never deletion
      if (size > maxValueBytes) {
        rejected.push({ key, bytes: size, reason: 'too_large' });
        continue;
      }
      if (group.length > 0 && groupBytes + size > budgetBytes) await flush();
      group.push({ key, size });
      groupBytes += size;
    }
    if (group.length > 0) await flush();
    return { records, rejected };
  }

  /**
   * How many fields each bucket holds (`HLEN`), in one round trip: what a paged read of it will
   * bring, known before a field is read. A reply that is not a count reads as 0.
   */
  async bucketSizes(buckets: readonly string[]): Promise<number[]> {
    for (const bucket of buckets) checkBucket(bucket);
    const replies = await Promise.all(
      buckets.map((b) =>
        this.client.sendCommand<unknown>(['HLEN', this.#keysOfBucket(b).bucket(b)]),
      ),
    );
    return replies.map(asCount);
  }

  /**
   * One page (`HSCAN <bucket> <cursor> COUNT <count>`) of each bucket, pipelined in one round trip.
   * A hash table answers about `count` fields a page; a small hash (listpack) answers whole. With
   * `budgetBytes`, the pages share that budget on a peer's query connection: one that does not
   * fit what is left comes back `deferred` (read it again on its own), one over its own bound
   * `tooLarge`.
   */
  async scanBuckets(
    pages: readonly { readonly bucket: string; readonly cursor: string }[],
    count: number,
    budgetBytes?: number,
  ): Promise<BucketPage[]> {
    for (const { bucket } of pages) checkBucket(bucket);
    const options =
      budgetBytes === undefined
        ? AS_STRINGS
        : { ...AS_STRINGS, replyBudget: { remaining: budgetBytes } };
    const replies = await Promise.all(
      pages.map(({ bucket, cursor }) =>
        this.client
          .sendCommand<unknown>(
            ['HSCAN', this.#keysOfBucket(bucket).bucket(bucket), cursor, 'COUNT', String(count)],
            options,
          )
          .catch((error: unknown) => {
            if (error instanceof PeerReplyTooLargeError)
              return error.overBudget ? DEFERRED : TOO_LARGE;
            throw error;
          }),
      ),
    );
    return replies.map((reply, i) => {
      if (reply === TOO_LARGE) return { ...NO_PAGE, tooLarge: true };
      if (reply === DEFERRED) return { ...NO_PAGE, deferred: true };
      return parseBucketPage(pages[i]!.bucket, reply);
    });
  }

  /** The records of `keys` aligned with `keys` (undefined where absent), in one pipeline. */
  async readRecords(keys: readonly string[]): Promise<(StoredRecord | undefined)[]> {
    const replies = await Promise.all(
      keys.map((key) =>
        this.client.sendCommand<unknown>(['GET', this.#keysOfRecord(key).item(key)], AS_BUFFERS),
      ),
    );
    return replies.map((value, i) => parseRecordValue(keys[i]!, value, this.maxItemBytes));
  }
}

/** A page refused for its size, in place of its reply. */
const TOO_LARGE = Symbol('too large');
/** A page that did not fit its round's budget, in place of its reply. */
const DEFERRED = Symbol('deferred');
/** The page of a bucket not read. */
const NO_PAGE: BucketPage = { cursor: '0', leaves: [], refused: [], fields: 0 };

/**
 * A reply expected to be a count (`HLEN`, `STRLEN`): a positive safe integer, else 0. Anything but
 * a number or its digits reads as 0 without being converted (an object may not convert at all).
 */
function asCount(reply: unknown): number {
  const n = typeof reply === 'number' ? reply : Number(asString(reply) ?? '0');
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}

/** A reply expected to be an array: anything else (only a broken server sends it) reads as empty. */
function asArray(reply: unknown): readonly unknown[] {
  return Array.isArray(reply) ? reply : [];
}

function checkBucket(bucket: string): void {
  if (!isBucketPath(bucket))
    throw new StoreError(`not a Merkle bucket path: ${JSON.stringify(bucket)}`);
}

function checkPath(path: string): void {
  if (typeof path !== 'string' || !isMerklePath(path)) {
    throw new StoreError(
      `not a Merkle path (lowercase hex, at most 4 digits): ${JSON.stringify(path)}`,
    );
  }
}

/** Parses an HGETALL reply of a bucket into its leaves, sorted by key (utf-8 byte order). */
export function parseBucket(reply: unknown): RecordVersion[] {
  return sortByKeyUtf8(parseBucketEntries(reply));
}

/**
 * Parses an HGETALL reply (a flat array in RESP2, an object or Map otherwise) of a bucket: the
 * well-formed leaves within the clock and version bounds (anything else is no leaf).
 */
export function parseBucketEntries(reply: unknown): RecordVersion[] {
  const leaves: RecordVersion[] = [];
  for (const [key, tuple] of bucketPairs(reply)) {
    const leaf = parseVersionTuple(key, tuple);
    if (leaf !== undefined && withinBounds(leaf)) leaves.push(leaf);
  }
  return leaves;
}

/**
 * Parses an `HSCAN` reply (`[cursor, [field, value, …]]`) of a peer's bucket `bucket`. A field is
 * a leaf only if its tuple is well formed, its clock and version are within their bounds
 * (docs/PROTOCOL.md §1) and its key belongs to the bucket; any other field is refused, so a peer
 * cannot hide a key in the wrong bucket (where it would look absent here). A reply that is not a
 * page ends the scan.
 */
export function parseBucketPage(bucket: string, reply: unknown): BucketPage {
  const leaves: RecordVersion[] = [];
  const refused: RefusedLeaf[] = [];
  if (!Array.isArray(reply) || reply.length !== 2) {
    return { cursor: '0', leaves, refused, fields: 0 };
  }
  const raw = asString(reply[0]);
  const cursor = raw !== undefined && /^\d{1,20}$/.test(raw) ? raw : '0';
  let fields = 0;
  // A field or value that is no string (over its bound, skipped unread): refused, never compared.
  const pairs = bucketPairs(reply[1]);
  const unreadable = Array.isArray(reply[1]) ? Math.floor(reply[1].length / 2) - pairs.length : 0;
  for (let i = 0; i < unreadable; i++) {
    fields += 1;
    refused.push({ key: `(unreadable field ${i + 1})`, reason: 'field or value over its bound' });
  }
  for (const [key, tuple] of pairs) {
    fields += 1;
    const leaf = parseVersionTuple(key, tuple);
    if (leaf === undefined) refused.push({ key, reason: 'malformed leaf' });
    else if (!withinBounds(leaf))
      refused.push({ key, reason: 'clock, version or expiry beyond its bound' });
    else if (bucketOf(key) !== bucket) refused.push({ key, reason: `key not in bucket ${bucket}` });
    else leaves.push(leaf);
  }
  return { cursor, leaves, refused, fields };
}

/**
 * A leaf whose clock and version leave room for a later write, and whose expiry (if any) is a
 * clock too (docs/PROTOCOL.md §1).
 */
function withinBounds(leaf: RecordVersion): boolean {
  return (
    isBoundedInt(leaf.updatedAt, MAX_UPDATED_AT) &&
    isBoundedInt(leaf.version, MAX_VERSION) &&
    (leaf.expiresAt === undefined || isBoundedInt(leaf.expiresAt, MAX_UPDATED_AT))
  );
}

/** The (field, value) pairs of a hash reply: a flat array (RESP2), a Map or an object (RESP3). */
function bucketPairs(reply: unknown): [string, string][] {
  const pairs: [string, string][] = [];
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) {
      const k = asString(reply[i]);
      const v = asString(reply[i + 1]);
      if (k !== undefined && v !== undefined) pairs.push([k, v]);
    }
  } else if (reply instanceof Map) {
    for (const [k, v] of reply as Map<unknown, unknown>) {
      const ks = asString(k);
      const vs = asString(v);
      if (ks !== undefined && vs !== undefined) pairs.push([ks, vs]);
    }
  } else if (reply !== null && typeof reply === 'object') {
    for (const [k, v] of Object.entries(reply)) {
      const vs = asString(v);
      if (vs !== undefined) pairs.push([k, vs]);
    }
  }
  return pairs;
}
