/**
 * Brings a store's Merkle tree up to date, lazily and incrementally: for each key written since the
 * last computation (the dirty hash), its bucket's sum moves by (new leaf − old leaf), then the
 * changed buckets' ancestors are recomputed. A few round trips per batch of keys, never a SCAN, and
 * the cost follows the writes, not the size of the store or of a bucket.
 * See docs/PROTOCOL.md §Merkle refresh.
 */
import { hash as digest, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DEPTH,
  FANOUT,
  HashSum,
  isBucketPath,
  leafHash,
  nodeField,
  parseVersionTuple,
  ZERO_HASH,
} from './merkle-hash.js';
import type { StoreKeys } from './keys.js';
import { SCRIPTS } from './lua-script.js';
import { AS_STRINGS, asString, type CommandSender } from './redis-io.js';

/** Node hashes read per HMGET. */
const READ_PAGE = 4096;

/** Commits refused in a row (another process committed meanwhile) before a refresh gives up. */
const MAX_REFUSED_COMMITS = 8;

/** Tuning of {@link MerkleRefresher}. */
export interface MerkleRefreshOptions {
  /** Dirty keys claimed per round. @default 8192 */
  readonly claimBatch?: number;
  /** Expiry of the cross-process refresh lock (a crashed holder frees it after this). @default 5_000 */
  readonly lockTtlMs?: number;
  /** How long to wait for another process's refresh before proceeding anyway. @default 30_000 */
  readonly lockWaitMs?: number;
  /**
   * The subtree this store holds (a partition's path, docs/PROTOCOL.md §9): nodes are computed
   * and cached at and below it only, the levels above being the whole store's business.
   * @default '' (the whole tree)
   */
  readonly subtree?: string;
}

/** What one refresh did. */
export interface RefreshStats {
  /** Dirty keys settled. */
  readonly keys: number;
  /** Buckets recomputed. */
  readonly buckets: number;
  /** Tree nodes (buckets, interior nodes and root) written. */
  readonly nodes: number;
  /** Claim/commit rounds (refused commits included). */
  readonly rounds: number;
  readonly elapsedMs: number;
  /**
   * True when the tree now covers every write made before the refresh began; false when a time
   * budget or the lock cut it short (the keys it did not reach stay dirty, for the next one).
   */
  readonly complete: boolean;
}

/** Options of one {@link MerkleRefresher.refresh}. */
export interface RefreshRunOptions {
  /**
   * Start no new round once this long has passed (one round of up to `claimBatch` keys always
   * runs). For background upkeep that must not crowd out other work; unset: settle everything.
   */
  readonly budgetMs?: number;
}

/** Recomputes the dirty part of one store's Merkle tree. */
export class MerkleRefresher {
  private readonly claimBatch: number;
  private readonly lockTtlMs: number;
  private readonly lockWaitMs: number;
  private readonly subtree: string;
  /** Node hashes as of a generation: steady-state refreshes read no sibling hashes at all. */
  private cache: TreeCache | undefined;
  private clientId: string | undefined;

  constructor(
    private readonly client: CommandSender,
    private readonly keys: StoreKeys,
    options: MerkleRefreshOptions = {},
  ) {
    this.claimBatch = options.claimBatch ?? 8192;
    this.lockTtlMs = options.lockTtlMs ?? 5_000;
    // Long enough for a dead holder's lock to expire, so a crash never stalls refreshes for long.
    this.lockWaitMs = options.lockWaitMs ?? this.lockTtlMs + 1_000;
    this.subtree = options.subtree ?? '';
  }

