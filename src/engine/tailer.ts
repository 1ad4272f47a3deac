/**
 * The hot path for one peer (SPEC §4): tail its stream from the committed cursor, decode, apply
 * through the {@link ApplyPipeline}, which commits the cursor after each batch. While catching up
 * the next batch is read ahead; up to three are applied at once. The loop is an explicit state
 * machine; pause, resume, resync and stop are requests it takes up at safe points (between
 * batches, never while a read it would act on is in flight), and every wait is abortable.
 */
import { STREAM_START } from '../codec/stream-id.js';
import type { ResolvedHotPath, ResolvedSlo } from '../config/types.js';
import type { StoredRecord } from '../model/record.js';
import type { Logger } from '../observability/logger.js';
import { RepeatingWarning } from '../observability/repeating-warning.js';
import type { Metrics } from '../observability/metrics.js';
import type { ApplyResult, LocalStore } from './local-store.js';
import { AimdBatchSizer } from './aimd.js';
import type { ApplyRateLimit } from './apply-rate-limit.js';
import { ApplyPipeline } from './apply-pipeline.js';
import { Backoff, sleep } from './backoff.js';
import {
  applyBatch,
  countCommitted,
  type BatchApplyContext,
  type BatchStats,
} from './batch-apply.js';
import { decodeBatch, type DecodedBatch, type HeldBackRecord, type RawEntry } from './batch.js';
import type { CursorStore } from './cursor-store.js';
import { describeError } from '../redis/connect.js';
import type { PeerStream } from './peer-stream.js';
import { LagReport } from './lag-report.js';
import { StreamLag } from './stream-lag.js';
import { StreamReader } from './stream-reader.js';
import { TailerLoop, type TailerState } from './tailer-loop.js';
import type { GapVerdict } from './stream-gap.js';

export { APPLIES_IN_FLIGHT } from './apply-pipeline.js';

/** How often the stream's XINFO is re-read while tailing or paused (gap detection, lag). */
const INFO_INTERVAL_MS = 2000;

