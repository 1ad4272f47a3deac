/**
 * One Merkle anti-entropy repair against one peer (SPEC §4), with no scheduling: compare roots,
 * drill down level by level (pipelined, bounded parallelism) to the divergent buckets, compare
 * their leaves by the LWW order, fetch only the records where the peer's version wins (one
 * pipeline per chunk) and apply them. Absence is never deletion: a key the peer lacks is left
 * alone, and a peer tombstone deletes only by winning. {@link ColdPath} schedules and accounts.
 */
import { compareVersions, type RecordVersion, type StoredRecord } from '../model/record.js';
import type { DeadLetter, GcState, LocalStore, MerkleNode } from './local-store.js';
import { DEPTH, isBucketPath } from '../store/merkle-hash.js';
import { MerkleReader, type BucketPage, type RejectedRecord } from '../store/merkle-reader.js';
import type { PartitionLayout } from '../store/partitions.js';
import { AS_STRINGS, asString, type CommandSender } from '../store/redis-io.js';
import { PeerReplyTooLargeError } from '../errors.js';
import type { PeerLink } from './peer-link.js';

/** A dirty-mark sample too large to read: as many marks as a burst. */
const BURST = Symbol('burst');
/** How many tree paths or keys go into one pipelined request. */
const CHUNK = 512;
/** Pipelined requests in flight at once per repair (bounded parallelism). */
const PARALLEL = 4;
/**
 * Buckets of keys the peer wrote since its owner last refreshed its tree are compared too (their
 * hashes are stale), for up to this many dirty keys; beyond it the peer is mid-burst and its next
 * refresh tells.
 */
const MAX_PEER_DIRTY = 4096;
/**
 * Bytes of record values one fetch holds at once (plus one value of up to `max_item_bytes`): what
 * a repair's fetch adds to the engine's memory, whatever the peer stores.
 */
export const FETCH_BUDGET_BYTES = 16 * 1024 * 1024;
/** A stored value may pass `max_item_bytes` by its header line and a frame's overhead. */
const VALUE_OVERHEAD_BYTES = 128 * 1024;
/**
 * A peer bucket with more fields than this (`HLEN`) is refused unread (`oversized_bucket`): with
 * 65,536 buckets that is 6.5 billion keys, far beyond any store; only a broken or hostile peer
 * serves one (issue 19 measured a 1M-field bucket taking engine RSS from 82 MB to 915 MB).
 */
export const MAX_BUCKET_FIELDS = 100_000;
/** `HSCAN … COUNT` of one page of a peer bucket. */
const PAGE_FIELDS = 1000;
/** Fields (by `HLEN`) of the first pages one pipelined round trip asks for at most. */
const ROUND_FIELDS = 16_384;
/**
 * Bytes the first pages of one round may hold together, on a peer's query connection: a page
 * that does not fit what the pages before it left is read again on its own, after the rest.
 */
export const ROUND_BYTES = 16 * 1024 * 1024;
/** Dead letters one repair writes at most (the counts stay exact): a garbage bucket is one line. */
const MAX_LETTERS = 256;
/** Oversized buckets a report names at most (all are counted). */
const MAX_REPORTED_BUCKETS = 16;

/** Why a repair refused something the peer served (`replication_repair_rejected_total`). */
export type RepairRejection = RejectedRecord['reason'] | 'bad_leaf' | 'oversized_bucket';

/** A peer bucket refused for holding more than {@link MAX_BUCKET_FIELDS} fields. */
export interface OversizedBucket {
  readonly bucket: string;
  readonly fields: number;
}

/** One divergent bucket being compared: this node's leaves not yet matched, the peer's scan. */
interface BucketScan {
  readonly bucket: string;
  readonly mine: Map<string, RecordVersion>;
  /** Its fields by `HLEN`, before it was read. */
  readonly size: number;
  cursor: string;
  /** Keys of the peer's pages so far, once the bucket takes more than one page. */
  seen: Set<string> | undefined;
}

/** One key a repair changes (or, dry, would change). */
export interface RepairChange {
  readonly key: string;
  /** The local version, or null when the key is absent here. */
  readonly local: RecordVersion | null;
  readonly peer: RecordVersion;
  /** `delete` when the peer's winning version is a tombstone, `put` otherwise. */
  readonly action: 'put' | 'delete';
}

