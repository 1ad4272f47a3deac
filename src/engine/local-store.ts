import type { RecordVersion, StoredRecord } from '../model/record.js';

/** A stream entry that could not be parsed, decompressed or verified, with why. */
export interface DeadLetter {
  /** Its id in the peer's stream. */
  readonly id: string;
  /** Its raw fields, flat `[name, value, …]`. */
  readonly fields: readonly Buffer[];
  readonly reason: string;
  readonly message: string;
}

/** What applying one replicated record did to the local store. */
export type ApplyOutcome =
  /** The record won and was written. */
  | 'applied'
  /** The record lost to a local record that already supersedes it (same lineage or newer version). */
  | 'stale'
  /** The local store already holds exactly this version. */
  | 'duplicate'
  /**
   * The record lost against a different, concurrent local record (one that could not have seen it:
   * its version is not greater). Counted as a conflict.
   */
  | 'conflict'
  /**
   * Not applied: the record is live, this node holds no version of its key, and it is dated
   * before this node's purge horizon (less the clock margin): exactly what a delete purged here
   * looks like (docs/PROTOCOL.md §6). Only a peer in sync since the horizon can vouch for it.
   */
  | 'purged';

/** Result of {@link LocalStore.apply} for one record, in input order. */
export interface ApplyResult {
  readonly key: string;
  readonly outcome: ApplyOutcome;
  /** The local version the record was compared with, if there was one. */
  readonly previous?: RecordVersion;
}

/** Options of {@link LocalStore.apply}. */
export interface ApplyRecordsOptions {
  /**
   * Apply a live record of a key this node lacks even when it is dated before the purge horizon
   * (outcome `purged` otherwise): the peer it comes from has been in sync since. @default false
   */
  readonly acceptOld?: boolean;
  /**
   * The clock margin below the purge horizon, ms: 0 for a peer that has not acknowledged since
   * the horizon (its writes from before it are given up: docs/PROTOCOL.md §6).
   * @default `store.max_clock_skew`
   */
  readonly horizonMarginMs?: number;
  /**
   * Where the records come from, named in the change feed's entries (docs/PROTOCOL.md §10): the
   * hot path or a repair, and the peer. @default unnamed (source `apply`)
   */
  readonly source?: ApplySource;
}

/** Where replicated records come from: the hot path (a peer's CDC stream) or a Merkle repair. */
export interface ApplySource {
  readonly path: 'hot' | 'repair';
  readonly peerId: string;
}

/** What the tombstone collector of a store knows (docs/PROTOCOL.md §6). */
export interface GcState {
  /** The purge horizon: the highest cutoff tombstones were ever purged with; 0 = never. */
  readonly horizon: number;
  /** Per peer id, when it was last found holding every tombstone this node held (ms). */
  readonly acked: ReadonlyMap<string, number>;
}

/** Tombstones past `tombstone_ttl` that are kept because a peer has not acknowledged them. */
export interface HeldTombstones {
  readonly count: number;
  /** Approximate bytes of their records, leaves and index entries. */
  readonly bytes: number;
}

/**
 * The tombstone collector's part of a store (docs/PROTOCOL.md §6), where "tombstone" includes an
 * expiring record (indexed at max(expiresAt, arrival) and collected as a tombstone is once
 * expired): acknowledgements, the purge
 * horizon, acknowledged purges. {@link SyncStore} implements it; without it the engine purges
 * nothing and refuses nothing.
 */
export interface TombstoneStore {
  /** The purge horizon and the acknowledgements, in one round trip. */
  gcState(): Promise<GcState>;
  /** Records that `peerId` held every tombstone this node held at `atMs` (its clock). */
  acknowledge(peerId: string, atMs: number): Promise<void>;
  /**
   * When each key's tombstone arrived here (ms; for an expiring record, max(expiresAt, arrival)),
   * undefined for a key that is neither.
   */
  tombstoneArrivals(keys: readonly string[]): Promise<(number | undefined)[]>;
  /**
   * Purges tombstones that arrived before `min(now - tombstone_ttl, horizon)` and raises the purge
   * horizon to that cutoff.
   */
  purgeTombstones(now: number, horizon: number): Promise<{ readonly purged: number }>;
  /** Tombstones that arrived in `[from, to)` (held past their TTL), counted and sized. */
  heldTombstones(from: number, to: number): Promise<HeldTombstones>;
  /** How many tombstones arrived in `[from, to)` (counted only: one `ZCOUNT`). */
  countTombstones(from: number, to: number): Promise<number>;
  /**
   * Deletes `key` with a tombstone just above `stale` (its clock, version + 1, this node's origin),
   * replicated like any delete, if this node still holds no version of the key; false otherwise.
   * `peerId`, the stale peer, is named in the change feed entry's source (`supersede:<peer>`).
   */
  supersede(key: string, stale: RecordVersion, peerId?: string): Promise<boolean>;
  /**
   * This store's identity: the id in `store:id`, written (`created`) when there was none. A store
   * whose id vanished or changed was flushed, restarted without its data, or replaced.
   */
  identity(): Promise<{ readonly id: string; readonly created: boolean }>;
}

