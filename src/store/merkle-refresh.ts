/**
 * Brings a store's Merkle tree up to date, lazily and incrementally: only the buckets written since
 * the last computation (the dirty set) and their ancestors are recomputed, in a handful of round
 * trips per batch of buckets, never a SCAN. See docs/PROTOCOL.md §Merkle refresh.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  bucketHash,
  childPaths,
  DEPTH,
  interiorHash,
  nodeField,
  ZERO_HASH,
} from './merkle-hash.js';
import { parseBucketEntries } from './merkle-reader.js';
import type { StoreKeys } from './keys.js';
import { SCRIPTS } from './lua-script.js';
import { AS_STRINGS, asString, type CommandSender } from './redis-io.js';

/** Tuning of {@link MerkleRefresher}. */
export interface MerkleRefreshOptions {
  /** Buckets claimed per round. @default 8192 */
  readonly claimBatch?: number;
  /** Expiry of the cross-process refresh lock (a crashed holder frees it after this). @default 5_000 */
  readonly lockTtlMs?: number;
  /** How long to wait for another process's refresh before proceeding anyway. @default 30_000 */
  readonly lockWaitMs?: number;
}

/** What one refresh did. */
export interface RefreshStats {
  /** Buckets recomputed. */
  readonly buckets: number;
  /** Tree nodes (buckets, interior nodes and root) written. */
  readonly nodes: number;
  /** Claim/commit rounds. */
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

  /** Recomputes every dirty bucket and its ancestors, looping until nothing is dirty. */
  async refresh(): Promise<RefreshStats> {
    const started = performance.now();
    const pending = await this.client.sendCommand(
      ['EXISTS', this.keys.dirty, this.keys.claimed],
      AS_STRINGS,
    );
    if (Number(pending) === 0) return { buckets: 0, nodes: 0, rounds: 0, elapsedMs: 0 };

    const token = await this.lock();
    let buckets = 0;
    let nodes = 0;
    let rounds = 0;
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
        const round = await this.round(token !== undefined);
        if (round.buckets === 0) break;
        buckets += round.buckets;
        nodes += round.nodes;
        rounds += 1;
      }
    } finally {
      if (token !== undefined) await SCRIPTS.unlock.run(this.client, [this.keys.lock], [token]);
    }
    return { buckets, nodes, rounds, elapsedMs: performance.now() - started };
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

  /** One claim → compute → commit round; 0 buckets when nothing was dirty. */
  private async round(locked: boolean): Promise<{ buckets: number; nodes: number }> {
    const [claimed, gen] = await SCRIPTS.claim.run<[unknown[], unknown]>(
      this.client,
      [this.keys.dirty, this.keys.claimed, this.keys.gen],
      [String(this.claimBatch), this.keys.bucket('')],
    );
    if (claimed.length === 0) return { buckets: 0, nodes: 0 };
    const generation = asString(gen) ?? '0';
    // Another process committed since this one cached node hashes: forget them.
    if (generation !== this.cacheGeneration) this.cache.clear();

    const computed = new Map<string, string>();
    let level = new Set<string>();
    for (let i = 0; i + 1 < claimed.length; i += 2) {
      const bucket = asString(claimed[i])!;
      computed.set(bucket, bucketHash(parseBucketEntries(claimed[i + 1])));
      level.add(bucket);
    }
    const bucketCount = level.size;

    // Every ancestor of a claimed bucket, deepest level first; the children they need that were
    // neither recomputed nor cached are read in one HMGET.
    const ancestorsByDepth: string[][] = [];
    for (let depth = DEPTH - 1; depth >= 0; depth--) {
      const parents = new Set<string>();
      for (const path of level) parents.add(path.slice(0, depth));
      ancestorsByDepth.push([...parents]);
      level = parents;
    }
    const toRead: string[] = [];
    const below = new Set(computed.keys());
    for (const parents of ancestorsByDepth) {
      for (const parent of parents) {
        for (const child of childPaths(parent)) {
          if (!below.has(child) && !this.cache.has(child)) toRead.push(child);
        }
      }
      for (const parent of parents) below.add(parent);
    }
    if (toRead.length > 0) {
      const values = await this.client.sendCommand<unknown[]>(
        ['HMGET', this.keys.nodes, ...toRead],
        AS_STRINGS,
      );
      toRead.forEach((path, i) => this.cache.set(path, asString(values[i]) ?? ZERO_HASH));
    }
    for (const parents of ancestorsByDepth) {
      for (const parent of parents) {
        const children = childPaths(parent).map((c) => computed.get(c) ?? this.cache.get(c));
        computed.set(parent, interiorHash(children));
      }
    }

    const args: string[] = [generation];
    for (const [path, hash] of computed) args.push(nodeField(path), hash);
    const [next, unchanged] = await SCRIPTS.commit.run<[unknown, unknown]>(
      this.client,
      [this.keys.nodes, this.keys.claimed, this.keys.gen],
      args,
    );
    if (locked && Number(unchanged) === 1) {
      for (const [path, hash] of computed) this.cache.set(path, hash);
      this.cacheGeneration = asString(next);
    } else {
      this.cache.clear();
      this.cacheGeneration = undefined;
    }
    return { buckets: bucketCount, nodes: computed.size };
  }
}
