/**
 * One decoded batch into the local store (SPEC §4): quarantine what could not be decoded, wait
 * while the store asks for backpressure (pause, never drop), apply by LWW, and sort the outcomes;
 * then, once its cursor is committed, the batch's metrics.
 */
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { StoredRecord } from '../model/record.js';
import type { ApplyResult, LocalStore } from './local-store.js';
import { sleep } from './backoff.js';
import type { DecodedBatch, HeldBackRecord, QuarantinedEntry } from './batch.js';

/** How often a backpressured batch asks the store again. */
const BACKPRESSURE_POLL_MS = 100;

/** What applying a batch did. */
export interface BatchStats {
  readonly applied: number;
  readonly deleted: number;
  readonly deduped: number;
}

/** What {@link applyBatch} works with. */
export interface BatchApplyContext {
  readonly peerId: string;
  readonly store: LocalStore;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Aborts the backpressure wait (stop). */
  readonly signal: AbortSignal;
  /** Called while the batch waits for the store to accept writes again, and once it may. */
  readonly onBackpressure: (waiting: boolean) => void;
  /** Replicated records that lost to a different concurrent local record. */
  readonly onConflicts: (
    conflicts: readonly { record: StoredRecord; result: ApplyResult }[],
  ) => void;
  readonly now?: () => number;
  /**
   * Records of the batch held back for their clock (already dead-lettered and counted here): the
   * engine asks for a repair of the peer once they are within the bound, so none is lost.
   */
  readonly onHeldBack?: (records: readonly HeldBackRecord[]) => void;
  /**
   * How many live records of the batch the store refused as purged deletes (outcome `purged`:
   * older than the purge horizon, key absent here): the engine asks for a repair of the peer.
   */
  readonly onPurged?: (count: number) => void;
}

/** A held-back record is logged at most this often per peer (the counter counts every one). */
const HELD_BACK_LOG_INTERVAL_MS = 60_000;
/** When each peer's held-back records were last logged, per engine (its metrics object). */
const heldBackLoggedAt = new WeakMap<Metrics, Map<string, number>>();

/**
 * Applies `batch` to the store.
 * @throws when the store failed, or the backpressure wait was aborted: nothing may be committed.
 */
export async function applyBatch(batch: DecodedBatch, ctx: BatchApplyContext): Promise<BatchStats> {
  if (batch.quarantined.length > 0) await quarantine(batch.quarantined, ctx);
  if (batch.heldBack !== undefined && batch.heldBack.length > 0)
    await holdBack(batch.heldBack, ctx);
  let applied = 0;
  let deleted = 0;
  let deduped = batch.coalesced;
  if (batch.records.length === 0) return { applied, deleted, deduped };
  await waitForBackpressure(ctx);
  const results = await ctx.store.apply(batch.records, {
    source: { path: 'hot', peerId: ctx.peerId },
  });
  const now = ctx.now?.() ?? Date.now();
  const peer = { peer_id: ctx.peerId };
  // Bound once per batch: observing through labels hashes them on every call.
  const latency = ctx.metrics.applyLatencySeconds.labels(peer);
  const conflicts: { record: StoredRecord; result: ApplyResult }[] = [];
  let purged = 0;
  for (let i = 0; i < results.length; i++) {
    const result = results[i]!;
    const record = batch.records[i]!;
    switch (result.outcome) {
      case 'applied':
        applied += 1;
        if (record.deleted) deleted += 1;
        if (record.updatedAt > 0 && record.updatedAt <= now + 60_000) {
          latency.observe(Math.max(0, now - record.updatedAt) / 1000);
        }
        break;
      case 'conflict':
        conflicts.push({ record, result });
        deduped += 1;
        break;
      case 'purged':
        purged += 1;
        deduped += 1;
        break;
      default:
        deduped += 1;
    }
  }
  if (conflicts.length > 0) {
    ctx.metrics.conflictsTotal.inc(peer, conflicts.length);
    ctx.onConflicts(conflicts);
  }
  if (purged > 0) ctx.onPurged?.(purged);
  return { applied, deleted, deduped };
}

/** Counts a committed batch. */
export function countCommitted(
  metrics: Metrics,
  peerId: string,
  batch: DecodedBatch,
  stats: BatchStats,
  flushMs: number,
): void {
  const peer = { peer_id: peerId };
  metrics.cdcEventsAppliedTotal.inc(peer, stats.applied);
  metrics.batchSubmittedTotal.inc(peer, stats.applied - stats.deleted);
  metrics.batchDeletedTotal.inc(peer, stats.deleted);
  metrics.cdcEventsDedupedTotal.inc(peer, stats.deduped);
  metrics.batchDedupedTotal.inc(peer, stats.deduped);
  metrics.batchSkippedTotal.inc(peer, batch.ownOrigin);
  metrics.batchEventsTotal.inc(peer, batch.read);
  metrics.batchSize.observe(peer, batch.read);
  metrics.batchFlushDurationSeconds.observe(peer, flushMs / 1000);
}

async function waitForBackpressure(ctx: BatchApplyContext): Promise<void> {
  if (await ctx.store.shouldAcceptWrites()) return;
  ctx.onBackpressure(true);
  ctx.metrics.backpressurePausesTotal.inc({ peer_id: ctx.peerId });
  ctx.log.warn('local store asks to pause writes; ingestion paused');
  try {
    // Pause, never drop: the batch waits here and nothing further is read meanwhile.
    while (!(await ctx.store.shouldAcceptWrites())) {
      if (!(await sleep(BACKPRESSURE_POLL_MS, ctx.signal))) {
        throw new Error('stopped while the local store asked to pause writes');
      }
    }
    ctx.log.info('local store accepts writes again; ingestion resumed');
  } finally {
    ctx.onBackpressure(false);
  }
}

async function quarantine(
  entries: readonly QuarantinedEntry[],
  ctx: BatchApplyContext,
): Promise<void> {
  for (const entry of entries) {
    ctx.metrics.deadLetteredTotal.inc({ peer_id: ctx.peerId, reason: entry.reason });
    ctx.log.warn(
      { stream_id: entry.id, reason: entry.reason, err: entry.message },
      'corrupt entry quarantined',
    );
  }
  await ctx.store.quarantine(ctx.peerId, entries);
}

/**
 * Records dated too far ahead: dead-lettered (reason `clock_skew`), counted, logged once per peer
 * per minute, and handed to `onHeldBack` so a repair applies them once within the bound.
 */
async function holdBack(records: readonly HeldBackRecord[], ctx: BatchApplyContext): Promise<void> {
  ctx.metrics.clockSkewRejectedTotal.inc({ peer_id: ctx.peerId }, records.length);
  const now = ctx.now?.() ?? Date.now();
  let byPeer = heldBackLoggedAt.get(ctx.metrics);
  if (byPeer === undefined) heldBackLoggedAt.set(ctx.metrics, (byPeer = new Map<string, number>()));
  const logged = byPeer.get(ctx.peerId);
  if (logged === undefined || now - logged >= HELD_BACK_LOG_INTERVAL_MS || now < logged) {
    byPeer.set(ctx.peerId, now);
    const first = records[0]!;
    ctx.log.warn(
      {
        stream_id: first.id,
        key: first.key,
        updated_at: first.updatedAt,
        ahead_ms: first.updatedAt - now,
        held_back: records.length,
      },
      'record dated beyond store.max_clock_skew held back; a repair applies it once in range',
    );
  }
  await ctx.store.quarantine(ctx.peerId, records);
  ctx.onHeldBack?.(records);
}