  /**
   * Settles every key dirty when called (and any written meanwhile, while a round still finds a
   * full batch), recomputing their buckets and ancestors; with a `budgetMs`, as many as fit in it.
   */
  async refresh(options: RefreshRunOptions = {}): Promise<RefreshStats> {
    const started = performance.now();
    // A claim left by a refresher that died counts as pending too.
    const pending = await this.client.sendCommand(
      ['EXISTS', this.keys.dirty, this.keys.claimed],
      AS_STRINGS,
    );
    if (Number(pending) === 0) {
      return { keys: 0, buckets: 0, nodes: 0, rounds: 0, elapsedMs: 0, complete: true };
    }

    const token = await this.lock();
    let keys = 0;
    let buckets = 0;
    let nodes = 0;
    let rounds = 0;
    let refused = 0;
    let complete = false;
    try {
      for (;;) {
        // Renew the lock before each round: it stays short-lived, so a holder killed mid-refresh
        // blocks others for at most its TTL.
        if (token !== undefined && rounds > 0) {
          const held = await SCRIPTS.extend.run(
            this.client,
            [this.keys.lock],
            [token, String(this.lockTtlMs)],
          );
          if (Number(held) !== 1) break;
        }
        const round = await this.round();
        rounds += 1;
        if (!round.committed) {
          // Another process committed in between (it ignored or lost our lock): redo the round
          // from its state, a bounded number of times.
          if (++refused > MAX_REFUSED_COMMITS) break;
          continue;
        }
        keys += round.keys;
        buckets += round.buckets;
        nodes += round.nodes;
        // A partial batch took every key dirty at the claim: the tree now covers every write
        // made before this refresh began.
        if (round.keys < this.claimBatch) {
          complete = true;
          break;
        }
        if (options.budgetMs !== undefined && performance.now() - started >= options.budgetMs) {
          break;
        }
      }
    } finally {
      if (token !== undefined) await SCRIPTS.unlock.run(this.client, [this.keys.lock], [token]);
    }
    return { keys, buckets, nodes, rounds, elapsedMs: performance.now() - started, complete };
  }

  /**
   * Takes the lock, waiting up to `lockWaitMs` for another holder; undefined if it never came.
   * A token names its holder's Redis connection (`CLIENT ID`), so a waiter that finds the holder's
   * connection gone (the process died) takes the lock over at once instead of waiting for expiry.
   */
  private async lock(): Promise<string | undefined> {
    this.clientId ??= await this.client
      .sendCommand(['CLIENT', 'ID'], AS_STRINGS)
      .then((id) => asString(id) ?? '?')
      .catch(() => '?');
    const token = `${this.clientId}:${randomUUID()}`;
    const deadline = Date.now() + this.lockWaitMs;
    let delay = 5;
    for (;;) {
      const ok = await this.client.sendCommand(
        ['SET', this.keys.lock, token, 'NX', 'PX', String(this.lockTtlMs)],
        AS_STRINGS,
      );
      if (ok !== null) return token;
      if (await this.takeOverIfHolderGone(token)) return token;
      if (Date.now() >= deadline) return undefined;
      await sleep(delay);
      delay = Math.min(delay * 2, 100);
    }
  }

  /** True when the lock's holder has no live connection and we took the lock in its place. */
  private async takeOverIfHolderGone(token: string): Promise<boolean> {
    const held = asString(await this.client.sendCommand(['GET', this.keys.lock], AS_STRINGS));
    if (held === undefined) return false;
    const holder = held.split(':')[0] ?? '';
    if (!/^\d+$/.test(holder)) return false;
    let clients: string | undefined;
    try {
      clients = asString(
        await this.client.sendCommand(['CLIENT', 'LIST', 'ID', holder], AS_STRINGS),
      );
    } catch {
      return false; // no permission to look: wait for the expiry instead
    }
    if (clients === undefined || clients.trim() !== '') return false;
    const taken = await SCRIPTS.steal.run(
      this.client,
      [this.keys.lock],
      [held, token, String(this.lockTtlMs)],
    );
    return Number(taken) === 1;
  }