/** What one repair found and did. */
export interface RepairReport {
  readonly peerId: string;
  readonly dryRun: boolean;
  /** No key differs (roots equal, or every divergent bucket holds the same versions). */
  readonly inSync: boolean;
  /** Tree nodes (interior and buckets) found divergent, plus buckets the peer had not hashed yet. */
  readonly divergentBranches: number;
  /** Keys whose versions differ between the two sides (either side newer). */
  readonly divergentKeys: number;
  /** Keys where the peer's version wins: the changes, within the budget. */
  readonly changes: readonly RepairChange[];
  /** Winning peer versions left for later cycles by `max_items_per_cycle`. */
  readonly deferred: number;
  readonly fetched: number;
  readonly applied: number;
  /** Round trips to the peer. */
  readonly peerRoundTrips: number;
  readonly durationMs: number;
  /** What the peer served that was refused (quarantined in `dlq:<peer>`), by reason. */
  readonly rejected: Readonly<Partial<Record<RepairRejection, number>>>;
  /** Winning versions dated more than the max clock skew ahead: not fetched, not applied. */
  readonly heldBack: number;
  /** When the earliest of them comes within the bound (ms epoch); undefined when none. */
  readonly heldBackDueAt: number | undefined;
  /** The peer's Redis TIME minus this node's clock, ms; undefined when TIME was refused. */
  readonly clockOffsetMs: number | undefined;
  /** This node's clock when the repair started (the time an acknowledgement is recorded at). */
  readonly startedAt: number;
  /**
   * The repair proved that the peer holds every tombstone this node held at `startedAt` (or
   * something newer, or one below the peer's purge horizon, which it refuses), and that this node
   * holds every live record the peer held then: recorded in `gc:acked` (docs/PROTOCOL.md §6).
   */
  readonly acknowledged: boolean;
  /**
   * Live records of keys this node lacks, dated before its purge horizon, refused from a peer not
   * in sync since the horizon (`replication_resurrections_prevented_total`), each superseded by a
   * tombstone just above it so the peer converges to the delete.
   */
  readonly refusedOld: number;
  /**
   * Peer buckets refused unread for holding more than {@link MAX_BUCKET_FIELDS} fields (the first
   * 16; `rejected.oversized_bucket` counts them all): their keys are not compared this cycle.
   */
  readonly oversizedBuckets: readonly OversizedBucket[];
}

/** The peer a repair reads from. */
export interface RepairPeer {
  readonly peerId: string;
  readonly link: PeerLink;
  readonly redisPrefix: string;
  /** Bound on a fetched record's decompressed content (`store.max_item_bytes`). */
  readonly maxItemBytes: number;
}

/** What one repair may do. */
export interface RepairPlan {
  readonly dryRun: boolean;
  /** Changes fetched and applied at most (`max_items_per_cycle`). */
  readonly budget: number;
  /** Where, in key order, the budget starts (after the previous cycle's last change). */
  readonly resumeAfter: string | undefined;
  /** Versions dated further ahead of `now()` are held back (`store.max_clock_skew`). */
  readonly maxClockSkewMs?: number;
  /** This node's clock, ms epoch. @default Date.now */
  readonly now?: () => number;
}

/** Whether a peer has been in sync since this node's purge horizon (none: nothing was purged). */
export function inSyncSinceHorizon(gc: GcState | undefined, peerId: string): boolean {
  if (gc === undefined || gc.horizon <= 0) return true;
  return (gc.acked.get(peerId) ?? -Infinity) >= gc.horizon;
}

/**
 * Runs one repair: pulls from the peer what wins by LWW, within the budget (nothing when dry).
 * @throws {PeerUnavailableError} when the peer fails; changes already applied stay.
 */
