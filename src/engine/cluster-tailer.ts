/**
 * The hot path for a cluster peer (docs/CLUSTER.md, "Tailing a cluster peer"): the peer's P
 * partition streams, each with its own cursor (committed as (peer, stream) in the cursor store)
 * and its own {@link ApplyPipeline} — the one rule: a partition's cursor is committed only past
 * what was applied, and its failure rewinds only that partition. The partitions are grouped by
 * the master serving their slot; each shard is read in rounds, one pipelined `XRANGE` per
 * partition on the shard's bounded connection ({@link PartitionSource}), and a round that finds
 * nothing waits before the next (50 ms rising to `min(block_timeout, 1 s)`). A `MOVED` re-reads
 * the shard map and the partition is read where it now lives, from its own cursor: nothing is
 * skipped. Every couple of seconds the rounds pause at a safe point for the streams' XINFO
 * (gaps, lag per partition). Pause, resume, resync and stop are taken between rounds, like the
 * single-stream {@link Tailer}'s.
 */
import { STREAM_START, compareStreamIds } from '../codec/stream-id.js';
import type { Logger } from '../observability/logger.js';
import { RepeatingWarning } from '../observability/repeating-warning.js';
import { ApplyPipeline } from './apply-pipeline.js';
import { Backoff, sleep } from './backoff.js';
import { applyBatch, countCommitted, type BatchStats } from './batch-apply.js';
import type { DecodedBatch } from './batch.js';
import { LagReport } from './lag-report.js';
import type { PartitionSource } from './partition-streams.js';
import { describeError } from '../redis/connect.js';
import type { ShardAddress, ShardMap } from './shard-map.js';
import { detectGap, type StreamInfo } from './stream-gap.js';
import { TailerLoop } from './tailer-loop.js';
import { StreamLag } from './stream-lag.js';
import {
  GAP_SHOWN_MS,
  applyContext,
  decodeEntries,
  type PartitionStatus,
  type PeerTailer,
  type TailerClock,
  type TailerContext,
  type TailerState,
  type TailerStatus,
} from './tailer.js';

/** How often the rounds stop for the streams' XINFO (gaps, lag). */
const INFO_INTERVAL_MS = 2000;
/** The first wait after a round that found nothing; it doubles up to {@link MAX_IDLE_MS}. */
const IDLE_BASE_MS = 50;
/** The longest wait between rounds that find nothing (a first write after a quiet spell waits no longer). */
const MAX_IDLE_MS = 1000;
/** Unhealthy partitions listed in health, at most. */
const LISTED = 16;
/**
 * Rounds' worth of `max_batch_bytes` one shard's batches may hold, read and not yet applied,
 * before its next round waits for applies: with the round being read, what a cluster peer makes
 * this node hold stays within (4 + 1) × `max_batch_bytes` (and one entry) per shard.
 */
const HELD_ROUNDS = 4;

const REAL_CLOCK: TailerClock = { now: () => Date.now(), sleep };

/** One partition stream of the peer. */
interface Partition {
  readonly path: string;
  readonly key: string;
  readonly pipeline: ApplyPipeline<BatchStats>;
  readonly lag: StreamLag;
  readonly backoff: Backoff;
  memory: { entriesAdded: number | null; acknowledgedDeletedId?: string };
  caughtUp: boolean;
  /** Not read before this (after a failure of its own), tailer clock ms. */
  retryAt: number;
  applyError: string | undefined;
  readError: string | undefined;
  lastCommitAt: number | null;
  commitFailures: number;
  lastEventAt: number | null;
  gapAt: number | null;
}

/** Tails every partition stream of one cluster peer. */
export class ClusterTailer implements PeerTailer {
  readonly #peerId: string;
  readonly #ctx: TailerContext;
  readonly #clock: TailerClock;
  readonly #log: Logger;
  readonly #source: PartitionSource;
  readonly #lagReport: LagReport;
  readonly #backoff = new Backoff({ baseMs: 100, maxMs: 5000 });
  /** Per shard: after a failed round, and between rounds that find nothing. */
  readonly #shardBackoff = new Map<ShardAddress, { failed: Backoff; idle: Backoff }>();
  /** The state machine and the requests (pause, resync, stop) the loop takes up. */
  readonly #loop: TailerLoop;
  /** Per shard: bytes of the batches read from it and not yet applied, and who waits for less. */
  readonly #held = new Map<ShardAddress, { bytes: number; waiters: (() => void)[] }>();
  readonly #heldBy = new WeakMap<DecodedBatch, { shard: ShardAddress; bytes: number }>();
  /** Where each shard's next round starts in its list of partitions (turns, so none starves). */
  readonly #turn = new Map<ShardAddress, number>();
  #partitions: Partition[] | undefined;
  #map: ShardMap | undefined;
  /** A read was answered MOVED (or a shard failed): the map is re-read before the next rounds. */
  #mapStale = false;
  #backpressured = false;
  #readError: string | undefined;
  readonly #applyFailing: RepeatingWarning;
  readonly #readFailing: RepeatingWarning;