  /**
   * One claim → compute → commit round: the claimed keys' leaf changes are added to their buckets'
   * sums, then their ancestors are recomputed. `keys` is 0 when nothing was dirty; `committed` is
   * false when another process committed in between (nothing was written; the round is redone).
   */
  private async round(): Promise<{
    keys: number;
    buckets: number;
    nodes: number;
    committed: boolean;
  }> {
    const [claimed, before, after] = await SCRIPTS.claim.run<[unknown[], unknown, unknown]>(
      this.client,
      [this.keys.dirty, this.keys.claimed, this.keys.gen],
      [String(this.claimBatch), this.keys.bucket(''), String(DEPTH)],
    );
    if (claimed.length === 0) return { keys: 0, buckets: 0, nodes: 0, committed: true };
    const cache = (this.cache ??= new TreeCache(this.subtree));
    const top = cache.top;
    // Another process committed since this one cached node hashes: forget them.
    if (asString(before) !== cache.generation) cache.clear();

    // Per bucket, (current leaf − counted leaf) summed over its claimed keys.
    const deltas = new Map<number, HashSum>();
    for (let i = 0; i + 3 < claimed.length; i += 4) {
      const key = asString(claimed[i])!;
      const bucket = asString(claimed[i + 1])!;
      const counted = asString(claimed[i + 2]) ?? '';
      const current = asString(claimed[i + 3]) ?? '';
      // A mark that names no bucket (a foreign writer's), or one outside the subtree, counts in none.
      if (!isBucketPath(bucket) || !bucket.startsWith(this.subtree)) continue;
      const index = parseInt(bucket, 16) - cache.base[DEPTH]!;
      let delta = deltas.get(index);
      if (delta === undefined) deltas.set(index, (delta = new HashSum()));
      if (counted === current) continue;
      const added = tupleLeaf(key, current);
      const removed = tupleLeaf(key, counted);
      if (added !== undefined) delta.add(added, 1);
      if (removed !== undefined) delta.add(removed, -1);
    }
    const claimedKeys = claimed.length / 4;

    // The nodes to recompute, level by level from the buckets up (each level's in ascending order).
    const stamp = cache.nextStamp();
    const recompute: number[][] = new Array<number[]>(DEPTH + 1);
    recompute[DEPTH] = [...deltas.keys()].sort((a, b) => a - b);
    for (let depth = DEPTH - 1; depth >= top; depth--) {
      const parents: number[] = [];
      for (const child of recompute[depth + 1]!) {
        const parent = child >>> 4;
        if (parents[parents.length - 1] !== parent) parents.push(parent);
      }
      recompute[depth] = parents;
    }
    for (let depth = top; depth <= DEPTH; depth++) {
      for (const index of recompute[depth]!) cache.stamps[depth]![index] = stamp;
    }
    // What the recomputation needs and the cache lacks: the claimed buckets' own sums, and the
    // children of recomputed nodes that are not recomputed themselves (node i: readDepths[i] and
    // readIndices[i]).
    const readDepths: number[] = [];
    const readIndices: number[] = [];
    for (const bucket of recompute[DEPTH]) {
      if (cache.valid[DEPTH]![bucket] === 0) {
        readDepths.push(DEPTH);
        readIndices.push(bucket);
      }
    }
    for (let depth = top; depth < DEPTH; depth++) {
      const stamps = cache.stamps[depth + 1]!;
      const valid = cache.valid[depth + 1]!;
      for (const parent of recompute[depth]!) {
        for (let child = parent * FANOUT; child < (parent + 1) * FANOUT; child++) {
          if (stamps[child] !== stamp && valid[child] === 0) {
            readDepths.push(depth + 1);
            readIndices.push(child);
          }
        }
      }
    }
    // In pages: with nothing cached, a round over a large backlog reads most of the 69,905 nodes,
    // and one reply of them all would weigh tens of MB in this process.
    for (let start = 0; start < readDepths.length; start += READ_PAGE) {
      const end = Math.min(readDepths.length, start + READ_PAGE);
      const fields: string[] = [];
      for (let i = start; i < end; i++) fields.push(cache.field(readDepths[i]!, readIndices[i]!));
      const values = await this.client.sendCommand<unknown[]>(
        ['HMGET', this.keys.nodes, ...fields],
        AS_STRINGS,
      );
      for (let i = start; i < end; i++) {
        cache.set(readDepths[i]!, readIndices[i]!, asString(values[i - start]));
      }
    }

    // Recomputed, in place in the cache (forgotten whole if the commit is refused).
    const nodeArgs: string[] = [];
    const level = cache.levels[DEPTH]!;
    for (const bucket of recompute[DEPTH]) {
      const sum = HashSum.fromBytes(level, 32 * bucket).addSum(deltas.get(bucket)!);
      sum.writeBytes(level, 32 * bucket);
      cache.valid[DEPTH]![bucket] = 1;
      nodeArgs.push(
        cache.field(DEPTH, bucket),
        level.toString('hex', 32 * bucket, 32 * bucket + 32),
      );
    }
    for (let depth = DEPTH - 1; depth >= top; depth--) {
      for (const parent of recompute[depth]!) {
        nodeArgs.push(cache.field(depth, parent), cache.recompute(depth, parent));
      }
    }

    const [next, committed] = await SCRIPTS.commit.run<[unknown, unknown]>(
      this.client,
      [this.keys.nodes, this.keys.claimed, this.keys.gen],
      [asString(after) ?? '', ...nodeArgs],
    );
    if (Number(committed) !== 1) {
      cache.clear();
      return { keys: claimedKeys, buckets: 0, nodes: 0, committed: false };
    }
    cache.generation = asString(next);
    return {
      keys: claimedKeys,
      buckets: deltas.size,
      nodes: nodeArgs.length / 2,
      committed: true,
    };
  }
}