export async function runRepair(
  store: LocalStore,
  peer: RepairPeer,
  plan: RepairPlan,
): Promise<RepairReport> {
  const { peerId, link, redisPrefix, maxItemBytes } = peer;
  const { dryRun, budget } = plan;
  const started = performance.now();
  let roundTrips = 0;
  /** Round trips to the peer, through its circuit breaker, reading a store of `layout`. */
  const peerCalls =
    (layout: PartitionLayout | undefined) =>
    <T>(
      operation: string,
      fn: (reader: MerkleReader, client: CommandSender) => Promise<T>,
    ): Promise<T> => {
      roundTrips += 1;
      return link.run(operation, (client) => {
        const sender: CommandSender = {
          sendCommand: (args, options) => client.sendCommand(args, options),
        };
        return fn(new MerkleReader(sender, redisPrefix, maxItemBytes, layout), sender);
      });
    };
  /** One pipelined round trip to the peer (a single instance's layout until the peer says not). */
  let onPeer = peerCalls(undefined);
  const now = plan.now ?? Date.now;
  const latest = now() + (plan.maxClockSkewMs ?? Infinity);
  const rejected: Partial<Record<RepairRejection, number>> = {};
  const letters: DeadLetter[] = [];
  const oversizedBuckets: OversizedBucket[] = [];
  let refusals = 0;
  const reject = (reason: RepairRejection, key: string, detail: string): void => {
    rejected[reason] = (rejected[reason] ?? 0) + 1;
    refusals += 1;
    if (letters.length < MAX_LETTERS) letters.push(repairLetter(reason, key, detail));
  };
  let heldBack = 0;
  let heldBackDueAt: number | undefined;
  const holdBack = (version: RecordVersion): void => {
    heldBack += 1;
    const due = version.updatedAt - (plan.maxClockSkewMs ?? 0);
    heldBackDueAt = heldBackDueAt === undefined ? due : Math.min(heldBackDueAt, due);
  };
  let clockOffsetMs: number | undefined;
  const report = (
    fields: Omit<
      RepairReport,
      | 'durationMs'
      | 'peerRoundTrips'
      | 'peerId'
      | 'dryRun'
      | 'rejected'
      | 'heldBack'
      | 'heldBackDueAt'
      | 'clockOffsetMs'
      | 'startedAt'
      | 'acknowledged'
      | 'refusedOld'
      | 'oversizedBuckets'
    >,
  ): RepairReport => ({
    peerId,
    dryRun,
    ...fields,
    rejected,
    heldBack,
    heldBackDueAt,
    clockOffsetMs,
    startedAt,
    acknowledged,
    refusedOld,
    oversizedBuckets,
    peerRoundTrips: roundTrips,
    durationMs: Math.round((performance.now() - started) * 10) / 10,
  });
  let acknowledged = false;
  let refusedOld = 0;
  const gcStore = store.tombstones;
  /** Records the acknowledgement when the repair earned it (never dry). */
  const acknowledge = async (earned: boolean): Promise<void> => {
    if (dryRun || !earned || gcStore === undefined) return;
    await gcStore.acknowledge(peerId, startedAt);
    acknowledged = true;
  };
  const finish = async (
    fields: Parameters<typeof report>[0],
    earned: boolean,
  ): Promise<RepairReport> => {
    if (!dryRun && letters.length > 0) await store.quarantine(peerId, letters);
    await acknowledge(earned && refusals === 0);
    return report(fields);
  };

  // Before this node's root is read: every tombstone it holds by then is in what is compared.
  const startedAt = now();
  const [localRoot, [peerRoot, peerDirty, peerTime, peerHorizon, dirtyComplete], gc] =
    await Promise.all([
      store.merkleRoot(),
      // With the layout record in the same pipeline: a partitioned peer is read again, as such.
      onPeer('merkle_root', async (reader, client) => {
        const [layout, single] = await Promise.all([
          MerkleReader.readLayout(client, redisPrefix),
          readRootAndDirty(reader, client),
        ]);
        if (layout === undefined) return single;
        onPeer = peerCalls(layout);
        return readRootAndDirty(
          new MerkleReader(client, redisPrefix, maxItemBytes, layout),
          client,
        );
      }),
      gcStore?.gcState(),
    ]);
  if (peerTime !== undefined) clockOffsetMs = Math.round(peerTime - (startedAt + now()) / 2);
  const margin = plan.maxClockSkewMs ?? 0;
  // The peer refuses tombstones of keys it lacks from before this (it purged them, or would).
  const peerRefusesBefore = peerHorizon > 0 ? peerHorizon - margin : -Infinity;
  const trusted = inSyncSinceHorizon(gc, peerId);
  const rootsEqual = localRoot === peerRoot;
  if (rootsEqual && peerDirty.length === 0) {
    await acknowledge(dirtyComplete);
    return report({
      inSync: true,
      divergentBranches: 0,
      divergentKeys: 0,
      changes: [],
      deferred: 0,
      fetched: 0,
      applied: 0,
    });
  }

  // Drill down: at each level keep the children whose hashes differ.
  let frontier = rootsEqual ? [] : [''];
  let divergentBranches = 0;
  for (let depth = 0; depth < DEPTH && frontier.length > 0; depth++) {
    const levels = await inChunks(frontier, async (paths) => {
      const [local, theirs] = await Promise.all([
        store.merkleChildrenMany(paths),
        onPeer('merkle_children', (r) => r.childrenMany(paths)),
      ]);
      return paths.flatMap((_, j) => divergentChildren(local[j] ?? [], theirs[j] ?? []));
    });
    frontier = levels.flat();
    divergentBranches += frontier.length;
  }
  const buckets = new Set(frontier);
  for (const bucket of peerDirty) {
    if (!buckets.has(bucket)) {
      buckets.add(bucket);
      divergentBranches += 1;
    }
  }

  // Compare the leaves of those buckets by the total order, the peer's side read in pages.
  const winners = new WinnerWindow(budget, plan.resumeAfter);
  let divergentKeys = 0;
  /**
   * Keys whose local tombstone or expiring record the peer lacks (or holds older): they may block
   * the acknowledgement.
   */
  const unacked: string[] = [];
  const pushed = (here: RecordVersion, peerHas: boolean): void => {
    // Only tombstones and expiring records are collected (docs/PROTOCOL.md §6).
    if (!here.deleted && here.expiresAt === undefined) return;
    if (!peerHas && here.updatedAt < peerRefusesBefore) return; // the peer purged it, or refuses it
    unacked.push(here.key);
  };
  const refuseBucket = (bucket: string, fields: number): void => {
    reject('oversized_bucket', `merkle:bucket:${bucket}`, `${fields} fields`);
    if (oversizedBuckets.length < MAX_REPORTED_BUCKETS) oversizedBuckets.push({ bucket, fields });
  };
  /** One leaf of the peer's, against this node's version of the key. */
  const compare = (scan: BucketScan, version: RecordVersion): void => {
    const here = scan.mine.get(version.key);
    scan.mine.delete(version.key);
    const order = here === undefined ? 1 : compareVersions(version, here);
    if (order !== 0) divergentKeys += 1;
    if (order < 0 && here !== undefined) pushed(here, true);
    if (order > 0 && version.updatedAt > latest) {
      holdBack(version);
    } else if (order > 0) {
      winners.add({
        key: version.key,
        local: here ?? null,
        peer: version,
        action: version.deleted ? 'delete' : 'put',
      });
    }
  };
  /** Takes one page of a bucket's scan; true when the bucket needs another page. */
  const takePage = (scan: BucketScan, page: BucketPage): boolean => {
    const fresh = (key: string): boolean => {
      if (scan.seen === undefined) return true;
      if (scan.seen.has(key)) return false; // HSCAN may return a field twice (during a rehash)
      scan.seen.add(key);
      return true;
    };
    if (page.tooLarge === true) {
      refuseBucket(scan.bucket, scan.size); // a page over its bound (issue 19): its keys unread
      return false;
    }
    for (const r of page.refused) if (fresh(r.key)) reject('bad_leaf', r.key, r.reason);
    for (const leaf of page.leaves) if (fresh(leaf.key)) compare(scan, leaf);
    if (page.cursor !== '0' && scan.seen === undefined) {
      // More pages come: remember this one's keys, so a field returned again is not counted twice.
      scan.seen = new Set([...page.refused.map((r) => r.key), ...page.leaves.map((l) => l.key)]);
    }
    if (scan.seen !== undefined && scan.seen.size > MAX_BUCKET_FIELDS) {
      refuseBucket(scan.bucket, scan.seen.size); // it grew past the bound while being read
      return false;
    }
    if (page.cursor !== '0') {
      scan.cursor = page.cursor;
      return true;
    }
    // Keys only we have: divergent, and left alone (the peer pulls them on its own cycle).
    divergentKeys += scan.mine.size;
    for (const here of scan.mine.values()) pushed(here, false);
    return false;
  };
  /** Buckets of more than one page, read after the rest, one at a time. */
  const longer: BucketScan[] = [];
  await inChunks([...buckets].sort(), async (chunk) => {
    const [local, sizes] = await Promise.all([
      store.merkleLeavesMany(chunk),
      onPeer('merkle_bucket_sizes', (r) => r.bucketSizes(chunk)),
    ]);
    const scans: { scan: BucketScan; size: number }[] = [];
    chunk.forEach((bucket, j) => {
      const scan: BucketScan = {
        bucket,
        mine: new Map((local[j] ?? []).map((v) => [v.key, v])),
        size: sizes[j] ?? 0,
        cursor: '0',
        seen: undefined,
      };
      const size = scan.size;
      if (size > MAX_BUCKET_FIELDS) refuseBucket(bucket, size);
      else if (size === 0) takePage(scan, { cursor: '0', leaves: [], refused: [], fields: 0 });
      else scans.push({ scan, size });
    });
    // First pages, pipelined in rounds of at most ROUND_FIELDS fields by size.
    for (const round of bySize(scans, ROUND_FIELDS)) {
      const pages = await onPeer('merkle_leaves', (r) =>
        r.scanBuckets(
          round.map((s) => ({ bucket: s.bucket, cursor: '0' })),
          PAGE_FIELDS,
          ROUND_BYTES,
        ),
      );
      round.forEach((scan, j) => {
        const page = pages[j]!;
        // Left for later by the round's budget: its first page is read on its own, with the rest.
        if (page.deferred === true || takePage(scan, page)) longer.push(scan);
      });
    }
  });
  for (const scan of longer) {
    let more = true;
    while (more) {
      const [page] = await onPeer('merkle_leaves', (r) =>
        r.scanBuckets([{ bucket: scan.bucket, cursor: scan.cursor }], PAGE_FIELDS),
      );
      more = takePage(scan, page!);
    }
  }
  const changes = winners.take();
  const deferred = winners.total - changes.length;
  // Roots may differ with no key differing while the peer's owner has not re-hashed: keys decide.
  const inSync = divergentKeys === 0;
  // The peer holds every tombstone this node held at the start, unless one that arrived before it
  // is missing there (tombstones that arrived since are for the next repair).
  let pushClean = dirtyComplete && !dryRun;
  if (pushClean && unacked.length > 0) {
    const arrivals = (await gcStore?.tombstoneArrivals(unacked)) ?? [];
    pushClean = unacked.every((_, i) => {
      const at = arrivals[i];
      return at !== undefined && at > startedAt;
    });
  }
  // ...and this node holds every live record the peer held: nothing left for later, nothing refused.
  const pullComplete = pushClean && deferred === 0;
  const summary = (fetched: number, applied: number) => ({
    inSync,
    divergentBranches,
    divergentKeys,
    changes,
    deferred,
    fetched,
    applied,
  });
  if (dryRun || changes.length === 0) return finish(summary(0, 0), pullComplete);

  let fetched = 0;
  let applied = 0;
  // One chunk at a time: at most FETCH_BUDGET_BYTES (+ one value) of bodies in memory.
  for (let i = 0; i < changes.length; i += CHUNK) {
    const keys = changes.slice(i, i + CHUNK).map((c) => c.key);
    const { records, rejected: refused } = await onPeer('fetch', (r) =>
      r.fetchVerified(keys, maxItemBytes + VALUE_OVERHEAD_BYTES, FETCH_BUDGET_BYTES),
    );
    for (const r of refused) reject(r.reason, r.key, `${r.bytes} bytes`);
    fetched += records.length;
    const take: StoredRecord[] = [];
    for (const record of records) {
      // The body's own clock counts, whatever its leaf said.
      if (record.updatedAt > latest) holdBack(record);
      else take.push(record);
    }
    if (take.length === 0) continue;
    // From a peer in sync since the purge horizon, an old record this node lacks is a late one,
    // not a purged delete: only such a peer can vouch for it.
    const source = { path: 'repair', peerId } as const;
    const results = await store.apply(
      take,
      trusted ? { acceptOld: true, source } : { horizonMarginMs: 0, source },
    );
    for (let j = 0; j < results.length; j++) {
      const outcome = results[j]!.outcome;
      if (outcome === 'applied') applied += 1;
      else if (outcome === 'purged') {
        // A purged delete, by all appearances: the peer is stale. Delete it there too, with a
        // tombstone just above its record (a later write of the key still beats it).
        refusedOld += 1;
        await gcStore?.supersede(take[j]!.key, take[j]!, peerId);
      }
    }
  }
  return finish(summary(fetched, applied), pullComplete && refusedOld === 0);
}

