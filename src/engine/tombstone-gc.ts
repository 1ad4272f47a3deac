/**
 * Acknowledged tombstone collection (SPEC §8 "Deletes stay deleted", docs/PROTOCOL.md §6): a
 * tombstone is purged only once it is older than `store.tombstone_ttl` and every configured peer
 * is known to hold it. A peer is known to hold every tombstone this node held at time t when a
 * repair with it that started at t ended acknowledged (`gc:acked`); the purge cutoff is the oldest
 * of those times, and never later than now − TTL.
 */
import type { TombstoneHealth, TombstoneHolder } from '../observability/health.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { RepeatingWarning } from '../observability/repeating-warning.js';
import type { HeldTombstones, TombstoneStore } from './local-store.js';

/** What one purge may remove. */
export interface PurgePlan {
  /** Tombstones that arrived before this may go (−Infinity: none may). */
  readonly cutoff: number;
  /** now − TTL: tombstones that arrived before it are past their minimum retention. */
  readonly ttlCutoff: number;
  /** Peers that have not acknowledged since `ttlCutoff`: they hold tombstones past it back. */
  readonly holders: readonly TombstoneHolder[];
}

/**
 * The cutoff of a purge: `min(now − ttl, acked[p] for every configured peer p)`; a configured
 * peer never acknowledged allows no purge at all. Peers not configured do not count.
 */
export function purgePlan(
  now: number,
  ttlMs: number,
  peers: readonly string[],
  acked: ReadonlyMap<string, number>,
): PurgePlan {
  const ttlCutoff = now - ttlMs;
  let cutoff = ttlCutoff;
  const holders: TombstoneHolder[] = [];
  for (const peer of peers) {
    const at = acked.get(peer);
    cutoff = Math.min(cutoff, at ?? -Infinity);
    if (at === undefined || at < ttlCutoff) {
      holders.push({ peer_id: peer, acknowledged_at_ms: at ?? null });
    }
  }
  return { cutoff, ttlCutoff, holders };
}

/** What one collection did. */
export interface CollectResult extends PurgePlan {
  readonly purged: number;
  readonly held: HeldTombstones;
  /**
   * Per holder, the tombstones past the TTL it has not acknowledged (arrived since its last
   * acknowledgement): what it alone would keep. 0 for a holder with nothing to purge yet.
   */
  readonly heldBy: ReadonlyMap<string, number>;
  /** The purge horizon after it (0: nothing ever purged). */
  readonly horizon: number;
  readonly acked: ReadonlyMap<string, number>;
}

/** One acknowledged purge of `store`: plan, purge, and what is held back. */
export async function collectTombstones(
  store: TombstoneStore,
  peers: readonly string[],
  now: number,
  ttlMs: number,
): Promise<CollectResult> {
  const gc = await store.gcState();
  const plan = purgePlan(now, ttlMs, peers, gc.acked);
  const purged =
    plan.cutoff > 0 && Number.isFinite(plan.cutoff)
      ? (await store.purgeTombstones(now, plan.cutoff)).purged
      : 0;
  const held =
    plan.holders.length > 0
      ? await store.heldTombstones(plan.cutoff, plan.ttlCutoff)
      : { count: 0, bytes: 0 };
  const heldBy = new Map<string, number>();
  for (const holder of plan.holders) {
    const from = holder.acknowledged_at_ms ?? -Infinity;
    // The earliest holder keeps all of `held`; the others only what arrived since their own ack.
    heldBy.set(
      holder.peer_id,
      held.count === 0
        ? 0
        : from <= plan.cutoff
          ? held.count
          : await store.countTombstones(from, plan.ttlCutoff),
    );
  }
  const horizon = purged > 0 ? Math.max(gc.horizon, plan.cutoff) : gc.horizon;
  return { ...plan, purged, held, heldBy, horizon, acked: gc.acked };
}

/** What the engine's collector needs. */
export interface TombstoneGcContext {
  readonly store: TombstoneStore;
  /** The configured peers' ids, now. */
  readonly peers: () => readonly string[];
  readonly ttlMs: number;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** @default Date.now */
  readonly clock?: () => number;
}

/** The engine's tombstone collector: runs a purge on request and reports it (metrics, health). */
export class TombstoneGc {
  readonly #ctx: TombstoneGcContext;
  readonly #held: RepeatingWarning;
  #running: Promise<CollectResult> | undefined;
  #last: { at: number; result: CollectResult } | undefined;

  constructor(ctx: TombstoneGcContext) {
    this.#ctx = ctx;
    this.#held = new RepeatingWarning(
      ctx.logger,
      'tombstones past store.tombstone_ttl are kept: a peer has not acknowledged them',
      { intervalMs: 10 * 60_000, recovered: 'every peer acknowledged the tombstones again' },
    );
  }

  /** Purges what every configured peer acknowledged (one purge at a time; a caller shares it). */
  purge(): Promise<CollectResult> {
    this.#running ??= this.#purge().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #purge(): Promise<CollectResult> {
    const ctx = this.#ctx;
    const now = (ctx.clock ?? Date.now)();
    const peers = ctx.peers();
    const result = await collectTombstones(ctx.store, peers, now, ctx.ttlMs);
    this.#last = { at: now, result };
    const m = ctx.metrics;
    m.tombstonesPurgedTotal.inc(result.purged);
    m.tombstonesHeld.set(result.held.count);
    m.tombstonesHeldBytes.set(result.held.bytes);
    for (const peer of peers) {
      m.peerAcknowledgedAtMs.set({ peer_id: peer }, result.acked.get(peer) ?? 0);
      // 1 only while it actually keeps tombstones: a peer not acknowledged since the TTL with
      // nothing past the TTL to purge blocks nothing (health's held_for still names it).
      m.tombstoneGcBlocked.set({ peer_id: peer }, (result.heldBy.get(peer) ?? 0) > 0 ? 1 : 0);
    }
    if (result.purged > 0) {
      ctx.logger.info(
        { purged: result.purged, cutoff_ms: result.cutoff },
        'purged tombstones every peer acknowledged',
      );
    }
    if (result.held.count > 0) {
      this.#held.fail({
        held: result.held.count,
        held_bytes: result.held.bytes,
        peers: result.holders,
      });
    } else {
      this.#held.ok();
    }
    return result;
  }

  /** The last purge's report; undefined before the first. */
  health(): TombstoneHealth | undefined {
    const last = this.#last;
    if (last === undefined) return undefined;
    const r = last.result;
    return {
      ttl_ms: this.#ctx.ttlMs,
      horizon_ms: r.horizon,
      last_purge_at_ms: last.at,
      last_purged: r.purged,
      held: r.held.count,
      held_bytes: r.held.bytes,
      held_for: r.holders,
    };
  }
}
