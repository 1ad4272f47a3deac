/**
 * One decoded batch into the local store (SPEC §4): quarantine what could not be decoded, wait
 * while the store asks for backpressure (pause, never drop), apply by LWW, and sort the outcomes;
 * then, once its cursor is committed, the batch's metrics.
 */
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { StoredRecord } from '../model/record.js';
import type { ApplyResult, LocalStore } from '../store/local-store.js';
import { sleep } from './backoff.js';
import type { DecodedBatch, QuarantinedEntry } from './batch.js';

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
}

/**
 * Applies `batch` to the store.
 * @throws when the store failed, or the backpressure wait was aborted: nothing may be committed.
 */
export async function applyBatch(batch: DecodedBatch, ctx: BatchApplyContext): Promise<BatchStats> {
  if (batch.quarantined.length > 0) await quarantine(batch.quarantined, ctx);
  let applied = 0;
  let deleted = 0;
  let deduped = batch.coalesced;
  if (batch.records.length === 0) return { applied, deleted, deduped };
  await waitForBackpressure(ctx);
  const results = await ctx.store.apply(batch.records);
  const now = ctx.now?.() ?? Date.now();
  const peer = { peer_id: ctx.peerId };
  // Bound once per batch: observing through labels hashes them on every call.
  const latency = ctx.metrics.applyLatencySeconds.labels(peer);
  const conflicts: { record: StoredRecord; result: ApplyResult }[] = [];
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
      default:
        deduped += 1;
    }
  }
  if (conflicts.length > 0) {
    ctx.metrics.conflictsTotal.inc(peer, conflicts.length);
    ctx.onConflicts(conflicts);
  }
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
  await ctx.store.quarantine?.(ctx.peerId, entries);
}