/**
 * The peer's root, and the buckets of the keys it changed since its owner last hashed them
 * (complete when at most {@link MAX_PEER_DIRTY} keys, else none). Dirty, then claimed, then the
 * root are read in one pipeline (on a partitioned peer: the marks of every partition, then the
 * root): a key settled in between is then either still listed or already in the root read.
 */
async function readRootAndDirty(
  reader: MerkleReader,
  client: CommandSender,
): Promise<[string, string[], number | undefined, number, boolean]> {
  // A sample over its bound (marks of keys near the 64 KiB key bound) is read as a burst.
  const sample = (key: string): Promise<unknown> =>
    client
      .sendCommand<unknown>(
        ['HRANDFIELD', key, String(MAX_PEER_DIRTY + 1), 'WITHVALUES'],
        AS_STRINGS,
      )
      .catch((error: unknown) => {
        if (error instanceof PeerReplyTooLargeError) return BURST;
        throw error;
      });
  const reads = reader.dirtyKeys().map(sample);
  // On one connection the pipeline keeps that order; across a cluster's shards only a wait does.
  if (reader.layout !== undefined) await Promise.all(reads);
  const [marks, root, time, horizon] = await Promise.all([
    Promise.all(reads),
    reader.root(),
    peerTimeMs(client),
    peerHorizonMs(client, reader.keys.gcHorizon),
  ]);
  const buckets = marks.includes(BURST) ? undefined : dirtyBuckets(...marks);
  return buckets === undefined
    ? [root, [], time, horizon, false]
    : [root, buckets, time, horizon, true];
}

