/**
 * The hot path for one peer (SPEC §4): tail its `cdc` stream from the persisted cursor, decode,
 * apply through the LocalStore, then commit the cursor. While catching up, the next batch is read
 * while this one is decoded; up to three batches are applied at once (pipelined); batches are
 * applied and committed strictly in order, so a crash re-reads at most the three batches in flight.
 */
import { STREAM_START, compareStreamIds, streamIdMs } from '../codec/stream-id.js';
import type { ResolvedHotPath, ResolvedSlo } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { ApplyResult, LocalStore } from '../store/local-store.js';
import type { StoredRecord } from '../model/record.js';
import { AimdBatchSizer } from './aimd.js';
import { Backoff, sleep } from './backoff.js';
import {
  decodeBatch,
  entriesFromReply,
  type DecodedBatch,
  type QuarantinedEntry,
  type RawEntry,
} from './batch.js';
import type { CursorStore } from './cursor-store.js';
import { BUFFERS } from './redis-connection.js';
import { describeError, type PeerLink } from './peer-link.js';
import {
  detectGap,
  estimateLagEvents,
  parseStreamInfo,
  type GapVerdict,
  type StreamInfo,
} from './stream-gap.js';
import { TokenBucket } from './token-bucket.js';

/** How often the stream's XINFO is re-read while tailing (gap detection, lag). */
const INFO_INTERVAL_MS = 2000;
/** Extra time a blocking read may take past its BLOCK timeout before the socket is presumed dead. */
const READ_DEADLINE_SLACK_MS = 5000;
/**
 * Batches applied at once (pipelined on the local connection; see `Tailer.#inflight`). Three keep
 * the local Redis busy while this process decodes: against two, a 200k backlog replicated 9-12%
 * faster at batch_size 100 (3 of 3 alternating runs) and no slower at 500; four gained nothing more.
 */
export const APPLIES_IN_FLIGHT = 3;

/** What a tailer needs from the engine. */
export interface TailerContext {
  readonly localNodeId: string;
  readonly hotPath: () => ResolvedHotPath;
  readonly slo: () => ResolvedSlo;
  readonly maxItemBytes: number;
  readonly store: LocalStore;
  readonly cursors: CursorStore;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** A gap was found and the cursor reset; the engine reports it and starts a repair. */
  readonly onGap: (peerId: string, verdict: Extract<GapVerdict, { gap: true }>) => void;
  /** Replicated records that lost to a different concurrent local record. */
  readonly onConflicts: (
    peerId: string,
    conflicts: readonly { record: StoredRecord; result: ApplyResult }[],
  ) => void;
}

/** A snapshot of a tailer, for health. */
export interface TailerStatus {
  readonly cursor: string;
  readonly lagMs: number;
  readonly lagEvents: number;
  readonly catchingUp: boolean;
  readonly paused: boolean;
  readonly backpressured: boolean;
  readonly lastEventAt: number | null;
  readonly lastError: string | undefined;
}

/** Tails one peer's stream. */
export class Tailer {
  readonly #peerId: string;
  readonly #abort = new AbortController();
  readonly #log: Logger;
  #loop: Promise<void> | undefined;
  /**
   * Batches being applied, oldest first; each resolves true once applied and its cursor committed.
   * Up to {@link APPLIES_IN_FLIGHT} at once: Redis runs them in order on one connection while the
   * next batch is read and decoded, and cursors are committed strictly in order.
   */
  #inflight: Promise<boolean>[] = [];
  /** The next batch, read ahead while catching up; used only if it starts at the read cursor. */
  #prefetch: { cursor: string; size: number; read: Promise<RawEntry[]> } | undefined;
  /** Last entry read (the next read starts after it). */
  #readCursor: string = STREAM_START;
  /** Last entry applied and committed to SQLite. */
  #committed: string = STREAM_START;
  #catchingUp = true;
  #paused = false;
  #backpressured = false;
  #resumeWaiters: (() => void)[] = [];
  #lagMs = 0;
  #lagEvents = 0;
  #headId: string = STREAM_START;
  #lastEventAt: number | null = null;
  #lastError: string | undefined;
  #entriesAdded: number | null = null;
  #acknowledgedDeletedId: string | undefined;
  #infoCheckedAt = 0;
  #needInfo = true;
  #lastLagWarnAt = 0;
  readonly #sizer: AimdBatchSizer;
  #bucket: TokenBucket;
  #bucketKey = '';

