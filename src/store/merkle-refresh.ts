/**
 * Brings a store's Merkle tree up to date, lazily and incrementally: for each key written since the
 * last computation (the dirty hash), its bucket's sum moves by (new leaf − old leaf), then the
 * changed buckets' ancestors are recomputed. A few round trips per batch of keys, never a SCAN, and
 * the cost follows the writes, not the size of the store or of a bucket.
 * See docs/PROTOCOL.md §Merkle refresh.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  childPaths,
  DEPTH,
  HashSum,
  interiorHash,
  leafHash,
  nodeField,
  parseVersionTuple,
  ZERO_HASH,
} from './merkle-hash.js';
import type { StoreKeys } from './keys.js';
import { SCRIPTS } from './lua-script.js';
import { AS_STRINGS, asString, type CommandSender } from './redis-io.js';

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
}

/** Recomputes the dirty part of one store's Merkle tree. */
export class MerkleRefresher {
  private readonly claimBatch: number;
  private readonly lockTtlMs: number;
  private readonly lockWaitMs: number;
  /**
   * Node hashes (path → hex, zeros included) as of generation {@link cacheGeneration}: valid while
   * no other process has committed, so steady-state refreshes read no sibling hashes at all.
   */
  private readonly cache = new Map<string, string>();
  private cacheGeneration: string | undefined;
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
  }

  /**
   * Settles every key dirty when called (and any written meanwhile, while a round still finds a
   * full batch), recomputing their buckets and ancestors.
   */
  async refresh(): Promise<RefreshStats> {
    const started = performance.now();
    // A claim left by a refresher that died counts as pending too.
    const pending = await this.client.sendCommand(
      ['EXISTS', this.keys.dirty, this.keys.claimed],
      AS_STRINGS,
    );
    if (Number(pending) === 0) return { keys: 0, buckets: 0, nodes: 0, rounds: 0, elapsedMs: 0 };

    const token = await this.lock();
    let keys = 0;
    let buckets = 0;
    let nodes = 0;
    let rounds = 0;
    let refused = 0;
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
        if (round.keys < this.claimBatch) break;
      }
    } finally {
      if (token !== undefined) await SCRIPTS.unlock.run(this.client, [this.keys.lock], [token]);
    }
    return { keys, buckets, nodes, rounds, elapsedMs: performance.now() - started };
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
    // Another process committed since this one cached node hashes: forget them.
    if (asString(before) !== this.cacheGeneration) this.cache.clear();

    // Per bucket, (current leaf − counted leaf) summed over its claimed keys.
    const deltas = new Map<string, HashSum>();
    for (let i = 0; i + 3 < claimed.length; i += 4) {
      const key = asString(claimed[i])!;
      const bucket = asString(claimed[i + 1])!;
      const counted = asString(claimed[i + 2]) ?? '';
      const current = asString(claimed[i + 3]) ?? '';
      let delta = deltas.get(bucket);
      if (delta === undefined) deltas.set(bucket, (delta = new HashSum()));
      if (counted === current) continue;
      const added = tupleLeaf(key, current);
      const removed = tupleLeaf(key, counted);
      if (added !== undefined) delta.add(added, 1);
      if (removed !== undefined) delta.add(removed, -1);
    }
    const claimedKeys = claimed.length / 4;

    // Every ancestor of a claimed bucket, deepest level first. The claimed buckets' own sums and
    // the ancestors' children that are neither recomputed nor cached are read in one HMGET.
    const ancestorsByDepth: string[][] = [];
    let level = new Set(deltas.keys());
    for (let depth = DEPTH - 1; depth >= 0; depth--) {
      const parents = new Set<string>();
      for (const path of level) parents.add(path.slice(0, depth));
      ancestorsByDepth.push([...parents]);
      level = parents;
    }
    const toRead = [...deltas.keys()].filter((bucket) => !this.cache.has(bucket));
    const below = new Set(deltas.keys());
    for (const parents of ancestorsByDepth) {
      for (const parent of parents) {
        for (const child of childPaths(parent)) {
          if (!below.has(child) && !this.cache.has(child)) toRead.push(child);
        }
      }
      for (const parent of parents) below.add(parent);
    }
    // Hashes read this round; everything else needed is in the cache.
    const known = new Map<string, string>();
    if (toRead.length > 0) {
      const values = await this.client.sendCommand<unknown[]>(
        ['HMGET', this.keys.nodes, ...toRead],
        AS_STRINGS,
      );
      toRead.forEach((path, i) => known.set(path, asString(values[i]) ?? ZERO_HASH));
    }

    const computed = new Map<string, string>();
    for (const [bucket, delta] of deltas) {
      const stored = new HashSum(known.get(bucket) ?? this.cache.get(bucket) ?? ZERO_HASH);
      computed.set(bucket, stored.addSum(delta).hex());
    }
    for (const parents of ancestorsByDepth) {
      for (const parent of parents) {
        const children = childPaths(parent).map(
          (c) => computed.get(c) ?? known.get(c) ?? this.cache.get(c),
        );
        computed.set(parent, interiorHash(children));
      }
    }

    const nodeArgs: string[] = [];
    for (const [path, hash] of computed) nodeArgs.push(nodeField(path), hash);
    const [next, committed] = await SCRIPTS.commit.run<[unknown, unknown]>(
      this.client,
      [this.keys.nodes, this.keys.claimed, this.keys.gen],
      [asString(after) ?? '', ...nodeArgs],
    );
    if (Number(committed) !== 1) {
      this.cache.clear();
      this.cacheGeneration = undefined;
      return { keys: claimedKeys, buckets: 0, nodes: 0, committed: false };
    }
    for (const [path, hash] of known) this.cache.set(path, hash);
    for (const [path, hash] of computed) this.cache.set(path, hash);
    this.cacheGeneration = asString(next);
    return { keys: claimedKeys, buckets: deltas.size, nodes: computed.size, committed: true };
  }
}

/** The leaf hash of a bucket entry's tuple; undefined for no record. */
function tupleLeaf(key: string, tuple: string): Buffer | undefined {
  if (tuple === '') return undefined;
  const version = parseVersionTuple(key, tuple);
  // A malformed entry is not a leaf (merkleLeaves skips it too).
  return version === undefined ? undefined : leafHash(version);
}