/**
 * The buckets named by the marks of `HRANDFIELD … WITHVALUES` replies of `merkle:dirty` and
 * `merkle:claimed`; undefined when they hold more than {@link MAX_PEER_DIRTY} marks (a burst: the
 * peer's next refresh tells). A mark that names no bucket is skipped. Pure.
 */
export function dirtyBuckets(...replies: readonly unknown[]): string[] | undefined {
  const values = replies.flatMap(markValues);
  if (values.length > MAX_PEER_DIRTY) return undefined;
  const buckets = new Set<string>();
  // Each mark starts with the key's bucket id (docs/PROTOCOL.md §Merkle).
  for (const value of values) {
    const bucket = asString(value)?.slice(0, DEPTH);
    if (bucket !== undefined && isBucketPath(bucket)) buckets.add(bucket);
  }
  return [...buckets];
}

/** The peer's purge horizon (`gc:horizon`, ms); 0 when it has none or it cannot be read. */
async function peerHorizonMs(client: CommandSender, key: string): Promise<number> {
  try {
    const value = Number(asString(await client.sendCommand(['GET', key], AS_STRINGS)) ?? '0');
    return Number.isSafeInteger(value) && value > 0 ? value : 0;
  } catch {
    return 0;
  }
}

/** The peer's Redis `TIME` in ms; undefined when refused (an ACL without `+time`) or malformed. */
async function peerTimeMs(client: CommandSender): Promise<number | undefined> {
  try {
    const reply = await client.sendCommand<unknown[]>(['TIME'], AS_STRINGS);
    const seconds = Number(asString(reply[0]));
    const micros = Number(asString(reply[1]));
    if (!Number.isSafeInteger(seconds) || !Number.isSafeInteger(micros)) return undefined;
    return seconds * 1000 + micros / 1000;
  } catch {
    return undefined;
  }
}