/** Time and waiting, injectable so tests need no sleeps. */
export interface TailerClock {
  /** ms epoch. */
  now(): number;
  /** Resolves true after `ms`, false at once when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<boolean>;
}

const REAL_CLOCK: TailerClock = { now: () => Date.now(), sleep };

/** What a tailer needs from the engine. */
export interface TailerContext {
  readonly localNodeId: string;
  readonly hotPath: () => ResolvedHotPath;
  readonly slo: () => ResolvedSlo;
  readonly maxItemBytes: number;
  /** Records dated further ahead of the clock are held back (`store.max_clock_skew`). */
  readonly maxClockSkewMs?: number;
  readonly store: LocalStore;
  readonly cursors: CursorStore;
  /** The node-wide apply rate limit, shared by every peer's tailer. */
  readonly rateLimit: ApplyRateLimit;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** A gap was found and the cursor reset; the engine reports it and starts a repair. */
  readonly onGap: (peerId: string, verdict: Extract<GapVerdict, { gap: true }>) => void;
  /** Replicated records that lost to a different concurrent local record. */
  readonly onConflicts: (
    peerId: string,
    conflicts: readonly { record: StoredRecord; result: ApplyResult }[],
  ) => void;
  /** Records held back for their clock: the engine has them repaired once in range. */
  readonly onHeldBack?: (peerId: string, records: readonly HeldBackRecord[]) => void;
  /** Live records refused as purged deletes (outcome `purged`): the engine has the peer repaired. */
  readonly onPurged?: (peerId: string, count: number) => void;
  /** @default the real clock */
  readonly clock?: TailerClock;
}

/** What applying a batch needs besides the context: the caller's log, stop signal and clock. */
export interface ApplyHooks {
  readonly log: Logger;
  readonly signal: AbortSignal;
  readonly now: () => number;
  readonly onBackpressure: (waiting: boolean) => void;
}

/** How a peer's batches are applied (`applyBatch`'s context), for any tailer of `peerId`. */
export function applyContext(
  peerId: string,
  ctx: TailerContext,
  hooks: ApplyHooks,
): BatchApplyContext {
  return {
    peerId,
    store: ctx.store,
    metrics: ctx.metrics,
    ...hooks,
    onConflicts: (conflicts) => ctx.onConflicts(peerId, conflicts),
    onHeldBack: (records) => ctx.onHeldBack?.(peerId, records),
    onPurged: (count) => ctx.onPurged?.(peerId, count),
  };
}

/** Decodes entries read from `peerId` (timed: `event_processing_duration_seconds`). */
export function decodeEntries(
  entries: readonly RawEntry[],
  peerId: string,
  ctx: TailerContext,
  now: number,
): DecodedBatch {
  const started = performance.now();
  const skew = ctx.maxClockSkewMs;
  const batch = decodeBatch(
    entries,
    peerId,
    ctx.localNodeId,
    { maxItemBytes: ctx.maxItemBytes, lazyContent: ctx.store.keepsFrames },
    skew === undefined ? undefined : { now, maxClockSkewMs: skew },
  );
  ctx.metrics.eventProcessingDurationSeconds.observe(
    { peer_id: peerId },
    (performance.now() - started) / 1000,
  );
  return batch;
}

export type { TailerState } from './tailer-loop.js';

type StateKind = TailerState['kind'];

/** A snapshot of a tailer, for health. */
export interface TailerStatus {
  readonly state: StateKind;
  readonly cursor: string;
  readonly lagMs: number;
  readonly lagEvents: number;
  readonly catchingUp: boolean;
  readonly paused: boolean;
  readonly backpressured: boolean;
  readonly lastEventAt: number | null;
  readonly lastError: string | undefined;
  /** When a batch's cursor was last committed (the tailer's clock, ms); null before the first. */
  readonly lastCommitAt: number | null;
  /** Cursor commits that failed in a row (0 after a commit succeeds). */
  readonly commitFailures: number;
  /** A cluster peer's partition streams, aggregated (absent for a single-instance peer). */
  readonly partitions?: PartitionsStatus;
}

/** A cluster peer's partition streams at a glance (docs/CLUSTER.md, "Lag, gaps, health"). */
export interface PartitionsStatus {
  /** Partition streams tailed. */
  readonly count: number;
  /** Partitions with entries not applied yet. */
  readonly behind: number;
  /** Partitions where a gap was found in the last {@link GAP_SHOWN_MS}. */
  readonly withGap: number;
  /** Partitions whose last read or apply failed. */
  readonly failing: number;
  /** The unhealthy partitions (behind past the lag SLO, failing, or with a gap), worst first, at most 16. */
  readonly unhealthy: readonly PartitionStatus[];
}

/** One partition stream of a cluster peer, as health lists it. */
export interface PartitionStatus {
  /** Its subtree path (`'3'`, `'3f'`). */
  readonly partition: string;
  readonly cursor: string;
  readonly lagMs: number;
  readonly lagEvents: number;
  readonly lastError: string | undefined;
  /** When a gap was last found in it (the tailer's clock, ms); null if none recently. */
  readonly gapAt: number | null;
}

/** How long a partition whose stream had a gap is shown as such. */
export const GAP_SHOWN_MS = 10 * 60_000;

/** What the engine drives a peer's hot path through: a {@link Tailer}, or a cluster peer's. */
export interface PeerTailer {
  readonly paused: boolean;
  start(): void;
  stop(): Promise<void>;
  peerUp(): void;
  pause(): void;
  resume(): void;
  resync(): Promise<void>;
  status(): TailerStatus;
}

/** Tails one peer's stream. */
export class Tailer implements PeerTailer {
  readonly #peerId: string;
  readonly #ctx: TailerContext;
  readonly #clock: TailerClock;
  readonly #log: Logger;
  readonly #stream: PeerStream;
  readonly #reader: StreamReader;
  readonly #pipeline: ApplyPipeline<BatchStats>;
  readonly #lag = new StreamLag();
  readonly #sizer: AimdBatchSizer;
  readonly #backoff = new Backoff({ baseMs: 100, maxMs: 5000 });
  /** The state machine and the requests (pause, resync, stop) the loop takes up. */
  readonly #loop: TailerLoop;
  /** Batches that were read full (AIMD grows only on those). */
  readonly #fullBatches = new WeakSet<object>();
  /** The last read came back short: the stream is read to its head. */
  #caughtUp = false;
  #backpressured = false;
  #lastEventAt: number | null = null;
  /** The last batch's failure, until a batch commits. */
  #applyError: string | undefined;
  /** The last failure to read the peer's stream, until a read succeeds or the peer is back. */
  #readError: string | undefined;
  #lastCommitAt: number | null = null;
  #commitFailures = 0;
  #infoDue = 0;
  /** Repeating warnings: logged when they start, every 30 s while they last, when they end. */
  readonly #applyFailing: RepeatingWarning;
  readonly #readFailing: RepeatingWarning;
  readonly #lagReport: LagReport;
  readonly #flushOverSlo: RepeatingWarning;

