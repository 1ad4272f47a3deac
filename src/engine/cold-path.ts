/**
 * The cold path (SPEC §4): Merkle anti-entropy with each peer. Compare roots; drill down level by
 * level (pipelined, bounded) to the divergent buckets; compare their leaves by the LWW order; fetch
 * only the records where the peer's version wins and apply them. Absence is never deletion: a key
 * the peer lacks is left alone, and a peer tombstone deletes only by winning.
 */
import type { ResolvedColdPath, ResolvedPeer } from '../config/types.js';
import { IllegalStateError } from '../errors.js';
import { compareVersions, type RecordVersion } from '../model/record.js';
import type { RepairSummary } from '../observability/health.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { LocalStore, MerkleNode } from '../store/local-store.js';
import { DEPTH } from '../store/merkle-hash.js';
import { MerkleReader } from '../store/merkle-reader.js';
import { Backoff, sleep } from './backoff.js';
import { describeError, type PeerLink } from './peer-link.js';

/** How many tree paths or keys go into one pipelined request. */
const CHUNK = 512;
/** How often this node's own tree is brought up to date, so peers comparing with it see fresh hashes. */
const REFRESH_INTERVAL_MS = 1000;

/** Options of one repair. */
export interface RepairOptions {
  /** Report what would change without changing anything. @default false */
  readonly dryRun?: boolean;
  /** Override `max_items_per_cycle` for this run. */
  readonly maxItems?: number;
}

/** One key a repair changes (or, dry, would change). */
export interface RepairChange {
  readonly key: string;
  /** The local version, or null when the key is absent here. */
  readonly local: RecordVersion | null;
  readonly peer: RecordVersion;
  /** `delete` when the peer's winning version is a tombstone, `put` otherwise. */
  readonly action: 'put' | 'delete';
}

/** What one repair found and did. */
export interface RepairReport {
  readonly peerId: string;
  readonly dryRun: boolean;
  readonly inSync: boolean;
  /** Tree nodes (interior and buckets) found divergent. */
  readonly divergentBranches: number;
  /** Keys whose versions differ between the two sides (either side newer). */
  readonly divergentKeys: number;
  /** Keys where the peer's version wins: the changes, within the budget. */
  readonly changes: readonly RepairChange[];
  /** Winning peer versions left for later cycles by `max_items_per_cycle`. */
  readonly deferred: number;
  readonly fetched: number;
  readonly applied: number;
  /** Round trips to the peer. */
  readonly peerRoundTrips: number;
  readonly durationMs: number;
}

/** What the cold path needs to know about one peer. */
export interface ColdPeer {
  readonly link: PeerLink;
  readonly config: ResolvedPeer;
  readonly catchingUp: () => boolean;
}

/** Collaborators of the cold path. */
export interface ColdPathContext {
  readonly localNodeId: string;
  readonly settings: () => ResolvedColdPath;
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
  failures: Backoff | undefined;
  last: RepairSummary | null;
}

/** Runs repair cycles with every peer on a schedule, and on request. */
export class ColdPath {
  readonly #ctx: ColdPathContext;
  #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #refresher: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  readonly #schedule = new Map<string, PeerSchedule>();
  readonly #running = new Map<string, Promise<RepairReport>>();

  constructor(ctx: ColdPathContext) {
    this.#ctx = ctx;
  }

  /** Starts the scheduled cycles and the local tree refresher; idempotent. */
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

  /** Asks for a repair of `peerId` as soon as possible, even while its hot path catches up. */
  request(peerId: string, reason: string): void {
    const entry = this.#entry(peerId);
    entry.requested = reason;
    this.#wake?.();
  }

  /** The last repair with `peerId`, for health. */
  lastRepair(peerId: string): RepairSummary | null {
    return this.#schedule.get(peerId)?.last ?? null;
  }