/** A Merkle child: its path and hash (hex), as listed by {@link LocalStore.merkleChildren}. */
export interface MerkleNode {
  readonly path: string;
  readonly hash: string;
}

/**
 * The node-local store the engine replicates into (the seed's `SyncEngineRef`).
 * {@link SyncStore} is the default implementation; tests and embedders can supply another.
 */
export interface LocalStore {
  /** Applies replicated records by LWW in as few round trips as possible; never throws per record. */
  apply(records: readonly StoredRecord[], options?: ApplyRecordsOptions): Promise<ApplyResult[]>;
  /** True when the local store holds `key` with exactly this content hash (seed API). */
  isCurrent(key: string, contentHash: string): Promise<boolean>;
  /** Full records (tombstones included) for `keys`, in one round trip; absent keys are left out. */
  getRecords(keys: readonly string[]): Promise<StoredRecord[]>;
  /** Backpressure: false while the store wants ingestion paused. */
  shouldAcceptWrites(): Promise<boolean>;
  /** Root hash of the (brought up to date) Merkle tree, hex. */
  merkleRoot(): Promise<string>;
  /** The children of an interior node (`''` is the root); empty for a bucket path. */
  merkleChildren(path: string): Promise<MerkleNode[]>;
  /**
   * {@link merkleChildren} of many paths (aligned), the tree brought up to date once: what a
   * repair's drill-down asks for at each level, in as few round trips as the layout allows.
   */
  merkleChildrenMany(paths: readonly string[]): Promise<MerkleNode[][]>;
  /** The leaves of a bucket: every record version in it, tombstones included. */
  merkleLeaves(bucket: string): Promise<RecordVersion[]>;
  /** {@link merkleLeaves} of many buckets (aligned), in as few round trips as possible. */
  merkleLeavesMany(buckets: readonly string[]): Promise<RecordVersion[][]>;
  /**
   * Claims the store for this node, or rejects when another node id owns it: two nodes writing
   * into one store would take each other's writes for replicated ones. The engine calls it first
   * thing in `start()` and fails to start when it rejects. Optional: a store without it is not
   * claimed (its embedder keeps one node per store).
   */
  claimOwner?(): Promise<void>;
  /**
   * Checks that the store answers (one round trip); rejects with why it does not. The engine
   * calls it every second and reports the answer in its health (`local`): a node whose own store
   * is down is not healthy. Optional: without it the local store's health is unknown (`null`).
   */
  ping?(): Promise<void>;
  /**
   * Brings the tree up to date, in part when `budgetMs` runs out first (background upkeep while
   * a backlog is replicated). A store with no cheaper way settles everything, as
   * {@link merkleRoot} does.
   */
  refreshMerkle(options?: { readonly budgetMs?: number }): Promise<unknown>;
  /**
   * Keeps corrupt entries from `peerId` in a capped local dead-letter stream (`dlq:<peer>`), so
   * nothing vanishes unexplained. A store that keeps none resolves (they are still counted and
   * logged).
   */
  quarantine(peerId: string, entries: readonly DeadLetter[]): Promise<void>;
  /**
   * True when {@link apply} stores a record's `frame`, when it has one, and never reads its
   * `content`. The engine then only hashes a frame it receives, and hands over records whose
   * `content` is an accessor that decompresses the frame on first read (such a record is not a
   * plain object: spread, it leaves the content out). False: records are plain and their
   * contents decompressed.
   */
  readonly keepsFrames: boolean;
  /** Acknowledged tombstone collection and store identity (optional: see {@link TombstoneStore}). */
  readonly tombstones?: TombstoneStore;
}