/**
 * A refresher's copy of the tree's node hashes as of {@link generation}: 32 bytes per node, level
 * by level (level d holds 16^d nodes; node i's children are nodes 16i…16i+15 of the next level,
 * side by side), so an interior hash is the sha256 of one slice, and a lookup is an index.
 * About 2.3 MB for the 69,905 nodes of a depth-4 tree. Scoped to a subtree (a partition), it
 * holds only the levels from the subtree's root down, indexed from the subtree's first node
 * ({@link base}): 1/16 or 1/256 of that.
 */
class TreeCache {
  /** The generation these hashes are valid at; undefined when nothing is cached. */
  generation: string | undefined;
  readonly levels: Buffer[] = [];
  /** 1 where the level's slot holds that node's hash. */
  readonly valid: Uint8Array[] = [];
  /** The round that last chose the node for recomputation. */
  readonly stamps: Uint32Array[] = [];
  readonly #fields: (string | undefined)[][] = [];
  /** The depth of the subtree's root: levels above it are not held (their arrays are empty). */
  readonly top: number;
  /** Per level, the tree index of the subtree's first node there (local index 0). */
  readonly base: number[] = [];
  #stamp = 0;

  constructor(subtree = '') {
    this.top = subtree.length;
    const first = subtree === '' ? 0 : parseInt(subtree, 16);
    for (let depth = 0; depth <= DEPTH; depth++) {
      const width = depth < this.top ? 0 : FANOUT ** (depth - this.top);
      this.base.push(depth < this.top ? 0 : first * FANOUT ** (depth - this.top));
      this.levels.push(Buffer.alloc(32 * width));
      this.valid.push(new Uint8Array(width));
      this.stamps.push(new Uint32Array(width));
      this.#fields.push(new Array<string | undefined>(width));
    }
  }

  clear(): void {
    for (const valid of this.valid) valid.fill(0);
    this.generation = undefined;
  }

  nextStamp(): number {
    return ++this.#stamp;
  }

  /** The `merkle:nodes` field of node `index` (local) of level `depth`. */
  field(depth: number, index: number): string {
    const fields = this.#fields[depth]!;
    return (fields[index] ??= nodeField(
      depth === 0 ? '' : (this.base[depth]! + index).toString(16).padStart(depth, '0'),
    ));
  }

  /** Caches a node's hash as read (64 hex digits; absent or malformed: an empty subtree). */
  set(depth: number, index: number, hex: string | undefined): void {
    const level = this.levels[depth]!;
    if (hex !== undefined && HEX64.test(hex)) level.write(hex, 32 * index, 32, 'hex');
    else level.fill(0, 32 * index, 32 * index + 32);
    this.valid[depth]![index] = 1;
  }

  /** Recomputes interior node `index` of level `depth` from its cached children; its hex hash. */
  recompute(depth: number, index: number): string {
    const children = this.levels[depth + 1]!.subarray(512 * index, 512 * index + 512);
    const level = this.levels[depth]!;
    this.valid[depth]![index] = 1;
    if (children.equals(ZERO_CHILDREN)) {
      level.fill(0, 32 * index, 32 * index + 32);
      return ZERO_HASH;
    }
    const hash = digest('sha256', children, 'buffer');
    hash.copy(level, 32 * index);
    return hash.toString('hex');
  }
}

const HEX64 = /^[0-9a-f]{64}$/;
const ZERO_CHILDREN = Buffer.alloc(32 * FANOUT);

/** The leaf hash of a bucket entry's tuple; undefined for no record. */
function tupleLeaf(key: string, tuple: string): Buffer | undefined {
  if (tuple === '') return undefined;
  const version = parseVersionTuple(key, tuple);
  // A malformed entry is not a leaf (merkleLeaves skips it too).
  return version === undefined ? undefined : leafHash(version);
}