  constructor(peerId: string, stream: PeerStream, ctx: TailerContext) {
    this.#peerId = peerId;
    this.#stream = stream;
    this.#ctx = ctx;
    this.#clock = ctx.clock ?? REAL_CLOCK;
    this.#log = ctx.logger;
    this.#loop = new TailerLoop({
      step: () => this.#step(),
      whilePaused: () => this.#whilePaused(),
      backOff: (error) => this.#backOff(error),
      resetToStart: () => this.#resetToStart(),
      settle: () => this.#pipeline.settle(),
    });
    const now = (): number => this.#clock.now();
    this.#applyFailing = new RepeatingWarning(
      this.#log,
      'batch apply failed; reading again from the committed cursor',
      { recovered: 'batches apply again', now },
    );
    this.#readFailing = new RepeatingWarning(this.#log, 'hot path error; backing off', {
      recovered: 'the peer stream reads again',
      now,
    });
    this.#lagReport = new LagReport(peerId, ctx.metrics, ctx.slo, this.#log, now);
    this.#flushOverSlo = new RepeatingWarning(this.#log, 'batch flush exceeded its SLO', {
      recovered: 'batch flushes are within their SLO',
      now,
    });
    const hot = ctx.hotPath();
    this.#sizer = new AimdBatchSizer({
      initial: hot.batchSize,
      min: hot.minBatchSize,
      max: hot.maxBatchSize,
      targetLatencyMs: ctx.slo().maxBatchFlushLatencyMs,
    });
    const row = ctx.cursors.get(peerId);
    this.#reader = new StreamReader(
      stream,
      peerId,
      ctx.metrics,
      this.#log,
      row?.entriesAdded ?? null,
      this.#loop.stopSignal,
    );
    this.#pipeline = new ApplyPipeline<BatchStats>({
      committed: row?.streamId ?? STREAM_START,
      apply: (batch) =>
        applyBatch(
          batch,
          applyContext(peerId, ctx, {
            log: this.#log,
            signal: this.#loop.stopSignal,
            now: () => this.#clock.now(),
            onBackpressure: (waiting) => (this.#backpressured = waiting),
          }),
        ),
      commit: (cursor) => this.#commitCursor(cursor),
      onCommitted: (batch, stats, flushMs) => {
        this.#backoff.reset();
        this.#applyError = undefined;
        this.#applyFailing.ok();
        this.#lag.observeCommit(batch.lastId, batch.read, this.#pipeline.oldestPendingId);
        this.#publishLag();
        countCommitted(ctx.metrics, peerId, batch, stats, flushMs);
        this.#checkFlushSlo(flushMs, batch.read);
        this.#recordBatch(batch, true, flushMs);
      },
      onFailed: (batch, error, flushMs) => {
        this.#applyError = describeError(error);
        ctx.metrics.batchErrorsTotal.inc({ peer_id: peerId });
        this.#applyFailing.fail({ err: this.#applyError, events: batch.read });
        this.#recordBatch(batch, false, flushMs);
      },
    });
  }

  /** The cursor last committed to SQLite. */
  get committedCursor(): string {
    return this.#pipeline.committed;
  }

  /** Where the loop is. */
  get state(): TailerState {
    return this.#loop.state;
  }

  /** True while an operator has the peer paused. */
  get paused(): boolean {
    return this.#loop.paused;
  }

  /** Starts the loop in the background. */
  start(): void {
    this.#loop.start();
  }

  /** Stops after the batches in flight are applied and committed. Safe to call twice. */
  stop(): Promise<void> {
    return this.#loop.stop();
  }

  /**
   * The peer's connections are back (the link's event): a read error is over, and a back-off
   * ends now rather than after its delay.
   */
  peerUp(): void {
    this.#readError = undefined;
    if (this.#loop.state.kind !== 'backing-off') return;
    this.#backoff.reset();
    this.#loop.wakeUp();
  }

  /** Stops reading at the next safe point (the batches in flight still land). */
  pause(): void {
    this.#loop.pause();
  }

  resume(): void {
    this.#loop.resume();
  }

  /**
   * Forgets the cursor at the next safe point: the stream is read again from its start (LWW makes
   * replays harmless). The caller requests a repair alongside.
   * @throws {IllegalStateError} when the tailer stopped first; what committing the cursor throws.
   */
  resync(): Promise<void> {
    return this.#loop.resync();
  }

  status(): TailerStatus {
    return {
      state: this.#loop.state.kind,
      cursor: this.#pipeline.committed,
      lagMs: this.#lag.ms(this.#clock.now()),
      lagEvents: this.#lag.events,
      catchingUp: !this.#caughtUp,
      paused: this.#loop.paused,
      backpressured: this.#backpressured,
      lastEventAt: this.#lastEventAt,
      lastError: this.#applyError ?? this.#readError,
      lastCommitAt: this.#lastCommitAt,
      commitFailures: this.#commitFailures,
    };
  }

  #enter(next: TailerState): void {
    this.#loop.enter(next);
  }

  /** The signal of every wait in this turn of the loop: aborted by a request or by stop. */
  #waitSignal(): AbortSignal {
    return this.#loop.waitSignal;
  }

  get #stopping(): boolean {
    return this.#loop.stopping;
  }

  /** True when a request waits for the loop (it then drops what it read meanwhile). */
  get #requested(): boolean {
    return this.#loop.requested;
  }

  /** One turn of the loop: a read and, if it brought entries, one batch into the pipeline. */
  async #step(): Promise<void> {
    if (!(await this.#awaitPeer())) return;
    await this.#checkStreamIfDue();
    const { cursor, rewound } = await this.#pipeline.nextPosition();
    if (rewound) {
      await this.#backOff(); // the failure was logged when it happened
      return;
    }
    const hot = this.#ctx.hotPath();
    const size = hot.adaptiveBatchSize ? this.#sizer.size : hot.batchSize;
    const sloMs = this.#ctx.slo().maxStreamReadLatencyMs;
    const catchingUp = !this.#caughtUp;
    const { entries, cut } = await this.#reader.read(
      cursor,
      size,
      catchingUp ? { sloMs } : { blockMs: hot.blockTimeoutMs, sloMs },
    );
    if (this.#requested) {
      // A safe point: nothing of this read was applied, so dropping it skips nothing.
      this.#reader.dropReadAhead();
      return;
    }
    this.#readError = undefined;
    this.#readFailing.ok();
    this.#lag.observeRead(cursor, this.#pipeline.committed, entries);
    if (entries.length === 0) {
      this.#caughtUp = true;
      this.#enter({ kind: 'live' });
      this.#publishLag();
      return;
    }
    // Cut short by its byte budget (hot_path.max_batch_bytes): more wait, as after a full read.
    const full = entries.length >= size || cut;
    this.#caughtUp = !full;
    this.#enter({ kind: full ? 'catching-up' : 'live' });
    const last = entries[entries.length - 1]!.id;
    if (full) this.#reader.readAhead(last, hot.adaptiveBatchSize ? this.#sizer.size : size, sloMs);
    const batch = this.#decode(entries);
    if (full) this.#fullBatches.add(batch);
    this.#lastEventAt = this.#clock.now();
    this.#publishLag();
    await this.#rateLimit(entries.length);
    if (this.#stopping) return;
    await this.#pipeline.submit({ after: cursor, firstId: entries[0]!.id, batch });
  }

  #decode(entries: readonly RawEntry[]): DecodedBatch {
    return decodeEntries(entries, this.#peerId, this.#ctx, this.#clock.now());
  }

  /** Waits until the peer can be read; false when a request or stop came first. */
  async #awaitPeer(): Promise<boolean> {
    const kind = this.#loop.state.kind;
    if (kind === 'paused' || kind === 'backing-off') this.#enter({ kind: 'waiting' });
    const ready = await this.#stream.ready(this.#waitSignal());
    return ready && !this.#requested;
  }

  /**
   * After a failure (`error`, or a batch's, already logged): every batch in flight settles, then a
   * wait; reading resumes from the committed cursor.
   */
  async #backOff(error?: unknown): Promise<void> {
    if (error !== undefined) {
      this.#readError = describeError(error);
      this.#readFailing.fail({ err: this.#readError });
    }
    await this.#pipeline.nextPosition();
    this.#reader.dropReadAhead();
    this.#caughtUp = false;
    this.#infoDue = 0;
    this.#enter({
      kind: 'backing-off',
      error: this.#applyError ?? this.#readError ?? 'a batch failed',
    });
    this.#publishLag();
    await this.#clock.sleep(this.#backoff.next(), this.#waitSignal());
  }

  /** Paused: the batches in flight land, then only the lag is measured, every couple of seconds. */
  async #whilePaused(): Promise<void> {
    if (this.#loop.state.kind !== 'paused') {
      this.#reader.dropReadAhead();
      await this.#pipeline.settle();
      this.#enter({ kind: 'paused' });
      // Once resumed: read as if catching up, and check the stream first.
      this.#caughtUp = false;
      this.#infoDue = 0;
    }
    await this.#measureLag();
    await this.#clock.sleep(INFO_INTERVAL_MS, this.#waitSignal());
  }

  /** XINFO (and the first waiting entry) for the lag; a failure only leaves the lag as it was. */
  async #measureLag(): Promise<void> {
    try {
      const info = await this.#reader.info();
      this.#lag.observeInfo(this.#pipeline.committed, info);
      if (this.#lag.events > 0 && this.#lag.nextId === undefined) {
        this.#lag.observeNext(await this.#reader.firstAfter(this.#pipeline.committed));
      }
      this.#publishLag();
      this.#readError = undefined;
    } catch (error) {
      this.#readError = describeError(error);
    }
  }

  async #resetToStart(): Promise<void> {
    await this.#pipeline.reset(STREAM_START);
    this.#reader.forget();
    this.#lag.reset();
    this.#caughtUp = false;
    this.#infoDue = 0;
  }

  /** Re-reads XINFO on (re)start, after a failure and every couple of seconds: gaps, lag. */
  async #checkStreamIfDue(): Promise<void> {
    const now = this.#clock.now();
    if (now < this.#infoDue) return;
    // Judge the stream against what is committed: wait for what is in flight first.
    await this.#pipeline.settle();
    const committed = this.#pipeline.committed;
    const { info, verdict } = await this.#reader.check(committed);
    this.#infoDue = now + INFO_INTERVAL_MS;
    if (verdict.gap) {
      this.#ctx.metrics.streamGapsTotal.inc({ peer_id: this.#peerId, kind: verdict.kind });
      this.#log.warn(
        { kind: verdict.kind, detail: verdict.detail, reset_to: verdict.resetTo },
        'gap in peer stream',
      );
      this.#reader.dropReadAhead();
      await this.#pipeline.reset(verdict.resetTo);
      this.#lag.reset();
      this.#caughtUp = false;
      this.#ctx.onGap(this.#peerId, verdict);
    }
    this.#lag.observeInfo(this.#pipeline.committed, info);
    this.#publishLag();
  }

  #publishLag(): void {
    this.#lagReport.publish(this.#lag.ms(this.#clock.now()), this.#lag.events);
  }

  #checkFlushSlo(flushMs: number, events: number): void {
    const sloMs = this.#ctx.slo().maxBatchFlushLatencyMs;
    if (flushMs <= sloMs) {
      this.#flushOverSlo.ok();
      return;
    }
    this.#ctx.metrics.sloViolationsTotal.inc({ peer_id: this.#peerId, slo_type: 'batch_flush' });
    this.#flushOverSlo.fail({ ms: Math.round(flushMs), slo_ms: sloMs, events });
  }

  #recordBatch(batch: object, ok: boolean, flushMs: number): void {
    if (!this.#ctx.hotPath().adaptiveBatchSize) return;
    const full = this.#fullBatches.has(batch);
    this.#ctx.metrics.adaptiveBatchSize.set(
      { peer_id: this.#peerId },
      this.#sizer.record({ full, flushMs, ok }),
    );
  }

  async #rateLimit(n: number): Promise<void> {
    const wait = this.#ctx.rateLimit.reserve(n);
    if (wait > 0) await this.#clock.sleep(wait, this.#loop.stopSignal);
  }

  #commitCursor(streamId: string): void {
    try {
      this.#ctx.cursors.commit(this.#peerId, streamId, {
        entriesAdded: this.#reader.entriesAdded,
      });
      this.#ctx.metrics.cursorPersistsTotal.inc({ peer_id: this.#peerId, status: 'success' });
      this.#lastCommitAt = this.#clock.now();
      this.#commitFailures = 0;
    } catch (error) {
      this.#commitFailures += 1;
      this.#ctx.metrics.cursorPersistsTotal.inc({ peer_id: this.#peerId, status: 'failure' });
      throw error;
    }
  }
}
