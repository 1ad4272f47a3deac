/**
 * ReplicationEngine: replicates a mesh of peers into a LocalStore (SPEC §4). Wires peers, hot
 * path tailers, the cold path and the cursor store; owns the lifecycle, health and hot reload.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import type { ResolvedConfig, ResolvedPeer } from '../config/types.js';
import { IllegalStateError, ReplicationError } from '../errors.js';
import type { StoredRecord } from '../model/record.js';
import { formatDuration } from '../observability/health.js';
import type { EngineHealth, EngineStateName } from '../observability/health.js';
import { createLogger, peerLogger, type Logger } from '../observability/logger.js';
import { ENGINE_STATE_VALUE, createMetrics, type Metrics } from '../observability/metrics.js';
import type { ApplyResult, LocalStore } from './local-store.js';
import { ColdPath, type RepairOptions, type RepairReport } from './cold-path.js';
import { CursorStore } from './cursor-store.js';
import { LocalStoreCheck } from './local-check.js';
import { ErrorClock, peerHealth } from './peer-health.js';
import { describeError } from '../redis/connect.js';
import { PeerLink } from './peer-link.js';
import type { GapKind } from './stream-gap.js';
import { ApplyRateLimit } from './apply-rate-limit.js';
import { RedisPeerStream } from './peer-stream.js';
import { StoreIdentityWatch } from './store-identity.js';
import { ClusterTailer } from './cluster-tailer.js';
import { RedisPartitionSource } from './partition-streams.js';
import { DeferredTailer } from './peer-tailer.js';
import { Tailer, type PeerTailer, type TailerContext } from './tailer.js';
import { TombstoneGc } from './tombstone-gc.js';

/** Lifecycle states: Created → Connecting → Running → ShuttingDown → Stopped (or Failed). */
export type EngineState = EngineStateName;

const TRANSITIONS: Readonly<Record<EngineState, readonly EngineState[]>> = {
  created: ['connecting', 'stopped'],
  connecting: ['running', 'failed', 'shutting_down'],
  running: ['shutting_down', 'failed'],
  shutting_down: ['stopped', 'failed'],
  stopped: [],
  failed: ['shutting_down', 'stopped'],
};

/** A gap found in a peer's stream. */
export interface GapEvent {
  readonly peerId: string;
  readonly kind: GapKind;
  readonly detail: string;
  readonly resetTo: string;
}

/** A replicated record that lost against a different, concurrent local record. */
export interface ConflictEvent {
  readonly peerId: string;
  readonly key: string;
  readonly incoming: StoredRecord;
  readonly local: ApplyResult['previous'];
}

/** The engine's typed events. */
export interface EngineEvents {
  state: [to: EngineState, from: EngineState];
  peerUp: [peerId: string];
  peerDown: [peerId: string, reason: string];
  gap: [event: GapEvent];
  conflict: [event: ConflictEvent];
  repair: [report: RepairReport];
  /** The local store's periodic check changed its answer (see {@link LocalStore.ping}). */
  local: [connected: boolean, error: string | null];
}

/** Options of {@link ReplicationEngine.ready}. */
export interface ReadyOptions {
  /** Give up (reject) after this long. @default 30_000 */
  readonly timeoutMs?: number;
  /** Rejects the wait when aborted. */
  readonly signal?: AbortSignal;
}

/** Optional collaborators; defaults are created when absent. */
export interface EngineDependencies {
  readonly metrics?: Metrics;
  readonly logger?: Logger;
}

interface PeerRuntime {
  readonly config: ResolvedPeer;
  readonly link: PeerLink;
  readonly tailer: PeerTailer;
  /** When it was added (start or reload): the reference for "no commit for …" before the first. */
  readonly addedAt: number;
}

const VERSION = readVersion();

