/**
 * The cold path (SPEC §4): Merkle anti-entropy with each peer. Compare roots; drill down level by
 * level (pipelined, bounded) to the divergent buckets; compare their leaves by the LWW order; fetch
 * only the records where the peer's version wins and apply them. Absence is never deletion: a key
 * the peer lacks is left alone, and a peer tombstone deletes only by winning.
 */
import type { ResolvedColdPath, ResolvedPeer } from '../config/types.js';
import { IllegalStateError } from '../errors.js';
import type { RepairSummary } from '../observability/health.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { RepeatingWarning } from '../observability/repeating-warning.js';
import type { LocalStore } from './local-store.js';
import { Backoff, sleep } from './backoff.js';
import {
  inSyncSinceHorizon,
  MAX_BUCKET_FIELDS,
  runRepair,
  type RepairReport,
} from './merkle-repair.js';
import { describeError } from '../redis/connect.js';
import type { PeerLink } from './peer-link.js';

export { divergentChildren, type RepairChange, type RepairReport } from './merkle-repair.js';

/** How often this node's own tree is brought up to date, so peers comparing with it see fresh hashes. */
const REFRESH_INTERVAL_MS = 250;
/**
 * While a hot path catches up on a backlog, the tree is refreshed at most this often: every
 * refresh re-hashes the ancestors of every bucket the backlog touched (the fewer refreshes, the
 * more of that work is shared), and peers read the dirty keys' buckets directly.
 */
const BUSY_REFRESH_INTERVAL_MS = 10_000;
/**
 * ...and for at most this long (a store that supports a budget): settling a key costs about what
 * applying it does, so an unbounded refresh during a long catch-up ran as long as the backlog
 * lasted and halved its speed. A tenth of the time keeps the tree moving while the backlog drains.
 */
const BUSY_REFRESH_BUDGET_MS = 1_000;

/** Options of one repair. */
export interface RepairOptions {
  /** Report what would change without changing anything. @default false */
  readonly dryRun?: boolean;
  /** Override `max_items_per_cycle` for this run. */
  readonly maxItems?: number;
}

/** What the cold path needs to know about one peer. */
export interface ColdPeer {
  readonly link: PeerLink;
  readonly config: ResolvedPeer;
  /** The peer's hot path is reading a backlog: scheduled cycles wait (requested ones do not). */
  readonly catchingUp: () => boolean;
  /** An operator paused the peer: scheduled cycles wait (requested ones do not). */
  readonly paused?: () => boolean;
}

/** Collaborators of the cold path. */
export interface ColdPathContext {
  readonly localNodeId: string;
  readonly settings: () => ResolvedColdPath;
  /** Bound on a fetched record's decompressed content (`store.max_item_bytes`). */
  readonly maxItemBytes: number;
  /**
   * Versions dated further ahead of the local clock are held back, and a peer whose clock is
   * further off is warned about (`store.max_clock_skew`). @default 5 minutes
   */
  readonly maxClockSkewMs?: number;
  readonly store: LocalStore;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly peer: (peerId: string) => ColdPeer | undefined;
  readonly peers: () => readonly ResolvedPeer[];
  readonly onReport: (report: RepairReport) => void;
}

interface PeerSchedule {
  nextDueAt: number;
  requested: string | undefined;
  /** Set while the peer is backed off after failures; cleared by a successful repair. */
  failures: Backoff | undefined;
  last: RepairSummary | null;
  /** Where the next budgeted cycle resumes in key order, so no winner is starved. */
  resumeAfter: string | undefined;
  /** When a held-back record of the peer comes within the clock bound: a repair is requested then. */
  heldBackDueAt: number | undefined;
  /** When the peer's clock offset, and its held-back records, were last warned about. */
  offsetWarnedAt: number;
  heldBackWarnedAt: number;
}

/** A peer clock off by more than the bound is warned about at most this often. */
const OFFSET_WARN_INTERVAL_MS = 60_000;
const DEFAULT_MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;

