/**
 * The Redis key names of a store (docs/PROTOCOL.md §Keys), every one under the node's prefix.
 */

/** Names of the Redis keys one store uses. */
export interface StoreKeys {
  readonly prefix: string;
  /** Hash of one record. */
  item(key: string): string;
  /** Hash `key → version tuple` of one Merkle bucket. */
  bucket(bucket: string): string;
  /** UTF-8 length of the part of an item key before the record's key. */
  readonly itemPrefixBytes: number;
  /** UTF-8 length of the part of a bucket key before the bucket id. */
  readonly bucketPrefixBytes: number;
  /** Stream of change events (CDC), byte-compatible with the Rust sync-engine. */
  readonly cdc: string;
  /**
   * Capped stream of every change this store applied (local, replicated, purged), in the order it
   * applied them: the change feed `watch` reads (docs/PROTOCOL.md §10).
   */
  readonly changes: string;
  /** String: how many changes were ever appended to {@link changes} (the last one's ordinal). */
  readonly changesSeq: string;
  /** Sorted set of tombstoned keys, score = updatedAt. */
  readonly tombstones: string;
  /**
   * Hash `key → bucket id ‖ tuple` of the keys written since the tree last counted them, each with
   * the version tuple the tree still counts for it (`''` when none).
   */
  readonly dirty: string;
  /** Hash of the dirty marks a refresh has taken and not yet committed (same format). */
  readonly claimed: string;
  /** Hash `path → hex hash` of the Merkle tree's computed nodes (`root` for the root). */
  readonly nodes: string;
  /** Counter bumped by every refresh commit (lets a refresher trust its cached node hashes). */
  readonly gen: string;
  /** Lock serialising refreshes across processes. */
  readonly lock: string;
  /** Capped stream of LWW conflicts (when the conflict log is on). */
  readonly conflicts: string;
  /** Capped stream of entries from `peerId` that failed to parse, decompress or verify. */
  deadLetters(peerId: string): string;
  /**
   * Hash `peer id → ms`: when each peer was last found holding every tombstone this node held (the
   * start of a repair that ended acknowledged, docs/PROTOCOL.md §6). Readable by peers.
   */
  readonly gcAcked: string;
  /** String, ms: this node's purge horizon, the highest cutoff it ever purged tombstones with. */
  readonly gcHorizon: string;
  /** String: a random id the engine writes into a store without one; gone = the store was lost. */
  readonly storeId: string;
  /**
   * String, JSON: a Redis Cluster store's partition layout (`{"partitions":16}`), fixed when it
   * is created (docs/PROTOCOL.md §9); absent in the single-instance layout.
   */
  readonly layout: string;
}

/** The key names under `prefix`. */
export function storeKeys(prefix: string): StoreKeys {
  const itemPrefix = `${prefix}item:`;
  const bucketPrefix = `${prefix}merkle:bucket:`;
  return {
    prefix,
    item: (key) => itemPrefix + key,
    bucket: (bucket) => bucketPrefix + bucket,
    itemPrefixBytes: Buffer.byteLength(itemPrefix),
    bucketPrefixBytes: Buffer.byteLength(bucketPrefix),
    cdc: `${prefix}cdc`,
    changes: `${prefix}changes`,
    changesSeq: `${prefix}changes:seq`,
    tombstones: `${prefix}tombstones`,
    dirty: `${prefix}merkle:dirty`,
    claimed: `${prefix}merkle:claimed`,
    nodes: `${prefix}merkle:nodes`,
    gen: `${prefix}merkle:gen`,
    lock: `${prefix}merkle:lock`,
    conflicts: `${prefix}conflicts`,
    deadLetters: (peerId) => `${prefix}dlq:${peerId}`,
    gcAcked: `${prefix}gc:acked`,
    gcHorizon: `${prefix}gc:horizon`,
    storeId: `${prefix}store:id`,
    layout: `${prefix}store:layout`,
  };
}