  constructor(
    private readonly link: PeerLink,
    private readonly ctx: TailerContext,
  ) {
    this.#peerId = link.id;
    this.#log = ctx.logger;
    const hot = ctx.hotPath();
    this.#sizer = new AimdBatchSizer({
      initial: hot.batchSize,
      min: hot.minBatchSize,
      max: hot.maxBatchSize,
      targetLatencyMs: ctx.slo().maxBatchFlushLatencyMs,
    });
    this.#bucket = new TokenBucket({ ratePerSec: hot.rateLimitPerSec, burst: hot.rateLimitBurst });
    this.#bucketKey = `${hot.rateLimitPerSec}/${hot.rateLimitBurst}`;
    const row = ctx.cursors.get(this.#peerId);
    if (row !== undefined) {
      this.#readCursor = row.streamId;
      this.#committed = row.streamId;
      this.#entriesAdded = row.entriesAdded;
    }
  }

  /** The cursor last committed to SQLite. */
  get committedCursor(): string {
    return this.#committed;
  }

  /** Starts the loop in the background. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops after the batches in flight are applied and committed. Safe to call twice. */
  async stop(): Promise<void> {
    this.#abort.abort();
    this.#wakeResumeWaiters();
    await this.#loop;
  }

  /** Stops reading (the batches in flight still land). */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.#wakeResumeWaiters();
  }

  get paused(): boolean {
    return this.#paused;
  }

  /**
   * Forgets the cursor: the stream is read again from its start (LWW makes replays harmless).
   * The caller requests a repair alongside.
   */
  async resync(): Promise<void> {
    await this.#drainInflight();
    this.#readCursor = STREAM_START;
    this.#committed = STREAM_START;
    this.#acknowledgedDeletedId = undefined;
    this.#commitCursor(STREAM_START);
    this.#catchingUp = true;
    this.#needInfo = true;
  }

  status(): TailerStatus {
    return {
      cursor: this.#committed,
      lagMs: this.#lagMs,
      lagEvents: this.#lagEvents,
      catchingUp: this.#catchingUp,
      paused: this.#paused,
      backpressured: this.#backpressured,
      lastEventAt: this.#lastEventAt,
      lastError: this.#lastError,
    };
  }

  get #streamKey(): string {
    return `${this.link.peer.redisPrefix}cdc`;
  }

  #wakeResumeWaiters(): void {
    const waiters = this.#resumeWaiters;
    this.#resumeWaiters = [];
    for (const wake of waiters) wake();
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    const backoff = new Backoff({ baseMs: 100, maxMs: 5000 });
    while (!signal.aborted) {
      try {
        if (!(await this.#ready(signal))) break;
        await this.#maybeCheckStream();
        const hot = this.ctx.hotPath();
        let size = hot.adaptiveBatchSize ? this.#sizer.size : hot.batchSize;
        let entries: RawEntry[];
        const prefetched = this.#takePrefetch();
        if (prefetched !== undefined) {
          size = prefetched.size;
          entries = await prefetched.read;
        } else {
          entries = await this.#read(size, hot.blockTimeoutMs, signal);
        }
        backoff.reset();
        if (signal.aborted) break;
        if (entries.length === 0) {
          this.#caughtUp();
          continue;
        }
        const full = entries.length >= size;
        this.#catchingUp = full;
        if (full) {
          // Catching up: read the next batch while this one is decoded (it starts where this ends).
          const cursor = entries[entries.length - 1]!.id;
          const next = hot.adaptiveBatchSize ? this.#sizer.size : hot.batchSize;
          const read = this.#readFrom(cursor, next, signal);
          read.catch(() => undefined); // awaited when taken; a discarded one must not go unhandled
          this.#prefetch = { cursor, size: next, read };
        }
        const decodeStarted = performance.now();
        const batch = decodeBatch(entries, this.#peerId, this.ctx.localNodeId, {
          maxItemBytes: this.ctx.maxItemBytes,
          lazyContent: this.ctx.store.keepsFrames === true,
        });
        this.ctx.metrics.eventProcessingDurationSeconds.observe(
          { peer_id: this.#peerId },
          (performance.now() - decodeStarted) / 1000,
        );
        this.#readCursor = batch.lastId;
        this.#lastEventAt = Date.now();
        if (!full) this.#caughtUp();
        else this.#updateLag();
        await this.#rateLimit(entries.length, signal);
        if (!(await this.#awaitApplySlot())) {
          this.#rewind();
          await sleep(backoff.next(), signal);
          continue;
        }
        const previous = this.#inflight.at(-1);
        this.#inflight.push(this.#applyAndCommit(batch, full, previous));
      } catch (error) {
        if (signal.aborted) break;
        this.#lastError = describeError(error);
        this.#log.warn({ err: this.#lastError }, 'hot path error; backing off');
        await this.#drainInflight();
        this.#rewind();
        this.#needInfo = true;
        await sleep(backoff.next(), signal);
      }
    }
    await this.#drainInflight();
  }

  /**
   * The batch read ahead, if it still follows on: not after a rewind, a gap's reset or a resync
   * (which move the read cursor), and not once caught up or paused (then it is dropped: nothing
   * of it was applied, and the cursor has not moved past it).
   */
  #takePrefetch(): { size: number; read: Promise<RawEntry[]> } | undefined {
    const prefetch = this.#prefetch;
    this.#prefetch = undefined;
    if (prefetch === undefined || !this.#catchingUp || this.#paused) return undefined;
    return prefetch.cursor === this.#readCursor ? prefetch : undefined;
  }

  /** Waits until reading may proceed: not paused, peer connected, circuit allowing a call. */
  async #ready(signal: AbortSignal): Promise<boolean> {
    while (!signal.aborted) {
      if (this.#paused) {
        await new Promise<void>((resolve) => this.#resumeWaiters.push(resolve));
        continue;
      }
      if (!this.link.connected) {
        this.#needInfo = true;
        if (!(await this.link.waitReady(signal))) return false;
        continue;
      }
      if (this.link.breaker.state === 'open') {
        await sleep(Math.max(50, this.link.breaker.msUntilHalfOpen()), signal);
        continue;
      }
      return true;
    }
    return false;
  }

  /** After a failure: read again from what is committed (never skip an unapplied batch). */
  #rewind(): void {
    this.#readCursor = this.#committed;
    this.#catchingUp = true;
  }

  #caughtUp(): void {
    this.#catchingUp = false;
    this.#lagEvents = 0;
    this.#lagMs = 0;
    this.ctx.metrics.lagMs.set({ peer_id: this.#peerId }, 0);
    this.ctx.metrics.lagEvents.set({ peer_id: this.#peerId }, 0);
    this.ctx.metrics.lagSloViolation.set({ peer_id: this.#peerId }, 0);
  }

  #updateLag(): void {
    if (compareStreamIds(this.#headId, this.#readCursor) <= 0) return;
    this.#lagMs = Math.max(0, streamIdMs(this.#headId) - streamIdMs(this.#readCursor));
    this.ctx.metrics.lagMs.set({ peer_id: this.#peerId }, this.#lagMs);
    const maxLag = this.ctx.slo().maxReplicationLagMs;
    this.ctx.metrics.lagSloViolation.set({ peer_id: this.#peerId }, this.#lagMs > maxLag ? 1 : 0);
    if (this.#lagMs > maxLag && Date.now() - this.#lastLagWarnAt > 10_000) {
      this.#lastLagWarnAt = Date.now();
      this.ctx.metrics.sloViolationsTotal.inc({
        peer_id: this.#peerId,
        slo_type: 'replication_lag',
      });
      this.#log.warn({ lag_ms: this.#lagMs, slo_ms: maxLag }, 'replication lag exceeds its SLO');
    }
  }

  async #rateLimit(n: number, signal: AbortSignal): Promise<void> {
    const hot = this.ctx.hotPath();
    if (!hot.rateLimitEnabled) return;
    const key = `${hot.rateLimitPerSec}/${hot.rateLimitBurst}`;
    if (key !== this.#bucketKey) {
      this.#bucket = new TokenBucket({
        ratePerSec: hot.rateLimitPerSec,
        burst: hot.rateLimitBurst,
      });
      this.#bucketKey = key;
    }
    const wait = this.#bucket.reserve(n);
    if (wait > 0) await sleep(wait, signal);
  }

  /** Re-reads XINFO on (re)connect and every couple of seconds: gaps, identity, lag. */
  async #maybeCheckStream(): Promise<void> {
    if (!this.#needInfo && Date.now() - this.#infoCheckedAt < INFO_INTERVAL_MS) return;
    const key = this.#streamKey;
    const info = await this.link.run('xinfo', async (client) => {
      try {
        return parseStreamInfo(await client.sendCommand(['XINFO', 'STREAM', key]));
      } catch (error) {
        if (error instanceof Error && /no such key/i.test(error.message)) return undefined;
        throw error;
      }
    });
    this.#infoCheckedAt = Date.now();
    this.#needInfo = false;
    // Judge the stream against what is committed: an uncommitted read position proves nothing.
    await this.#drainInflight();
    const verdict = detectGap(this.#committed, info, {
      entriesAdded: this.#entriesAdded,
      ...(this.#acknowledgedDeletedId !== undefined
        ? { acknowledgedDeletedId: this.#acknowledgedDeletedId }
        : {}),
    });
    if (info !== undefined) this.#observe(info);
    if (verdict.gap) this.#onGap(verdict, info);
  }

  #observe(info: StreamInfo): void {
    if (info.entriesAdded !== undefined) this.#entriesAdded = info.entriesAdded;
    this.#headId = info.lastEntryId ?? info.lastGeneratedId;
    this.#lagEvents = estimateLagEvents(this.#readCursor, info);
    this.ctx.metrics.lagEvents.set({ peer_id: this.#peerId }, this.#lagEvents);
    this.#lagMs =
      compareStreamIds(this.#headId, this.#readCursor) > 0
        ? Math.max(0, streamIdMs(this.#headId) - streamIdMs(this.#readCursor))
        : 0;
    this.ctx.metrics.lagMs.set({ peer_id: this.#peerId }, this.#lagMs);
  }

  #onGap(verdict: Extract<GapVerdict, { gap: true }>, info: StreamInfo | undefined): void {
    this.ctx.metrics.streamGapsTotal.inc({ peer_id: this.#peerId, kind: verdict.kind });
    this.#log.warn(
      { kind: verdict.kind, detail: verdict.detail, reset_to: verdict.resetTo },
      'gap in peer stream',
    );
    if (info?.maxDeletedEntryId !== undefined) this.#acknowledgedDeletedId = info.maxDeletedEntryId;
    if (verdict.kind === 'recreated') {
      this.#entriesAdded = info?.entriesAdded ?? null;
      this.#acknowledgedDeletedId = info?.maxDeletedEntryId;
    }
    this.#readCursor = verdict.resetTo;
    this.#committed = verdict.resetTo;
    this.#catchingUp = true;
    this.#commitCursor(verdict.resetTo);
    this.ctx.onGap(this.#peerId, verdict);
  }

  /** Reads the batch after the read cursor: XRANGE while catching up, XREAD BLOCK otherwise. */
  #read(size: number, blockMs: number, signal: AbortSignal): Promise<RawEntry[]> {
    return this.#readFrom(this.#readCursor, size, signal, this.#catchingUp ? undefined : blockMs);
  }

  /** Reads up to `size` entries after `cursor`: XREAD BLOCK `blockMs` when given, else XRANGE. */
  async #readFrom(
    cursor: string,
    size: number,
    signal: AbortSignal,
    blockMs?: number,
  ): Promise<RawEntry[]> {
    const key = this.#streamKey;
    const started = performance.now();
    let reply: unknown;
    if (blockMs === undefined) {
      reply = await this.link.run(
        'xrange',
        (client) =>
          client.sendCommand(['XRANGE', key, `(${cursor}`, '+', 'COUNT', String(size)], {
            typeMapping: BUFFERS,
          }),
        'reader',
      );
    } else {
      reply = await this.#blockingRead(key, cursor, size, blockMs, signal);
    }
    const seconds = (performance.now() - started) / 1000;
    const entries = entriesFromReply(reply);
    const m = this.ctx.metrics;
    const peer = { peer_id: this.#peerId };
    m.streamReadsTotal.inc(peer);
    if (entries.length > 0) {
      m.streamReadDurationSeconds.observe(peer, seconds);
      m.cdcEventsReadTotal.inc(peer, entries.length);
      m.streamEventsReadTotal.inc(peer, entries.length);
      const slo = this.ctx.slo().maxStreamReadLatencyMs;
      if (this.#catchingUp && seconds * 1000 > slo) {
        m.sloViolationsTotal.inc({ peer_id: this.#peerId, slo_type: 'stream_read' });
        this.#log.warn(
          { ms: Math.round(seconds * 1000), slo_ms: slo },
          'stream read exceeded its SLO',
        );
      }
    }
    return entries;
  }

  /** XREAD BLOCK with a deadline: a read that outlives it means a dead socket, so the reader is replaced. */
  async #blockingRead(
    key: string,
    cursor: string,
    size: number,
    blockMs: number,
    signal: AbortSignal,
  ): Promise<unknown> {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void => this.link.resetReader();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await this.link.run(
        'xread',
        (client) => {
          const read = client.sendCommand(
            ['XREAD', 'BLOCK', String(blockMs), 'COUNT', String(size), 'STREAMS', key, cursor],
            { typeMapping: BUFFERS },
          );
          const deadline = new Promise<never>((_, reject) => {
            timer = setTimeout(() => {
              this.link.resetReader();
              reject(
                new Error(`XREAD did not return within ${blockMs + READ_DEADLINE_SLACK_MS} ms`),
              );
            }, blockMs + READ_DEADLINE_SLACK_MS);
          });
          read.catch(() => undefined);
          return Promise.race([read, deadline]);
        },
        'reader',
      );
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Waits for every batch in flight; false if any failed (the caller rewinds). */
  async #drainInflight(): Promise<boolean> {
    const inflight = this.#inflight;
    this.#inflight = [];
    const results = await Promise.all(inflight);
    return results.every(Boolean);
  }

  /**
   * Waits until fewer than {@link APPLIES_IN_FLIGHT} batches are in flight; false if one failed
   * (then every batch in flight has been waited for, and the caller rewinds).
   */
  async #awaitApplySlot(): Promise<boolean> {
    while (this.#inflight.length >= APPLIES_IN_FLIGHT) {
      const ok = await this.#inflight.shift()!;
      if (!ok) {
        await this.#drainInflight();
        return false;
      }
    }
    return true;
  }

  /**
   * Applies a batch, then, once the batch before it (`previous`) is committed, commits its cursor.
   * Resolves false, committing nothing, if it or any batch before it failed.
   */
  async #applyAndCommit(
    batch: DecodedBatch,
    full: boolean,
    previous: Promise<boolean> | undefined,
  ): Promise<boolean> {
    // The flush is timed from when Redis can start on it: after the batch before it.
    let started = performance.now();
    void previous?.then(() => {
      started = Math.max(started, performance.now());
    });
    const m = this.ctx.metrics;
    const peer = { peer_id: this.#peerId };
    try {
      if (batch.quarantined.length > 0) await this.#quarantine(batch.quarantined);
      let applied = 0;
      let deleted = 0;
      let deduped = batch.coalesced;
      if (batch.records.length > 0) {
        await this.#waitForBackpressure();
        const results = await this.ctx.store.apply(batch.records);
        const now = Date.now();
        // Bound once per batch: observing through labels hashes them on every call.
        const latency = m.applyLatencySeconds.labels(peer);
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
          m.conflictsTotal.inc(peer, conflicts.length);
          this.ctx.onConflicts(this.#peerId, conflicts);
        }
      }
      // A batch after a failed one may already be applied (LWW makes that harmless) but must not
      // move the cursor past entries that were not.
      const flushMs = performance.now() - started;
      if (previous !== undefined && !(await previous)) return false;
      this.#commitCursor(batch.lastId);
      m.cdcEventsAppliedTotal.inc(peer, applied);
      m.batchSubmittedTotal.inc(peer, applied - deleted);
      m.batchDeletedTotal.inc(peer, deleted);
      m.cdcEventsDedupedTotal.inc(peer, deduped);
      m.batchDedupedTotal.inc(peer, deduped);
      m.batchSkippedTotal.inc(peer, batch.ownOrigin);
      m.batchEventsTotal.inc(peer, batch.read);
      m.batchSize.observe(peer, batch.read);
      m.batchFlushDurationSeconds.observe(peer, flushMs / 1000);
      const sloMs = this.ctx.slo().maxBatchFlushLatencyMs;
      if (flushMs > sloMs) {
        m.sloViolationsTotal.inc({ peer_id: this.#peerId, slo_type: 'batch_flush' });
        this.#log.warn(
          { ms: Math.round(flushMs), slo_ms: sloMs, events: batch.read },
          'batch flush exceeded its SLO',
        );
      }
      if (this.ctx.hotPath().adaptiveBatchSize) {
        m.adaptiveBatchSize.set(peer, this.#sizer.record({ full, flushMs, ok: true }));
      }
      return true;
    } catch (error) {
      this.#lastError = describeError(error);
      m.batchErrorsTotal.inc(peer);
      this.#log.warn(
        { err: this.#lastError, events: batch.read },
        'batch apply failed; will re-read it',
      );
      if (this.ctx.hotPath().adaptiveBatchSize) {
        m.adaptiveBatchSize.set(
          peer,
          this.#sizer.record({ full, flushMs: performance.now() - started, ok: false }),
        );
      }
      return false;
    }
  }

  #commitCursor(streamId: string): void {
    try {
      this.ctx.cursors.commit(this.#peerId, streamId, { entriesAdded: this.#entriesAdded });
      this.#committed = streamId;
      this.ctx.metrics.cursorPersistsTotal.inc({ peer_id: this.#peerId, status: 'success' });
    } catch (error) {
      this.ctx.metrics.cursorPersistsTotal.inc({ peer_id: this.#peerId, status: 'failure' });
      throw error;
    }
  }

  async #waitForBackpressure(): Promise<void> {
    if (await this.ctx.store.shouldAcceptWrites()) return;
    this.#backpressured = true;
    this.ctx.metrics.backpressurePausesTotal.inc({ peer_id: this.#peerId });
    this.#log.warn('local store asks to pause writes; ingestion paused');
    try {
      // Pause, never drop: the batch waits here and nothing further is read meanwhile.
      while (!(await this.ctx.store.shouldAcceptWrites())) await sleep(100);
      this.#log.info('local store accepts writes again; ingestion resumed');
    } finally {
      this.#backpressured = false;
    }
  }

  async #quarantine(entries: readonly QuarantinedEntry[]): Promise<void> {
    for (const entry of entries) {
      this.ctx.metrics.deadLetteredTotal.inc({ peer_id: this.#peerId, reason: entry.reason });
      this.#log.warn(
        { stream_id: entry.id, reason: entry.reason, err: entry.message },
        'corrupt entry quarantined',
      );
    }
    await this.ctx.store.quarantine?.(this.#peerId, entries);
  }
}