/** Runs repair cycles with every peer on a schedule, and on request. */
export class ColdPath {
  readonly #ctx: ColdPathContext;
  #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #refresher: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  readonly #schedule = new Map<string, PeerSchedule>();
  readonly #running = new Map<string, Promise<RepairReport>>();
  /** Per peer, while it keeps serving records that look like purged deletes. */
  readonly #stale = new Map<string, RepeatingWarning>();
  /** Per peer, while its tree holds buckets too large to read (`oversized_bucket`). */
  readonly #oversized = new Map<string, RepeatingWarning>();

  constructor(ctx: ColdPathContext) {
    this.#ctx = ctx;
  }

  /**
   * Starts the loop and the local tree refresher; idempotent. Scheduled cycles run only while
   * `cold_path.enabled`; requested repairs (gap, resync) always do.
   */
  start(): void {
    if (this.#abort.signal.aborted) this.#abort = new AbortController();
    this.#loop ??= this.#run();
    this.#refresher ??= this.#refresh();
  }

  /** Stops scheduling; a repair in progress finishes first. Idempotent. */
  async stop(): Promise<void> {
    this.#abort.abort();
    this.#wake?.();
    await Promise.allSettled([this.#loop, this.#refresher, ...this.#running.values()]);
    this.#loop = undefined;
    this.#refresher = undefined;
  }

  /** Asks for a repair of `peerId` as soon as possible (even while its hot path catches up). */
  request(peerId: string, reason: string): void {
    this.#entry(peerId).requested = reason;
    // A gap must never go unrepaired, even if nobody started the loop (scheduled cycles off).
    if (this.#loop === undefined && !this.#abort.signal.aborted) this.start();
    this.#wake?.();
  }

  /**
   * Asks for a repair of `peerId` at `atMs` (a record held back for its clock comes within the
   * bound then); the earliest of several requests counts. Runs even with scheduled cycles off.
   */
  requestAt(peerId: string, atMs: number): void {
    const entry = this.#entry(peerId);
    entry.heldBackDueAt = Math.min(entry.heldBackDueAt ?? Infinity, atMs);
    if (this.#loop === undefined && !this.#abort.signal.aborted) this.start();
  }

  /**
   * The hot path refused `count` live records of `peerId` that look like purged deletes (outcome
   * `purged`): counted when the peer is not in sync since the purge horizon (a stale peer), and a
   * repair is requested either way, which applies them from a peer in sync since (late records) or
   * supersedes them with tombstones (docs/PROTOCOL.md §6).
   */
  async refusedOnHotPath(peerId: string, count: number): Promise<void> {
    const gc = await this.#ctx.store.tombstones?.gcState().catch(() => undefined);
    if (!inSyncSinceHorizon(gc, peerId)) this.#countStale(peerId, count, 'hot path');
    this.request(peerId, 'records older than the purge horizon refused on the hot path');
  }

  #countStale(peerId: string, count: number, path: string): void {
    this.#ctx.metrics.resurrectionsPreventedTotal.inc({ peer_id: peerId }, count);
    let warning = this.#stale.get(peerId);
    if (warning === undefined) {
      warning = new RepeatingWarning(
        this.#ctx.logger.child({ peer_id: peerId }),
        'refused records of a peer not in sync since the purge horizon: they look like deletes purged here (the peer is stale; it is sent superseding tombstones)',
        { recovered: 'the stale peer converged to the deletes (a repair acknowledged it)' },
      );
      this.#stale.set(peerId, warning);
    }
    warning.fail({ peer_id: peerId, refused: count, path });
  }

  /** The last repair with `peerId`, for health. */
  lastRepair(peerId: string): RepairSummary | null {
    return this.#schedule.get(peerId)?.last ?? null;
  }

  /**
   * Runs one repair with `peerId` now (sharing one already running with the same options).
   * A failure is counted and backs the peer off, then rethrown.
   * @throws {IllegalStateError} for an unknown peer; the peer's failure otherwise.
   */
  repair(peerId: string, options: RepairOptions = {}): Promise<RepairReport> {
    return this.#shared(peerId, options.dryRun === true, options.maxItems, undefined);
  }

  #shared(
    peerId: string,
    dryRun: boolean,
    maxItems: number | undefined,
    reason: string | undefined,
  ): Promise<RepairReport> {
    const key = `${peerId}:${dryRun}:${maxItems ?? ''}`;
    const running = this.#running.get(key);
    if (running !== undefined) return running;
    const run = this.#accounted(peerId, dryRun, maxItems, reason).finally(() =>
      this.#running.delete(key),
    );
    this.#running.set(key, run);
    return run;
  }

  #entry(peerId: string): PeerSchedule {
    let entry = this.#schedule.get(peerId);
    if (entry === undefined) {
      // First cycle soon after start (a restarted node repairs early), then every interval.
      const first = Math.min(this.#ctx.settings().intervalMs, 2000);
      entry = {
        nextDueAt: Date.now() + first,
        requested: undefined,
        failures: undefined,
        last: null,
        resumeAfter: undefined,
        heldBackDueAt: undefined,
        offsetWarnedAt: 0,
        heldBackWarnedAt: 0,
      };
      this.#schedule.set(peerId, entry);
    }
    return entry;
  }

  async #refresh(): Promise<void> {
    const signal = this.#abort.signal;
    let last = 0;
    // Fails every 250 ms while the local Redis is down: one line when it starts, one when it ends.
    const failing = new RepeatingWarning(
      this.#ctx.logger,
      'refreshing the local Merkle tree failed',
      {
        recovered: 'refreshing the local Merkle tree works again',
      },
    );
    while (!signal.aborted) {
      try {
        const busy = this.#ctx.peers().some((p) => this.#ctx.peer(p.nodeId)?.catchingUp() === true);
        const store = this.#ctx.store;
        if (!busy) {
          await store.merkleRoot();
          last = Date.now();
        } else if (Date.now() - last >= BUSY_REFRESH_INTERVAL_MS) {
          await store.refreshMerkle({ budgetMs: BUSY_REFRESH_BUDGET_MS });
          last = Date.now();
        }
        failing.ok();
      } catch (error) {
        failing.fail({ err: describeError(error) });
      }
      await sleep(REFRESH_INTERVAL_MS, signal);
    }
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      const settings = this.#ctx.settings();
      const peers = [...this.#ctx.peers()].sort((a, b) => a.priority - b.priority);
      for (const id of this.#schedule.keys()) {
        if (!peers.some((p) => p.nodeId === id)) this.#schedule.delete(id);
      }
      for (const config of peers) {
        if (signal.aborted) break;
        const entry = this.#entry(config.nodeId);
        const now = Date.now();
        if (entry.heldBackDueAt !== undefined && entry.heldBackDueAt <= now) {
          entry.heldBackDueAt = undefined;
          entry.requested ??= 'held-back record in range';
        }
        // A request runs at once unless the peer is backed off; then it waits for the backoff.
        const backedOff = entry.failures !== undefined && entry.nextDueAt > now;
        const requested = entry.requested !== undefined && !backedOff;
        if (requested || (settings.enabled && entry.nextDueAt <= now)) {
          await this.#scheduled(config.nodeId, entry, requested);
        }
      }
      let nextWake = Date.now() + settings.intervalMs;
      for (const config of peers) {
        const entry = this.#schedule.get(config.nodeId);
        if (entry !== undefined && (settings.enabled || entry.requested !== undefined)) {
          nextWake = Math.min(nextWake, entry.nextDueAt);
        }
        if (entry?.heldBackDueAt !== undefined) nextWake = Math.min(nextWake, entry.heldBackDueAt);
      }
      // Wake at least every second, so settings changed by a hot reload apply promptly.
      const delay = Math.min(1000, Math.max(50, nextWake - Date.now()));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        timer.unref();
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  async #scheduled(peerId: string, entry: PeerSchedule, requested: boolean): Promise<void> {
    const ctx = this.#ctx;
    const peer = ctx.peer(peerId);
    const settings = ctx.settings();
    const skip = (reason: string, retryMs: number): void => {
      ctx.metrics.repairSkippedTotal.inc({ peer_id: peerId, reason });
      entry.nextDueAt = Date.now() + retryMs;
    };
    if (peer === undefined) return;
    if (!peer.link.connected) return skip('disconnected', Math.min(settings.intervalMs, 1000));
    if (peer.link.breaker.state === 'open') {
      return skip('circuit_open', Math.max(100, peer.link.breaker.msUntilHalfOpen()));
    }
    if (!requested && peer.paused?.() === true) return skip('paused', settings.intervalMs);
    if (!requested && peer.catchingUp()) return skip('catching_up', settings.intervalMs);
    const reason = entry.requested;
    entry.requested = undefined;
    try {
      const report = await this.#shared(peerId, false, undefined, reason ?? 'scheduled');
      // Budget left work behind: come back soon rather than after a full interval.
      entry.nextDueAt =
        Date.now() +
        (report.deferred > 0 ? Math.min(settings.intervalMs, 1000) : settings.intervalMs);
      // A request (a gap, a rebuild) is done only when nothing was left for later, even with
      // scheduled cycles off.
      if (reason !== undefined && report.deferred > 0) entry.requested ??= reason;
    } catch {
      // Counted, logged and backed off by #accounted; a request survives the failure.
      if (reason !== undefined && entry.requested === undefined) entry.requested = reason;
    }
  }

  get #maxClockSkewMs(): number {
    return this.#ctx.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS;
  }

  /**
   * What a repair refused of the peer (bodies, leaves, clocks) and the peer's clock offset: counted,
   * logged, and a held-back record's repair requested for when it comes within the bound.
   */
  #countTrust(peerId: string, entry: PeerSchedule, report: RepairReport): void {
    const m = this.#ctx.metrics;
    const log = this.#ctx.logger;
    const labels = { peer_id: peerId };
    for (const [reason, count] of Object.entries(report.rejected)) {
      m.repairRejectedTotal.inc({ peer_id: peerId, reason }, count);
      if (reason === 'oversized_bucket') continue; // one warning while it lasts, below
      log.warn({ peer_id: peerId, reason, count }, "repair refused records of the peer's tree");
    }
    this.#countOversized(peerId, report);
    const now = Date.now();
    if (report.heldBack > 0) {
      m.clockSkewRejectedTotal.inc(labels, report.heldBack);
      if (now - entry.heldBackWarnedAt >= OFFSET_WARN_INTERVAL_MS) {
        entry.heldBackWarnedAt = now;
        log.warn(
          { peer_id: peerId, held_back: report.heldBack, due_at_ms: report.heldBackDueAt },
          'repair held back records dated beyond store.max_clock_skew; applied once in range',
        );
      }
      if (report.heldBackDueAt !== undefined) this.requestAt(peerId, report.heldBackDueAt);
    }
    if (report.clockOffsetMs === undefined) return;
    m.peerClockOffsetSeconds.set(labels, report.clockOffsetMs / 1000);
    if (
      Math.abs(report.clockOffsetMs) > this.#maxClockSkewMs &&
      now - entry.offsetWarnedAt >= OFFSET_WARN_INTERVAL_MS
    ) {
      entry.offsetWarnedAt = now;
      m.sloViolationsTotal.inc({ peer_id: peerId, slo_type: 'clock_offset' });
      log.warn(
        { peer_id: peerId, offset_ms: report.clockOffsetMs, max_ms: this.#maxClockSkewMs },
        "the peer's clock is off by more than store.max_clock_skew",
      );
    }
  }

  /**
   * A peer whose tree holds buckets beyond the bound every repair meets them again: warned once
   * when it starts (with the buckets and their sizes), then at most every 30 s, and once when a
   * repair finds none.
   */
  #countOversized(peerId: string, report: RepairReport): void {
    const count = report.rejected.oversized_bucket ?? 0;
    let warning = this.#oversized.get(peerId);
    if (count === 0) {
      warning?.ok({ peer_id: peerId });
      return;
    }
    if (warning === undefined) {
      warning = new RepeatingWarning(
        this.#ctx.logger.child({ peer_id: peerId }),
        `the peer's Merkle tree holds buckets of more than ${MAX_BUCKET_FIELDS} fields: refused unread, their keys are not repaired from this peer (a broken or hostile peer)`,
        { recovered: "the peer's Merkle buckets are within the bound again" },
      );
      this.#oversized.set(peerId, warning);
    }
    warning.fail({ peer_id: peerId, buckets: count, largest: report.oversizedBuckets });
  }