/** The dead letter of something a repair refused: no stream id, the record's key and why. */
function repairLetter(reason: string, key: string, detail: string): DeadLetter {
  return {
    id: 'repair',
    reason,
    message: detail,
    fields: [Buffer.from('key'), Buffer.from(key, 'utf8')],
  };
}

/** The values of an `HRANDFIELD … WITHVALUES` reply: RESP3 `[[k, v], …]` or RESP2 `[k, v, …]`. */
function markValues(reply: unknown): unknown[] {
  if (!Array.isArray(reply)) return [];
  return reply.every(Array.isArray)
    ? reply.map((pair) => (pair as unknown[])[1])
    : reply.filter((_, i) => i % 2 === 1);
}

/**
 * The first `budget` winners in key order after `resumeAfter`, wrapping around (so a winner that
 * keeps failing to apply cannot starve the others), kept as they come: whatever the peer serves, it
 * holds at most 2 × budget + {@link CHUNK} of them, and counts the rest.
 */
export class WinnerWindow {
  /** Winners offered so far. */
  total = 0;
  #after: RepairChange[] = [];
  #before: RepairChange[] = [];

  constructor(
    private readonly budget: number,
    private readonly resumeAfter: string | undefined,
  ) {}

  add(change: RepairChange): void {
    this.total += 1;
    const side =
      this.resumeAfter !== undefined && !(change.key > this.resumeAfter)
        ? this.#before
        : this.#after;
    side.push(change);
    if (side.length > 2 * this.budget + CHUNK) side.splice(0, side.length, ...this.#first(side));
  }

  /** The winners within the budget: all of them in key order, or the window after `resumeAfter`. */
  take(): RepairChange[] {
    const after = this.#first(this.#after);
    if (this.total <= this.budget) return [...after, ...this.#first(this.#before)].sort(byKey);
    return [...after, ...this.#first(this.#before)].slice(0, this.budget);
  }

  #first(side: readonly RepairChange[]): RepairChange[] {
    return [...side].sort(byKey).slice(0, this.budget);
  }
}

function byKey(a: RepairChange, b: RepairChange): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/**
 * Groups scans, in order, into rounds whose sizes add up to at most `max` (a larger one alone): a
 * round's first pages are what one pipelined round trip brings at most.
 */
function bySize(scans: readonly { scan: BucketScan; size: number }[], max: number): BucketScan[][] {
  const rounds: BucketScan[][] = [];
  let round: BucketScan[] = [];
  let total = 0;
  for (const { scan, size } of scans) {
    if (round.length > 0 && total + size > max) {
      rounds.push(round);
      round = [];
      total = 0;
    }
    round.push(scan);
    total += size;
  }
  if (round.length > 0) rounds.push(round);
  return rounds;
}

/** Runs `fn` over chunks of {@link CHUNK} items, {@link PARALLEL} at a time; results in order. */
async function inChunks<T, R>(items: readonly T[], fn: (chunk: T[]) => Promise<R>): Promise<R[]> {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) chunks.push(items.slice(i, i + CHUNK));
  const results: R[] = new Array<R>(chunks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < chunks.length) {
      const i = next++;
      results[i] = await fn(chunks[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, chunks.length) }, worker));
  return results;
}

/** Paths of children whose hashes differ (a child missing on one side counts as all zeros). */
export function divergentChildren(
  local: readonly MerkleNode[],
  peer: readonly MerkleNode[],
): string[] {
  const mine = new Map(local.map((n) => [n.path, n.hash]));
  const out: string[] = [];
  const seen = new Set<string>();
  for (const node of peer) {
    seen.add(node.path);
    if (mine.get(node.path) !== node.hash) out.push(node.path);
  }
  for (const node of local) if (!seen.has(node.path)) out.push(node.path);
  return out.sort();
}