  /**
   * Runs one repair with `peerId` now (sharing one already running).
   * @throws {IllegalStateError} for an unknown peer; the peer's failure otherwise.
   */
  repair(peerId: string, options: RepairOptions = {}): Promise<RepairReport> {
    const dryRun = options.dryRun === true;
    const key = `${peerId}:${dryRun}:${options.maxItems ?? ''}`;
    const running = this.#running.get(key);
    if (running !== undefined) return running;
    const run = this.#repair(peerId, dryRun, options.maxItems).finally(() =>
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
      };
      this.#schedule.set(peerId, entry);
    }
    return entry;
  }

  async #refresh(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      try {
        await this.#ctx.store.merkleRoot();
      } catch (error) {
        this.#ctx.logger.warn(
          { err: describeError(error) },
          'refreshing the local Merkle tree failed',
        );
      }
      await sleep(REFRESH_INTERVAL_MS, signal);
    }
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      const settings = this.#ctx.settings();
      const now = Date.now();
      const peers = [...this.#ctx.peers()].sort((a, b) => a.priority - b.priority);
      for (const id of this.#schedule.keys()) {
        if (!peers.some((p) => p.nodeId === id)) this.#schedule.delete(id);
      }
      let nextWake = now + settings.intervalMs;
      for (const config of peers) {
        if (signal.aborted) break;
        const entry = this.#entry(config.nodeId);
        const requested = entry.requested !== undefined;
        if (requested || (settings.enabled && entry.nextDueAt <= Date.now())) {
          await this.#scheduled(config.nodeId, entry, requested);
        }
        if (requested || settings.enabled) nextWake = Math.min(nextWake, entry.nextDueAt);
      }
      const delay = Math.max(50, nextWake - Date.now());
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
    if (!requested && peer.catchingUp()) return skip('catching_up', settings.intervalMs);
    const reason = entry.requested;
    entry.requested = undefined;
    const started = Date.now();
    try {
      const report = await this.repair(peerId);
      entry.failures = undefined;
      // Budget left work behind: come back soon rather than after a full interval.
      entry.nextDueAt =
        Date.now() +
        (report.deferred > 0 ? Math.min(settings.intervalMs, 1000) : settings.intervalMs);
      if (report.applied > 0 || report.deferred > 0 || reason !== undefined) {
        ctx.logger.info(
          {
            peer_id: peerId,
            reason: reason ?? 'scheduled',
            divergent_keys: report.divergentKeys,
            applied: report.applied,
            deferred: report.deferred,
            ms: report.durationMs,
          },
          'repair cycle',
        );
      }
    } catch (error) {
      entry.failures ??= new Backoff({
        baseMs: settings.backoffBaseMs,
        maxMs: settings.backoffMaxMs,
      });
      const wait = entry.failures.next();
      entry.nextDueAt = Date.now() + wait;
      if (reason !== undefined) entry.requested = reason;
      const err = describeError(error);
      ctx.metrics.repairErrorsTotal.inc({ peer_id: peerId });
      ctx.logger.warn({ peer_id: peerId, err, retry_ms: wait }, 'repair failed; backing off');
      entry.last = {
        finished_at_ms: Date.now(),
        duration_ms: Date.now() - started,
        outcome: 'error',
        in_sync: false,
        divergent_keys: 0,
        items_fetched: 0,
        items_applied: 0,
        error: err,
      };
    }
  }

  async #repair(
    peerId: string,
    dryRun: boolean,
    maxItems: number | undefined,
  ): Promise<RepairReport> {
    const ctx = this.#ctx;
    const peer = ctx.peer(peerId);
    if (peer === undefined) throw new IllegalStateError(`no peer ${JSON.stringify(peerId)}`);
    const started = performance.now();
    const budget = Math.max(0, maxItems ?? ctx.settings().maxItemsPerCycle);
    const remote = new MerkleReader(
      {
        sendCommand: (args, options) =>
          peer.link.run('merkle', (c) => c.sendCommand(args, options)),
      },
      peer.config.redisPrefix,
    );
    let roundTrips = 0;
    const store = ctx.store;

    const [localRoot, peerRoot] = await Promise.all([store.merkleRoot(), remote.root()]);
    roundTrips += 1;
    const metricsPeer = { peer_id: peerId };
    ctx.metrics.repairPeersCheckedTotal.inc();
    const finish = (
      report: Omit<RepairReport, 'durationMs' | 'peerRoundTrips' | 'peerId' | 'dryRun'>,
    ): RepairReport => {
      const durationMs = Math.round((performance.now() - started) * 10) / 10;
      const full: RepairReport = {
        peerId,
        dryRun,
        ...report,
        peerRoundTrips: roundTrips,
        durationMs,
      };
      if (!dryRun) {
        ctx.metrics.repairCyclesTotal.inc(metricsPeer);
        ctx.metrics.repairCycleDurationSeconds.observe(metricsPeer, durationMs / 1000);
        ctx.metrics.repairDivergentKeys.set(metricsPeer, full.divergentKeys);
        if (full.inSync) ctx.metrics.repairPeersInSyncTotal.inc();
        const entry = this.#entry(peerId);
        entry.last = {
          finished_at_ms: Date.now(),
          duration_ms: durationMs,
          outcome: 'ok',
          in_sync: full.inSync,
          divergent_keys: full.divergentKeys,
          items_fetched: full.fetched,
          items_applied: full.applied,
          error: null,
        };
        ctx.onReport(full);
      }
      return full;
    };

    if (localRoot === peerRoot) {
      return finish({
        inSync: true,
        divergentBranches: 0,
        divergentKeys: 0,
        changes: [],
        deferred: 0,
        fetched: 0,
        applied: 0,
      });
    }

    // Drill down: at each level keep the children whose hashes differ.
    let frontier = [''];
    let divergentBranches = 0;
    for (let depth = 0; depth < DEPTH && frontier.length > 0; depth++) {
      const next: string[] = [];
      for (let i = 0; i < frontier.length; i += CHUNK) {
        const paths = frontier.slice(i, i + CHUNK);
        const [local, theirs] = await Promise.all([
          Promise.all(paths.map((p) => store.merkleChildren(p))),
          remote.childrenMany(paths),
        ]);
        roundTrips += 1;
        paths.forEach((_, j) => next.push(...divergentChildren(local[j] ?? [], theirs[j] ?? [])));
      }
      divergentBranches += next.length;
      frontier = next;
    }
    ctx.metrics.merkleDivergenceTotal.inc(metricsPeer, divergentBranches);
    ctx.metrics.merkleDivergencesTotal.inc(metricsPeer, divergentBranches);

    // Compare the leaves of the divergent buckets by the total order.
    const winners: RepairChange[] = [];
    let divergentKeys = 0;
    for (let i = 0; i < frontier.length; i += CHUNK) {
      const buckets = frontier.slice(i, i + CHUNK);
      const [local, theirs] = await Promise.all([
        Promise.all(buckets.map((b) => store.merkleLeaves(b))),
        remote.leavesMany(buckets),
      ]);
      roundTrips += 1;
      buckets.forEach((_, j) => {
        const mine = new Map((local[j] ?? []).map((v) => [v.key, v]));
        const seen = new Set<string>();
        for (const version of theirs[j] ?? []) {
          seen.add(version.key);
          const here = mine.get(version.key);
          const order = here === undefined ? 1 : compareVersions(version, here);
          if (order !== 0) divergentKeys += 1;
          if (order > 0) {
            winners.push({
              key: version.key,
              local: here ?? null,
              peer: version,
              action: version.deleted ? 'delete' : 'put',
            });
          }
        }
        // Keys only we have: divergent, and left alone (the peer pulls them on its own cycle).
        for (const key of mine.keys()) if (!seen.has(key)) divergentKeys += 1;
      });
    }
    winners.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const changes = winners.slice(0, budget);
    const deferred = winners.length - changes.length;
    if (dryRun || changes.length === 0) {
      return finish({
        inSync: false,
        divergentBranches,
        divergentKeys,
        changes,
        deferred,
        fetched: 0,
        applied: 0,
      });
    }

    let fetched = 0;
    let applied = 0;
    for (let i = 0; i < changes.length; i += CHUNK) {
      const keys = changes.slice(i, i + CHUNK).map((c) => c.key);
      const records = await remote.getRecords(keys);
      roundTrips += 1;
      fetched += records.length;
      ctx.metrics.repairItemsFetchedTotal.inc(metricsPeer, records.length);
      if (records.length === 0) continue;
      const results = await store.apply(records);
      const ok = results.filter((r) => r.outcome === 'applied').length;
      applied += ok;
      ctx.metrics.repairItemsSubmittedTotal.inc(metricsPeer, ok);
      ctx.metrics.repairItemsTotal.inc(metricsPeer, ok);
    }
    return finish({
      inSync: false,
      divergentBranches,
      divergentKeys,
      changes,
      deferred,
      fetched,
      applied,
    });
  }
}

/** Paths of children whose hashes differ (a child missing on one side counts as all zeros). */
export function divergentChildren(
  local: readonly MerkleNode[],
  peer: readonly MerkleNode[],
): string[] {
  const mine = new Map(local.map((n) => [n.path, n.hash]));
  const out: string[] = [];
  const seen = new Set<string>();
  for (const node of peer) {
    seen.add(node.path);
    if (mine.get(node.path) !== node.hash) out.push(node.path);
  }
  for (const node of local) if (!seen.has(node.path)) out.push(node.path);
  return out.sort();
}