  /** One repair, with its outcome recorded: metrics, health, backoff, the cycle's log line. */
  async #accounted(
    peerId: string,
    dryRun: boolean,
    maxItems: number | undefined,
    reason: string | undefined,
  ): Promise<RepairReport> {
    const ctx = this.#ctx;
    const started = performance.now();
    const peer = ctx.peer(peerId);
    if (peer === undefined) throw new IllegalStateError(`no peer ${JSON.stringify(peerId)}`);
    const entry = this.#entry(peerId);
    let report: RepairReport;
    try {
      report = await runRepair(
        ctx.store,
        {
          peerId,
          link: peer.link,
          redisPrefix: peer.config.redisPrefix,
          maxItemBytes: ctx.maxItemBytes,
        },
        {
          dryRun,
          budget: Math.max(0, maxItems ?? ctx.settings().maxItemsPerCycle),
          resumeAfter: entry.resumeAfter,
          maxClockSkewMs: this.#maxClockSkewMs,
        },
      );
    } catch (error) {
      if (dryRun) throw error;
      const settings = ctx.settings();
      entry.failures ??= new Backoff({
        baseMs: settings.backoffBaseMs,
        maxMs: settings.backoffMaxMs,
      });
      const wait = entry.failures.next();
      entry.nextDueAt = Date.now() + wait;
      const err = describeError(error);
      ctx.metrics.repairErrorsTotal.inc({ peer_id: peerId });
      ctx.logger.warn({ peer_id: peerId, err, retry_ms: wait }, 'repair failed; backing off');
      entry.last = {
        finished_at_ms: Date.now(),
        duration_ms: Math.round(performance.now() - started),
        outcome: 'error',
        in_sync: false,
        divergent_keys: 0,
        items_fetched: 0,
        items_applied: 0,
        error: err,
      };
      throw error;
    }
    if (dryRun) return report;

    const labels = { peer_id: peerId };
    const m = ctx.metrics;
    entry.failures = undefined;
    entry.resumeAfter = report.deferred > 0 ? report.changes.at(-1)?.key : undefined;
    m.repairCyclesTotal.inc(labels);
    m.repairCycleDurationSeconds.observe(labels, report.durationMs / 1000);
    m.repairPeersCheckedTotal.inc();
    if (report.inSync) m.repairPeersInSyncTotal.inc();
    m.repairDivergentKeys.set(labels, report.divergentKeys);
    m.repairItemsTotal.inc(labels, report.divergentKeys);
    m.repairItemsFetchedTotal.inc(labels, report.fetched);
    m.repairItemsSubmittedTotal.inc(labels, report.applied);
    this.#countTrust(peerId, entry, report);
    if (report.refusedOld > 0) this.#countStale(peerId, report.refusedOld, 'repair');
    else if (report.acknowledged) this.#stale.get(peerId)?.ok({ peer_id: peerId });
    if (!report.inSync) {
      m.merkleDivergenceTotal.inc(labels);
      m.merkleDivergencesTotal.inc(labels, report.divergentBranches);
    }
    entry.last = {
      finished_at_ms: Date.now(),
      duration_ms: report.durationMs,
      outcome: 'ok',
      in_sync: report.inSync,
      divergent_keys: report.divergentKeys,
      items_fetched: report.fetched,
      items_applied: report.applied,
      error: null,
    };
    if (report.applied > 0 || report.deferred > 0) {
      ctx.logger.info(
        {
          peer_id: peerId,
          reason: reason ?? 'manual',
          divergent_keys: report.divergentKeys,
          fetched: report.fetched,
          applied: report.applied,
          deferred: report.deferred,
          round_trips: report.peerRoundTrips,
          ms: report.durationMs,
        },
        'repair cycle',
      );
    }
    ctx.onReport(report);
    return report;
  }
}