  constructor(peerId: string, source: PartitionSource, ctx: TailerContext) {
    this.#peerId = peerId;
    this.#source = source;
    this.#ctx = ctx;
    this.#clock = ctx.clock ?? REAL_CLOCK;
    this.#log = ctx.logger;
    this.#loop = new TailerLoop({
      step: () => this.#epoch(),
      whilePaused: () => this.#whilePaused(),
      backOff: (error) => this.#backOff(error),
      resetToStart: () => this.#resetToStart(),
      settle: () => this.#settleAll(),
    });
    const now = (): number => this.#clock.now();
    this.#lagReport = new LagReport(peerId, ctx.metrics, ctx.slo, this.#log, now);
    this.#applyFailing = new RepeatingWarning(
      this.#log,
      'batch apply failed; reading the partition again from its committed cursor',
      { recovered: 'batches apply again', now },
    );
    this.#readFailing = new RepeatingWarning(this.#log, 'hot path error; backing off', {
      recovered: 'the peer streams read again',
      now,
    });
  }

  get state(): TailerState {
    return this.#loop.state;
  }

  get paused(): boolean {
    return this.#loop.paused;
  }

  start(): void {
    this.#loop.start();
  }

  async stop(): Promise<void> {
    await this.#loop.stop();
    this.#source.close();
  }

  peerUp(): void {
    this.#readError = undefined;
    if (this.#loop.state.kind !== 'backing-off') return;
    this.#backoff.reset();
    this.#loop.wakeUp();
  }

  pause(): void {
    this.#loop.pause();
  }

  resume(): void {
    this.#loop.resume();
  }

  resync(): Promise<void> {
    return this.#loop.resync();
  }

  status(): TailerStatus {
    const now = this.#clock.now();
    const parts = this.#partitions ?? [];
    const views = parts.map((p) => ({ p, lagMs: p.lag.ms(now) }));
    // The worst partition speaks for the peer's lag and progress ("no progress" is judged on it).
    const worst = views.reduce<(typeof views)[number] | undefined>(
      (w, v) => (w === undefined || v.lagMs > w.lagMs ? v : w),
      undefined,
    );
    const behind = views.filter((v) => v.p.lag.events > 0);
    const maxLag = this.#ctx.slo().maxReplicationLagMs;
    const recentGap = (p: Partition): boolean => p.gapAt !== null && now - p.gapAt < GAP_SHOWN_MS;
    const failing = parts.filter((p) => (p.applyError ?? p.readError) !== undefined);
    const unhealthy = views
      .filter(
        (v) =>
          v.lagMs > maxLag || (v.p.applyError ?? v.p.readError) !== undefined || recentGap(v.p),
      )
      .sort((a, b) => b.lagMs - a.lagMs)
      .slice(0, LISTED)
      .map(({ p, lagMs }): PartitionStatus => ({
        partition: p.path,
        cursor: p.pipeline.committed,
        lagMs,
        lagEvents: p.lag.events,
        lastError: p.applyError ?? p.readError,
        gapAt: recentGap(p) ? p.gapAt : null,
      }));
    const lastCommit = max(parts.map((p) => p.lastCommitAt));
    const oldest = parts
      .map((p) => p.pipeline.committed)
      .reduce<string | undefined>(
        (o, c) => (o === undefined || compareStreamIds(c, o) < 0 ? c : o),
        undefined,
      );
    const firstError = failing[0];
    return {
      state: this.#loop.state.kind,
      cursor: oldest ?? STREAM_START,
      lagMs: worst?.lagMs ?? 0,
      lagEvents: parts.reduce((n, p) => n + p.lag.events, 0),
      catchingUp: parts.length === 0 || parts.some((p) => !p.caughtUp),
      paused: this.#loop.paused,
      backpressured: this.#backpressured,
      lastEventAt: max(parts.map((p) => p.lastEventAt)),
      lastError:
        this.#readError ??
        (firstError === undefined
          ? undefined
          : `partition ${firstError.path}: ${firstError.applyError ?? firstError.readError}`),
      lastCommitAt:
        worst !== undefined && worst.p.lag.events > 0 ? worst.p.lastCommitAt : lastCommit,
      commitFailures: Math.max(0, ...parts.map((p) => p.commitFailures)),
      partitions: {
        count: parts.length,
        behind: behind.length,
        withGap: parts.filter(recentGap).length,
        failing: failing.length,
        unhealthy,
      },
    };
  }

  #enter(next: TailerState): void {
    this.#loop.enter(next);
  }

  get #stopping(): boolean {
    return this.#loop.stopping;
  }

  get #requested(): boolean {
    return this.#loop.requested;
  }

  /**
   * Rounds on every shard until the next stream check is due, a read was moved, or a request
   * (or stop) comes: then every shard finishes its round and the loop takes it up.
   */
  async #epoch(): Promise<void> {
    const kind = this.#loop.state.kind;
    if (kind === 'paused' || kind === 'backing-off') this.#enter({ kind: 'waiting' });
    if (!(await this.#source.ready(this.#loop.waitSignal)) || this.#requested) return;
    const partitions = await this.#load();
    if (this.#map === undefined || this.#mapStale) {
      this.#mapStale = false;
      this.#map = await this.#source.shards();
    }
    const map = this.#map;
    await this.#checkStreams(partitions, map);
    if (this.#requested) return;
    const epoch = new AbortController();
    const end = (): void => epoch.abort();
    this.#loop.waitSignal.addEventListener('abort', end, { once: true });
    const timer = setTimeout(end, INFO_INTERVAL_MS);
    try {
      const shards = map.group(partitions.map((p) => p.key));
      // A slot no master serves (a failover under way): its partitions wait for a new map.
      if ([...shards.values()].reduce((n, s) => n + s.length, 0) < partitions.length) {
        this.#mapStale = true;
      }
      await Promise.all(
        [...shards].map(([shard, indices]) =>
          this.#rounds(
            shard,
            indices.map((i) => partitions[i]!),
            epoch,
          ),
        ),
      );
    } finally {
      clearTimeout(timer);
      this.#loop.waitSignal.removeEventListener('abort', end);
    }
  }

  /** The peer's partitions from its `store:layout`, with their committed cursors (once). */
  async #load(): Promise<Partition[]> {
    if (this.#partitions !== undefined) return this.#partitions;
    const keys = await this.#source.streams();
    if (keys === undefined) {
      throw new Error(
        "the cluster peer's store has no store:layout yet (not created, or no access)",
      );
    }
    const depth = Math.log2(keys.length) / 4;
    this.#partitions = keys.map((key, i) =>
      this.#partition(key, i.toString(16).padStart(depth, '0')),
    );
    this.#log.info({ partitions: keys.length }, 'tailing the partition streams of a cluster peer');
    return this.#partitions;
  }

  #partition(key: string, path: string): Partition {
    const ctx = this.#ctx;
    const row = ctx.cursors.get(this.#peerId, key);
    const partition: Partition = {
      path,
      key,
      lag: new StreamLag(),
      backoff: new Backoff({ baseMs: 100, maxMs: 5000 }),
      memory: { entriesAdded: row?.entriesAdded ?? null },
      caughtUp: false,
      retryAt: 0,
      applyError: undefined,
      readError: undefined,
      lastCommitAt: null,
      commitFailures: 0,
      lastEventAt: null,
      gapAt: null,
      pipeline: new ApplyPipeline<BatchStats>({
        committed: row?.streamId ?? STREAM_START,
        apply: (batch) =>
          applyBatch(
            batch,
            applyContext(this.#peerId, ctx, {
              log: this.#log,
              signal: this.#loop.stopSignal,
              now: () => this.#clock.now(),
              onBackpressure: (waiting) => (this.#backpressured = waiting),
            }),
          ).finally(() => this.#release(batch)),
        commit: (cursor) => this.#commit(partition, cursor),
        onCommitted: (batch, stats, flushMs) => {
          partition.backoff.reset();
          partition.applyError = undefined;
          this.#applyFailing.ok();
          partition.lag.observeCommit(batch.lastId, batch.read, partition.pipeline.oldestPendingId);
          countCommitted(ctx.metrics, this.#peerId, batch, stats, flushMs);
          this.#publishLag();
        },
        onFailed: (batch, error) => {
          partition.applyError = describeError(error);
          ctx.metrics.batchErrorsTotal.inc({ peer_id: this.#peerId });
          this.#applyFailing.fail({
            partition: path,
            err: partition.applyError,
            events: batch.read,
          });
        },
      }),
    };
    return partition;
  }

  /** Rounds on one shard until `epoch` ends (or a request comes). */
  async #rounds(
    shard: ShardAddress,
    parts: readonly Partition[],
    epoch: AbortController,
  ): Promise<void> {
    const backoff = this.#backoffOf(shard);
    const hot = this.#ctx.hotPath();
    while (!epoch.signal.aborted && !this.#requested) {
      await this.#room(shard, epoch.signal);
      if (epoch.signal.aborted || this.#requested) return;
      const now = this.#clock.now();
      const reads: { partition: Partition; cursor: string }[] = [];
      const turn = this.#turn.get(shard) ?? 0;
      this.#turn.set(shard, (turn + 1) % parts.length);
      for (const partition of [...parts.slice(turn), ...parts.slice(0, turn)]) {
        if (partition.retryAt > now) continue;
        const { cursor, rewound } = await partition.pipeline.nextPosition();
        if (rewound) {
          // Its batch failed (logged then): it alone backs off, then reads from its cursor.
          partition.caughtUp = false;
          partition.retryAt = now + partition.backoff.next();
          continue;
        }
        reads.push({ partition, cursor });
      }
      if (reads.length === 0) {
        const next = Math.min(...parts.map((p) => p.retryAt));
        await this.#clock.sleep(Math.max(IDLE_BASE_MS, next - now), epoch.signal);
        continue;
      }
      const count = hot.batchSize;
      const started = performance.now();
      let replies;
      try {
        replies = await this.#source.read(
          shard,
          reads.map((r) => ({ key: r.partition.key, cursor: r.cursor })),
          count,
        );
      } catch (error) {
        if (this.#stopping) return;
        // The shard failed (down, failing over): re-read the map once it has been waited for.
        this.#readError = `shard ${shard}: ${describeError(error)}`;
        this.#readFailing.fail({ shard, err: describeError(error) });
        this.#mapStale = true;
        await this.#clock.sleep(backoff.failed.next(), epoch.signal);
        epoch.abort();
        return;
      }
      backoff.failed.reset();
      this.#readError = undefined;
      this.#readFailing.ok();
      this.#countRead(reads.length, (performance.now() - started) / 1000);
      // A request came while the round was read: nothing of it is applied, so dropping it skips nothing.
      if (this.#requested) return;
      let found = 0;
      let moved = false;
      for (const [i, reply] of replies.entries()) {
        const { partition, cursor } = reads[i]!;
        if (reply.kind === 'moved') {
          moved = true;
          continue;
        }
        if (reply.kind === 'error') {
          partition.readError = reply.error;
          partition.retryAt = now + partition.backoff.next();
          continue;
        }
        partition.readError = undefined;
        const { entries, cut } = reply;
        if (entries.length === 0) {
          // Cut with nothing kept: the round's budget was spent before it; read it next round.
          if (!cut) partition.lag.observeRead(cursor, partition.pipeline.committed, entries);
          partition.caughtUp = !cut;
          continue;
        }
        partition.lag.observeRead(cursor, partition.pipeline.committed, entries);
        found += entries.length;
        partition.caughtUp = entries.length < count && !cut;
        partition.lastEventAt = this.#clock.now();
        this.#ctx.metrics.cdcEventsReadTotal.inc({ peer_id: this.#peerId }, entries.length);
        this.#ctx.metrics.streamEventsReadTotal.inc({ peer_id: this.#peerId }, entries.length);
        const batch = decodeEntries(entries, this.#peerId, this.#ctx, this.#clock.now());
        this.#hold(shard, batch, reply.bytes);
        await this.#rateLimit(entries.length);
        const accepted =
          !this.#stopping &&
          (await partition.pipeline.submit({ after: cursor, firstId: entries[0]!.id, batch }));
        if (!accepted) this.#release(batch);
        if (this.#stopping) return;
      }
      this.#enter({ kind: reads.every((r) => r.partition.caughtUp) ? 'live' : 'catching-up' });
      this.#publishLag();
      if (moved) {
        // A slot moved: the map is re-read, and each moved partition read there from its cursor.
        this.#mapStale = true;
        epoch.abort();
        return;
      }
      if (found > 0) {
        backoff.idle.reset();
      } else {
        await this.#clock.sleep(backoff.idle.next(), epoch.signal);
      }
    }
  }

  #heldOf(shard: ShardAddress): { bytes: number; waiters: (() => void)[] } {
    let held = this.#held.get(shard);
    if (held === undefined) {
      held = { bytes: 0, waiters: [] };
      this.#held.set(shard, held);
    }
    return held;
  }

  #hold(shard: ShardAddress, batch: DecodedBatch, bytes: number): void {
    this.#heldBy.set(batch, { shard, bytes });
    this.#heldOf(shard).bytes += bytes;
  }

  /** A batch was applied (or will not be): its bytes no longer count against its shard. */
  #release(batch: DecodedBatch): void {
    const held = this.#heldBy.get(batch);
    if (held === undefined) return;
    this.#heldBy.delete(batch);
    const shard = this.#heldOf(held.shard);
    shard.bytes -= held.bytes;
    const waiters = shard.waiters;
    shard.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Waits while the shard's batches not yet applied hold {@link HELD_ROUNDS} rounds' worth. */
  async #room(shard: ShardAddress, signal: AbortSignal): Promise<void> {
    const held = this.#heldOf(shard);
    const limit = HELD_ROUNDS * this.#ctx.hotPath().maxBatchBytes;
    while (held.bytes >= limit && !signal.aborted) {
      await new Promise<void>((resolve) => {
        held.waiters.push(resolve);
        signal.addEventListener('abort', () => resolve(), { once: true });
      });
    }
  }

  #backoffOf(shard: ShardAddress): { failed: Backoff; idle: Backoff } {
    let backoff = this.#shardBackoff.get(shard);
    if (backoff === undefined) {
      const idleMax = Math.max(
        IDLE_BASE_MS,
        Math.min(MAX_IDLE_MS, this.#ctx.hotPath().blockTimeoutMs),
      );
      backoff = {
        failed: new Backoff({ baseMs: 100, maxMs: 5000 }),
        idle: new Backoff({ baseMs: IDLE_BASE_MS, maxMs: idleMax, jitter: 0 }),
      };
      this.#shardBackoff.set(shard, backoff);
    }
    return backoff;
  }

  /**
   * The streams' XINFO, pipelined per shard, judged against what each partition committed (what
   * is in flight settles first): a gap resets that partition's cursor and asks for a repair.
   */
  async #checkStreams(
    partitions: readonly Partition[],
    map: ShardMap,
    judge = true,
  ): Promise<void> {
    if (judge) await this.#settleAll();
    const shards = map.group(partitions.map((p) => p.key));
    await Promise.all(
      [...shards].map(async ([shard, indices]) => {
        const parts = indices.map((i) => partitions[i]!);
        let infos;
        try {
          infos = await this.#source.info(
            shard,
            parts.map((p) => p.key),
          );
        } catch (error) {
          this.#readError = `shard ${shard}: ${describeError(error)}`;
          this.#mapStale = true;
          return;
        }
        for (const [j, info] of infos.entries()) {
          const partition = parts[j]!;
          if (info !== undefined && 'error' in info) {
            partition.readError = info.error;
            continue;
          }
          if (judge) await this.#judge(partition, info);
          partition.lag.observeInfo(partition.pipeline.committed, info);
          if (partition.lag.events > 0 && partition.lag.nextId === undefined) {
            // The age of what waits is known once its first entry is (the next read tells it).
            partition.caughtUp = false;
          }
        }
      }),
    );
    this.#publishLag();
  }

  async #judge(partition: Partition, info: StreamInfo | undefined): Promise<void> {
    const verdict = detectGap(partition.pipeline.committed, info, partition.memory);
    if (verdict.gap) {
      if (info?.maxDeletedEntryId !== undefined) {
        partition.memory.acknowledgedDeletedId = info.maxDeletedEntryId;
      }
      if (verdict.kind === 'recreated') {
        partition.memory = {
          entriesAdded: info?.entriesAdded ?? null,
          ...(info?.maxDeletedEntryId !== undefined
            ? { acknowledgedDeletedId: info.maxDeletedEntryId }
            : {}),
        };
      }
      this.#ctx.metrics.streamGapsTotal.inc({ peer_id: this.#peerId, kind: verdict.kind });
      this.#log.warn(
        {
          partition: partition.path,
          kind: verdict.kind,
          detail: verdict.detail,
          reset_to: verdict.resetTo,
        },
        'gap in peer stream',
      );
      await partition.pipeline.reset(verdict.resetTo);
      partition.lag.reset();
      partition.caughtUp = false;
      partition.gapAt = this.#clock.now();
      this.#ctx.onGap(this.#peerId, verdict);
    }
    if (info?.entriesAdded !== undefined) partition.memory.entriesAdded = info.entriesAdded;
  }

  async #backOff(error: unknown): Promise<void> {
    this.#readError = describeError(error);
    this.#readFailing.fail({ err: this.#readError });
    await this.#settleAll();
    for (const p of this.#partitions ?? []) p.caughtUp = false;
    this.#enter({ kind: 'backing-off', error: this.#readError });
    this.#publishLag();
    await this.#clock.sleep(this.#backoff.next(), this.#loop.waitSignal);
  }

  async #whilePaused(): Promise<void> {
    if (this.#loop.state.kind !== 'paused') {
      await this.#settleAll();
      this.#enter({ kind: 'paused' });
      for (const p of this.#partitions ?? []) p.caughtUp = false;
    }
    try {
      if (this.#partitions !== undefined && this.#map !== undefined) {
        await this.#checkStreams(this.#partitions, this.#map, false);
      }
    } catch (error) {
      this.#readError = describeError(error);
    }
    await this.#clock.sleep(INFO_INTERVAL_MS, this.#loop.waitSignal);
  }

  /** Every partition's cursor back to the start of its stream (every one, else none known yet). */
  async #resetToStart(): Promise<void> {
    const partitions = this.#partitions;
    if (partitions === undefined) {
      this.#ctx.cursors.delete(this.#peerId);
      return;
    }
    for (const p of partitions) {
      await p.pipeline.reset(STREAM_START);
      p.memory = { entriesAdded: p.memory.entriesAdded };
      p.lag.reset();
      p.caughtUp = false;
      p.gapAt = null;
    }
  }

  async #settleAll(): Promise<void> {
    await Promise.all((this.#partitions ?? []).map((p) => p.pipeline.settle()));
  }

  #publishLag(): void {
    const now = this.#clock.now();
    const parts = this.#partitions ?? [];
    this.#lagReport.publish(
      Math.max(0, ...parts.map((p) => p.lag.ms(now))),
      parts.reduce((n, p) => n + p.lag.events, 0),
    );
  }

  #countRead(reads: number, seconds: number): void {
    const peer = { peer_id: this.#peerId };
    this.#ctx.metrics.streamReadsTotal.inc(peer, reads);
    this.#ctx.metrics.streamReadDurationSeconds.observe(peer, seconds);
  }

  async #rateLimit(n: number): Promise<void> {
    const wait = this.#ctx.rateLimit.reserve(n);
    if (wait > 0) await this.#clock.sleep(wait, this.#loop.stopSignal);
  }

  #commit(partition: Partition, streamId: string): void {
    const metrics = this.#ctx.metrics;
    try {
      this.#ctx.cursors.commit(this.#peerId, streamId, {
        stream: partition.key,
        entriesAdded: partition.memory.entriesAdded,
      });
      metrics.cursorPersistsTotal.inc({ peer_id: this.#peerId, status: 'success' });
      partition.lastCommitAt = this.#clock.now();
      partition.commitFailures = 0;
    } catch (error) {
      partition.commitFailures += 1;
      metrics.cursorPersistsTotal.inc({ peer_id: this.#peerId, status: 'failure' });
      throw error;
    }
  }
}

function max(values: readonly (number | null)[]): number | null {
  let out: number | null = null;
  for (const v of values) if (v !== null && (out === null || v > out)) out = v;
  return out;
}