function readVersion(): string {
  try {
    const pkg = JSON.parse(
      readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** The fields of a peer whose change needs new connections. */
function peerIdentity(peer: ResolvedPeer): string {
  return JSON.stringify([
    peer.redisUrl,
    peer.redisPrefix,
    peer.cluster ?? null,
    peer.circuitFailureThreshold,
    peer.circuitResetTimeoutMs,
    peer.tls?.ca?.toString('base64') ?? null,
    peer.tls?.cert?.toString('base64') ?? null,
    peer.tls?.key?.toString('base64') ?? null,
    peer.tls?.rejectUnauthorized ?? null,
    peer.tls?.servername ?? null,
  ]);
}

/**
 * Replicates every configured peer into a {@link LocalStore}: the hot path tails each peer's CDC
 * stream, the cold path repairs by Merkle comparison. Typed events report state changes, peers up
 * and down, gaps, conflicts and repairs.
 */
export class ReplicationEngine extends EventEmitter<EngineEvents> {
  readonly metrics: Metrics;
  readonly logger: Logger;
  #config: ResolvedConfig;
  #state: EngineState = 'created';
  readonly #store: LocalStore;
  #cursors: CursorStore | undefined;
  readonly #peers = new Map<string, PeerRuntime>();
  /** One apply-rate bucket for every peer's tailer: the limit is node-wide. */
  readonly #rateLimit = new ApplyRateLimit(() => this.#config.replication.hotPath);
  #cold: ColdPath | undefined;
  #startedAt = 0;
  #lastError: string | undefined;
  #lastErrorAt: number | null = null;
  /** When each error health shows per peer was first seen. */
  readonly #errors = new ErrorClock();
  readonly #local: LocalStoreCheck;
  readonly #gc: TombstoneGc | undefined;
  #identity: StoreIdentityWatch | undefined;
  /** A rebuild of a lost local store: peers whose full repair has not completed yet. */
  #rebuild:
    | { reason: string; startedAt: number; pending: Set<string>; finishedAt: number | null }
    | undefined;
  #stopping: Promise<void> | undefined;
  #reload: Promise<void> = Promise.resolve();

  constructor(config: ResolvedConfig, store: LocalStore, deps: EngineDependencies = {}) {
    super();
    this.#config = config;
    this.#store = store;
    this.metrics = deps.metrics ?? createMetrics();
    this.logger = deps.logger ?? createLogger({ level: 'info' });
    this.metrics.engineState.set(ENGINE_STATE_VALUE.created);
    this.#local = new LocalStoreCheck(store, this.logger, (connected, error) => {
      this.metrics.localStoreUp.set(connected ? 1 : 0);
      this.emit('local', connected, error);
    });
    this.#gc =
      store.tombstones === undefined
        ? undefined
        : new TombstoneGc({
            store: store.tombstones,
            peers: () => this.#config.replication.peers.map((p) => p.nodeId),
            ttlMs: config.store.tombstoneTtlMs,
            metrics: this.metrics,
            logger: this.logger,
          });
  }

  /** The current lifecycle state. */
  get state(): EngineState {
    return this.#state;
  }

  /** The configuration the engine runs on now. */
  get config(): ResolvedConfig {
    return this.#config;
  }

  /** This node's id. */
  get nodeId(): string {
    return this.#config.replication.localNodeId;
  }

  /**
   * Claims the local store for this node ({@link LocalStore.claimOwner}), opens the cursor store
   * and starts every peer in the background; resolves once Running, even with no peer reachable
   * (peers are retried forever).
   * @throws {IllegalStateError} unless the engine is Created.
   * @throws {StoreError} when another node id owns the local store (the engine is then Failed).
   * @throws {CursorStoreError} when the cursor database cannot be opened (the engine is then Failed).
   */
  async start(): Promise<void> {
    if (this.#state !== 'created')
      throw new IllegalStateError(`cannot start an engine that is ${this.#state}`);
    this.#transition('connecting');
    this.#startedAt = Date.now();
    try {
      // Before anything replicates into it: a store another node owns is not ours to fill.
      await this.#store.claimOwner?.();
      const cursor = this.#config.replication.cursor;
      this.#cursors = CursorStore.open(cursor.sqlitePath, { walMode: cursor.walMode });
      this.#cold = new ColdPath({
        localNodeId: this.nodeId,
        settings: () => this.#config.replication.coldPath,
        maxItemBytes: this.#config.store.maxItemBytes,
        maxClockSkewMs: this.#config.store.maxClockSkewMs,
        store: this.#store,
        metrics: this.metrics,
        logger: this.logger,
        peer: (peerId) => {
          const runtime = this.#peers.get(peerId);
          return runtime === undefined
            ? undefined
            : {
                link: runtime.link,
                config: runtime.config,
                // A tailer that never started (hot path off) reports catching up forever.
                catchingUp: () =>
                  this.#config.replication.hotPath.enabled && runtime.tailer.status().catchingUp,
                paused: () => runtime.tailer.paused,
              };
        },
        peers: () => [...this.#peers.values()].map((p) => p.config),
        onReport: (report) => {
          this.#rebuilt(report);
          this.emit('repair', report);
        },
      });
      for (const peer of this.#config.replication.peers) this.#addPeer(peer);
      // Always started: `enabled` governs scheduled cycles only; a gap or resync still repairs.
      this.#cold.start();
      this.#local.start();
      const hadCursors = this.#cursors.all().length > 0;
      if (this.#store.tombstones !== undefined) {
        this.#identity = new StoreIdentityWatch(
          this.#store.tombstones,
          {
            // A new store under a node that had replicated before (it has cursors): the store was
            // lost while the engine was stopped. (A fresh node fills by its hot and cold paths.)
            onNew: () => {
              if (hadCursors) this.#rebuildFromPeers('it was found empty at start (no store:id)');
            },
            onLost: (reason) => this.#rebuildFromPeers(reason),
          },
          this.logger,
        );
        this.#identity.start();
      }
      this.#transition('running');
      this.logger.info({ peers: this.#peers.size }, 'replication engine running');
    } catch (error) {
      this.#lastError = describeError(error);
      this.#lastErrorAt = Date.now();
      this.logger.error({ err: this.#lastError }, 'replication engine failed to start');
      this.#transition('failed');
      await this.#teardown();
      throw error;
    }
  }

  /**
   * Drains and stops: the batches in flight on each peer are applied and their cursors committed,
   * connections close. Bounded by `timeoutMs`; calling it again returns the same promise.
   */
  stop(timeoutMs = 10_000): Promise<void> {
    this.#stopping ??= this.#stop(timeoutMs);
    return this.#stopping;
  }

  async #stop(timeoutMs: number): Promise<void> {
    if (this.#state === 'created') {
      this.#transition('stopped');
      return;
    }
    if (this.#state !== 'stopped') this.#transition('shutting_down');
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const drained = this.#teardown().then(() => 'done' as const);
    const outcome = await Promise.race([drained, deadline]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      this.logger.warn({ timeout_ms: timeoutMs }, 'shutdown timed out; closing connections');
      for (const runtime of this.#peers.values()) void runtime.link.close();
    }
    this.#peers.clear();
    try {
      this.#cursors?.close();
    } catch (error) {
      this.logger.warn({ err: describeError(error) }, 'closing the cursor store failed');
    }
    this.#transition('stopped');
    this.logger.info('replication engine stopped');
  }

  /** Stops everything; every step runs even if one fails. */
  async #teardown(): Promise<void> {
    const steps: Promise<unknown>[] = [this.#local.stop()];
    if (this.#identity !== undefined) steps.push(this.#identity.stop());
    if (this.#cold !== undefined) steps.push(this.#cold.stop());
    for (const runtime of this.#peers.values()) {
      steps.push(runtime.tailer.stop().finally(() => runtime.link.close()));
    }
    const results = await Promise.allSettled(steps);
    for (const result of results) {
      if (result.status === 'rejected')
        this.logger.warn({ err: describeError(result.reason) }, 'shutdown step failed');
    }
  }

  /**
   * Applies a new configuration live: peers added, removed or changed (only changed peers
   * reconnect), settings changed. The local node id and cursor path cannot change at runtime.
   * @throws {ReplicationError} `RELOAD_REJECTED` for a change that needs a restart.
   */
  updateConfig(next: ResolvedConfig): Promise<void> {
    const run = this.#reload.then(() => this.#updateConfig(next));
    this.#reload = run.catch(() => undefined);
    return run;
  }

  async #updateConfig(next: ResolvedConfig): Promise<void> {
    const current = this.#config;
    if (next.replication.localNodeId !== current.replication.localNodeId) {
      throw new ReplicationError(
        'RELOAD_REJECTED',
        'local_node_id cannot change without a restart',
      );
    }
    if (next.replication.cursor.sqlitePath !== current.replication.cursor.sqlitePath) {
      throw new ReplicationError(
        'RELOAD_REJECTED',
        'cursor.sqlite_path cannot change without a restart',
      );
    }
    this.#config = next;
    if (this.#state !== 'running') return;
    const wanted = new Map(next.replication.peers.map((p) => [p.nodeId, p]));
    // Tailers cannot be restarted in place: switching the hot path reconnects every peer.
    const hotToggled = next.replication.hotPath.enabled !== current.replication.hotPath.enabled;
    const removed: string[] = [];
    const changed: ResolvedPeer[] = [];
    const added: ResolvedPeer[] = [];
    for (const [id, runtime] of this.#peers) {
      const peer = wanted.get(id);
      if (peer === undefined) removed.push(id);
      else if (hotToggled || peerIdentity(peer) !== peerIdentity(runtime.config))
        changed.push(peer);
      else this.#peers.set(id, { ...runtime, config: peer });
    }
    for (const [id, peer] of wanted) if (!this.#peers.has(id)) added.push(peer);
    await Promise.all(
      [...removed, ...changed.map((p) => p.nodeId)].map((id) =>
        this.#removePeer(id, removed.includes(id)),
      ),
    );
    for (const peer of [...changed, ...added]) this.#addPeer(peer);
    this.logger.info(
      { added: added.map((p) => p.nodeId), removed, changed: changed.map((p) => p.nodeId) },
      'configuration reloaded',
    );
  }

  /** Stops reading from a peer (the batches in flight still land). */
  pause(peerId: string): void {
    this.#runtime(peerId).tailer.pause();
    this.logger.info({ peer_id: peerId }, 'peer paused');
  }

  /** Resumes reading from a paused peer. */
  resume(peerId: string): void {
    this.#runtime(peerId).tailer.resume();
    this.logger.info({ peer_id: peerId }, 'peer resumed');
  }

  /** Forgets a peer's cursor (its stream is read again from the start) and repairs it at once. */
  async resync(peerId: string): Promise<void> {
    await this.#runtime(peerId).tailer.resync();
    this.logger.info({ peer_id: peerId }, 'peer resync: cursor reset, repair requested');
    this.requestRepair(peerId, 'resync');
  }

  /**
   * Runs one cold-path repair with a peer now; with `dryRun`, only reports what would change.
   * @throws {ReplicationError} `UNKNOWN_PEER`, or the peer's failure.
   */
  async repair(peerId: string, options: RepairOptions = {}): Promise<RepairReport> {
    this.#runtime(peerId);
    if (this.#cold === undefined) throw new IllegalStateError(`cannot repair while ${this.#state}`);
    return this.#cold.repair(peerId, options);
  }

  /** Asks the cold path to repair `peerId` as soon as possible (gap, resync). */
  requestRepair(peerId: string, reason: string): void {
    this.#cold?.request(peerId, reason);
  }

  /**
   * Purges the tombstones older than `store.tombstone_ttl` that every configured peer has
   * acknowledged (docs/PROTOCOL.md §6), and reports what is held back (health, metrics). The
   * daemon runs it every `min(1 h, tombstone_ttl / 10)`; with a store without tombstone
   * collection ({@link LocalStore.tombstones}) it purges nothing.
   */
  async purgeTombstones(): Promise<{ readonly purged: number }> {
    if (this.#gc === undefined) return { purged: 0 };
    return { purged: (await this.#gc.purge()).purged };
  }

  /** The local store was lost: a full repair from every peer now, reported until done. */
  #rebuildFromPeers(reason: string): void {
    const peers = [...this.#peers.keys()];
    this.metrics.localStoreResetsTotal.inc();
    this.#rebuild = { reason, startedAt: Date.now(), pending: new Set(peers), finishedAt: null };
    this.logger.warn(
      { reason, peers },
      'the local store was lost; rebuilding it from every peer (a full repair each)',
    );
    for (const id of peers) this.requestRepair(id, 'rebuild: local store lost');
    if (peers.length === 0) this.#rebuild.finishedAt = Date.now();
  }

  #rebuilt(report: RepairReport): void {
    const rebuild = this.#rebuild;
    if (rebuild === undefined || rebuild.finishedAt !== null || report.dryRun) return;
    if (report.deferred > 0 || report.heldBack > 0) return;
    rebuild.pending.delete(report.peerId);
    for (const id of rebuild.pending) if (!this.#peers.has(id)) rebuild.pending.delete(id);
    if (rebuild.pending.size === 0) {
      rebuild.finishedAt = Date.now();
      this.logger.info(
        { took_ms: rebuild.finishedAt - rebuild.startedAt },
        'the local store was rebuilt from every peer',
      );
    }
  }

  /**
   * Resolves once the engine is Running, its local store answers (when it can be checked, see
   * {@link LocalStore.ping}) and every configured peer is connected. `start()` resolves before
   * that: peers connect in the background and are retried forever.
   * @throws {ReplicationError} `NOT_READY` after `timeoutMs`, naming what is not ready and why;
   *   `ABORTED` when `signal` aborts; {@link IllegalStateError} when the engine stops or fails first.
   */
  ready(options: ReadyOptions = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    return new Promise<void>((resolve, reject) => {
      const finish = (error?: Error): void => {
        clearTimeout(timer);
        this.off('peerUp', evaluate);
        this.off('state', evaluate);
        this.off('local', evaluate);
        options.signal?.removeEventListener('abort', onAbort);
        if (error === undefined) resolve();
        else reject(error);
      };
      const evaluate = (): void => {
        const state = this.#state;
        if (state === 'shutting_down' || state === 'stopped' || state === 'failed') {
          finish(new IllegalStateError(`the engine is ${state}: it will not become ready`));
        } else if (this.#notReady().length === 0) {
          finish();
        }
      };
      const onAbort = (): void =>
        finish(new ReplicationError('ABORTED', 'aborted while waiting for the engine to be ready'));
      const timer = setTimeout(() => {
        const waiting = this.#notReady().join('; ');
        finish(new ReplicationError('NOT_READY', `not ready after ${timeoutMs} ms: ${waiting}`));
      }, timeoutMs);
      this.on('peerUp', evaluate);
      this.on('state', evaluate);
      this.on('local', evaluate);
      if (options.signal?.aborted === true) onAbort();
      else options.signal?.addEventListener('abort', onAbort, { once: true });
      evaluate();
    });
  }

  /** What keeps {@link ready} waiting, one phrase each; empty when ready. */
  #notReady(): string[] {
    const waiting: string[] = [];
    if (this.#state !== 'running') waiting.push(`the engine is ${this.#state}`);
    const local = this.#local.health;
    if (this.#local.checkable && local.connected !== true) {
      waiting.push(
        local.connected === null
          ? 'the local store was not checked yet'
          : `the local store does not answer (${local.last_error ?? 'no answer'})`,
      );
    }
    for (const { config, link } of this.#peers.values()) {
      if (!link.connected) {
        const why = link.lastError === undefined ? '' : ` (${link.lastError})`;
        waiting.push(`peer ${config.nodeId} is not connected${why}`);
      }
    }
    return waiting;
  }

  /**
   * The seed's HealthCheck, with per-peer lag and catch-up filled in, and the local store. Healthy
   * means Running, the local store answering, and no peer with a problem: disconnected, circuit
   * open, cursor commits failing, or no progress (lag over the lag SLO and no cursor commit for
   * longer than it, unless paused).
   */
  health(): EngineHealth {
    const now = Date.now();
    const ctx = {
      now,
      maxLagMs: this.#config.replication.slo.maxReplicationLagMs,
      hotPath: this.#config.replication.hotPath.enabled,
      errors: this.#errors,
    };
    const peers = [...this.#peers.values()].map((runtime) =>
      peerHealth(
        {
          config: runtime.config,
          link: runtime.link,
          status: runtime.tailer.status(),
          addedAt: runtime.addedAt,
          lastRepair: this.#cold?.lastRepair(runtime.config.nodeId) ?? null,
        },
        ctx,
      ),
    );
    this.#errors.retain(new Set(this.#peers.keys()));
    const local = this.#local.health;
    const problems: string[] = [];
    const running = this.#state === 'running';
    if (!running) problems.push(`the engine is ${this.#state}`);
    if (local.connected === false) {
      const down = local.since_ms === null ? '' : ` for ${formatDuration(now - local.since_ms)}`;
      problems.push(`the local Redis does not answer${down}: ${local.last_error ?? 'no answer'}`);
    }
    for (const peer of peers) problems.push(...peer.problems);
    const localOk = local.connected !== false;
    const rebuild = this.#rebuild;
    const rebuilding = rebuild !== undefined && rebuild.finishedAt === null;
    if (rebuilding) {
      problems.push(
        `the local store was lost ${formatDuration(now - rebuild.startedAt)} ago (${rebuild.reason}); ` +
          `rebuilding from peers, waiting for ${[...rebuild.pending].join(', ')}`,
      );
    }
    const tombstones = this.#gc?.health();
    return {
      healthy: running && localOk && !rebuilding && peers.every((p) => p.healthy),
      ready: running && localOk,
      state: this.#state,
      node_id: this.nodeId,
      version: VERSION,
      uptime_ms: this.#startedAt === 0 ? 0 : now - this.#startedAt,
      timestamp_ms: now,
      peers_connected: peers.filter((p) => p.connected).length,
      peers_total: peers.length,
      peers,
      local,
      ...(tombstones !== undefined && { tombstones }),
      ...(rebuild !== undefined && {
        rebuild: {
          reason: rebuild.reason,
          started_at_ms: rebuild.startedAt,
          peers_pending: [...rebuild.pending],
          finished_at_ms: rebuild.finishedAt,
        },
      }),
      problems,
      last_error: this.#lastError ?? null,
      last_error_at_ms: this.#lastError === undefined ? null : this.#lastErrorAt,
    };
  }

  #runtime(peerId: string): PeerRuntime {
    const runtime = this.#peers.get(peerId);
    if (runtime === undefined)
      throw new ReplicationError('UNKNOWN_PEER', `no peer with id ${JSON.stringify(peerId)}`);
    return runtime;
  }

  #addPeer(peer: ResolvedPeer): void {
    const cursors = this.#cursors;
    if (cursors === undefined) throw new IllegalStateError('cursor store is not open');
    const log = peerLogger(this.logger, peer.nodeId);
    const link = new PeerLink(
      peer,
      this.metrics,
      log,
      {
        peerHealth: () => this.#config.replication.peerHealth,
        slo: () => this.#config.replication.slo,
      },
      {
        onUp: (id) => {
          this.#peers.get(id)?.tailer.peerUp();
          this.emit('peerUp', id);
        },
        onDown: (id, reason) => this.emit('peerDown', id, reason),
      },
    );
    // store.* needs a restart (the tailer decodes with the value it started with); the hot path's
    // settings are live.
    const maxItemBytes = this.#config.store.maxItemBytes;
    const bounds = () => ({
      maxItemBytes,
      maxBatchBytes: this.#config.replication.hotPath.maxBatchBytes,
    });
    const ctx: TailerContext = {
      localNodeId: this.nodeId,
      hotPath: () => this.#config.replication.hotPath,
      slo: () => this.#config.replication.slo,
      maxItemBytes: this.#config.store.maxItemBytes,
      maxClockSkewMs: this.#config.store.maxClockSkewMs,
      rateLimit: this.#rateLimit,
      store: this.#store,
      cursors,
      // Held back for its clock: repaired from the peer once within the bound, so never lost.
      onHeldBack: (peerId, records) => {
        const due = Math.min(...records.map((r) => r.updatedAt));
        this.#cold?.requestAt(peerId, due - this.#config.store.maxClockSkewMs);
      },
      // Refused as purged deletes: a repair tells a late record (applied) from a stale one.
      onPurged: (peerId, count) => void this.#cold?.refusedOnHotPath(peerId, count),
      metrics: this.metrics,
      logger: log,
      onGap: (peerId, verdict) => {
        this.emit('gap', {
          peerId,
          kind: verdict.kind,
          detail: verdict.detail,
          resetTo: verdict.resetTo,
        });
        this.requestRepair(peerId, `stream gap (${verdict.kind})`);
      },
      onConflicts: (peerId, conflicts) => {
        for (const { record, result } of conflicts) {
          this.emit('conflict', {
            peerId,
            key: record.key,
            // A plain record, whatever the store was handed (keepsFrames).
            incoming: { ...record, content: record.content },
            local: result.previous,
          });
        }
      },
    };
    // A single instance has one stream (`cdc`); a cluster peer P partition streams.
    const tailer = new DeferredTailer(
      peer.nodeId,
      {
        kind: link.kind,
        single: () =>
          new Tailer(peer.nodeId, new RedisPeerStream(link, `${peer.redisPrefix}cdc`, bounds), ctx),
        cluster: () =>
          new ClusterTailer(peer.nodeId, new RedisPartitionSource(link, peer, bounds), ctx),
      },
      cursors,
    );
    this.#peers.set(peer.nodeId, { config: peer, link, tailer, addedAt: Date.now() });
    link.start();
    if (this.#config.replication.hotPath.enabled) tailer.start();
    this.logger.info({ peer_id: peer.nodeId, url: peer.displayUrl }, 'peer added');
  }

  async #removePeer(peerId: string, forget: boolean): Promise<void> {
    const runtime = this.#peers.get(peerId);
    if (runtime === undefined) return;
    this.#peers.delete(peerId);
    await runtime.tailer.stop();
    await runtime.link.close();
    if (forget) {
      await this.metrics.removePeer(peerId);
      this.logger.info({ peer_id: peerId }, 'peer removed');
    }
  }

  #transition(to: EngineState): void {
    const from = this.#state;
    if (from === to) return;
    if (!TRANSITIONS[from].includes(to))
      throw new IllegalStateError(`illegal transition ${from} → ${to}`);
    this.#state = to;
    this.metrics.engineState.set(ENGINE_STATE_VALUE[to]);
    this.emit('state', to, from);
  }
}
