/**
 * One peer's connections (SPEC §4): a blocking connection for XREAD and a query connection for
 * everything else, each reconnecting forever in the background; a circuit breaker; idle pings.
 * Both parse their replies within bounds (issue 19): the reader is a {@link StreamConnection}, the
 * query connection a {@link QueryConnection} (bounds per command, a deadline per command). A peer
 * whose server reports `cluster_enabled:1` (or whose config says `cluster: true`) is queried
 * through a {@link PeerCluster} instead, and has no reader here: its partition streams are read
 * shard by shard (partition-streams.ts).
 */
import type { ResolvedPeer, ResolvedPeerHealth, ResolvedSlo } from '../config/types.js';
import { PeerUnavailableError } from '../errors.js';
import type { CircuitStateName } from '../observability/health.js';
import type { Logger } from '../observability/logger.js';
import { RepeatingWarning } from '../observability/repeating-warning.js';
import type { Metrics } from '../observability/metrics.js';
import { describeError, reportsCluster } from '../redis/connect.js';
import type { CommandSender } from '../store/redis-io.js';
import { Backoff, sleep } from './backoff.js';
import { CircuitBreaker, type CircuitState } from './circuit-breaker.js';
import { PeerCluster } from './peer-cluster.js';
import { QueryConnection, type QueryCommand } from './query-connection.js';
import { StreamConnection } from './stream-connection.js';

/** How often {@link PeerLink.waitReady} re-checks readiness between connection events. */
const READY_RECHECK_MS = 1000;

/** Callbacks a link reports through. */
export interface PeerLinkEvents {
  readonly onUp: (peerId: string) => void;
  readonly onDown: (peerId: string, reason: string) => void;
}

/** Settings a link reads live (hot reload changes them without reconnecting). */
export interface PeerLinkSettings {
  readonly peerHealth: () => ResolvedPeerHealth;
  readonly slo: () => ResolvedSlo;
}

type Role = 'reader' | 'query' | 'cluster';

/** A circuit state as metrics and health spell it (`half_open`, like every other label value). */
export function circuitLabel(state: CircuitState): CircuitStateName {
  return state === 'half-open' ? 'half_open' : state;
}

/** The connections and health of one peer. */
export class PeerLink {
  readonly id: string;
  readonly breaker: CircuitBreaker;
  /** ms epoch of the last successful operation on either connection. */
  lastSuccessAt = 0;
  lastError: string | undefined;
  #reader: StreamConnection;
  #query: QueryConnection;
  /** The query connection of a cluster peer, once it is known to be one. */
  #cluster: PeerCluster | undefined;
  /** Settles once the peer is known to be a cluster (true) or a single instance (false). */
  readonly #kind: { promise: Promise<boolean>; resolve: (cluster: boolean) => void };
  #up = false;
  #closed = false;
  readonly #abort = new AbortController();
  readonly #log: Logger;
  /** Slow operations: logged when they start, rate-limited while they last, and when they end. */
  readonly #slowOps: RepeatingWarning;
  /** Replies over their bounds: logged when first seen, then at most once a minute. */
  readonly #oversized: RepeatingWarning;
  #pingTimer: NodeJS.Timeout | undefined;
  /** What each connection reports (one per role: each remembers the last error it logged). */
  readonly #events = {
    reader: this.#connectionEvents('reader'),
    query: this.#connectionEvents('query'),
    cluster: this.#connectionEvents('cluster'),
  };
  /** Wakes the callers of {@link waitReady} (on any connection event, and on close). */
  #readyWaiters: (() => void)[] = [];

  constructor(
    readonly peer: ResolvedPeer,
    private readonly metrics: Metrics,
    logger: Logger,
    private readonly settings: PeerLinkSettings,
    private readonly events: PeerLinkEvents,
  ) {
    this.id = peer.nodeId;
    this.#log = logger;
    this.#slowOps = new RepeatingWarning(logger, 'peer operation exceeded its SLO', {
      recovered: 'peer operations are within their SLO',
    });
    this.#oversized = new RepeatingWarning(
      logger,
      'peer sent values over their bounds: skipped unread',
      { intervalMs: 60_000 },
    );
    this.breaker = new CircuitBreaker({
      failureThreshold: peer.circuitFailureThreshold,
      resetTimeoutMs: peer.circuitResetTimeoutMs,
      onTransition: (from, to) => {
        this.metrics.peerCircuitTransitionsTotal.inc({ peer_id: this.id, state: circuitLabel(to) });
        this.metrics.peerCircuitState.set({ peer_id: this.id }, this.breaker.stateCode());
        const level = to === 'open' ? 'warn' : 'info';
        this.#log[level]({ from, to }, `circuit ${from} → ${to}`);
      },
    });
    this.metrics.peerCircuitState.set({ peer_id: this.id }, 0);
    this.metrics.peerConnected.set({ peer_id: this.id }, 0);
    this.#reader = this.#createReader();
    this.#query = this.#create();
    let resolve: (cluster: boolean) => void = () => undefined;
    const promise = new Promise<boolean>((r) => (resolve = r));
    this.#kind = { promise, resolve };
    if (peer.cluster !== undefined) resolve(peer.cluster);
  }

  /** Resolves once the peer is known to be a Redis Cluster (true) or a single instance (false). */
  get kind(): Promise<boolean> {
    return this.#kind.promise;
  }

  /** The connection for blocking stream reads. */
  get reader(): StreamConnection {
    return this.#reader;
  }

  /** The connection for queries (XINFO, Merkle reads, records, pings). */
  get query(): QueryConnection {
    return this.#query;
  }

  /**
   * True when the peer is a Redis Cluster, false when a single instance, undefined until known
   * (the config's `cluster`, else what the server reports on the first connection).
   */
  get cluster(): boolean | undefined {
    return this.#cluster !== undefined ? true : this.peer.cluster;
  }

  /** The cluster peer's query connection (routed by key), once the peer is known to be one. */
  get clusterSender(): CommandSender | undefined {
    return this.#cluster?.sender;
  }

  /** True when both connections are ready (a cluster peer's: its cluster client). */
  get connected(): boolean {
    if (this.#cluster !== undefined) return this.#cluster.isReady;
    return this.#reader.isReady && this.#query.isReady;
  }

  /** Starts connecting both connections in the background, forever, and the idle pinger. */
  start(): void {
    if (this.peer.cluster === true) {
      this.#becomeCluster();
    } else {
      void this.#connectLoop('reader');
      void this.#connectLoop('query');
    }
    this.#schedulePing();
  }

  /** Waits until both connections are ready; false if the link closes or `signal` aborts first. */
  async waitReady(signal: AbortSignal): Promise<boolean> {
    while (!this.#closed && !signal.aborted) {
      if (this.connected) return true;
      // Woken by any connection event (a peer that comes back is read at once); the timer only
      // re-checks, in case readiness changed with no event.
      const controller = new AbortController();
      const stop = (): void => controller.abort();
      signal.addEventListener('abort', stop, { once: true });
      this.#readyWaiters.push(stop);
      await sleep(READY_RECHECK_MS, controller.signal);
      signal.removeEventListener('abort', stop);
      const left = this.#readyWaiters.indexOf(stop); // still listed when the timer ended the wait
      if (left >= 0) this.#readyWaiters.splice(left, 1);
    }
    return false;
  }

  /**
   * Runs one peer operation through the circuit breaker, timing it, feeding the breaker, and
   * turning failures into {@link PeerUnavailableError}.
   */
  run<T>(operation: string, fn: (client: CommandSender) => Promise<T>): Promise<T> {
    return this.#run(operation, () => fn(this.#cluster?.sender ?? this.#query));
  }

  /** {@link run} on the reader connection (stream reads). */
  runReader<T>(operation: string, fn: (reader: StreamConnection) => Promise<T>): Promise<T> {
    return this.#run(operation, () => fn(this.#reader));
  }

  async #run<T>(operation: string, call: () => Promise<T>): Promise<T> {
    if (!this.breaker.canAttempt()) {
      this.metrics.circuitRejectionsTotal.inc({ peer_id: this.id });
      throw new PeerUnavailableError(
        this.id,
        this.breaker.state === 'open'
          ? `circuit open (retry in ${this.breaker.msUntilHalfOpen()} ms)`
          : 'circuit half-open: a trial call is in flight',
      );
    }
    const started = performance.now();
    try {
      const result = await call();
      const ms = performance.now() - started;
      this.metrics.peerOperationDurationSeconds.observe({ peer_id: this.id, operation }, ms / 1000);
      this.metrics.circuitCallsTotal.inc({ peer_id: this.id, outcome: 'success' });
      this.breaker.recordSuccess();
      this.lastSuccessAt = Date.now();
      const slo = this.settings.slo().maxPeerOpLatencyMs;
      if (operation !== 'xread' && ms > slo) {
        this.metrics.sloViolationsTotal.inc({ peer_id: this.id, slo_type: 'peer_op' });
        this.#slowOps.fail({ operation, ms: Math.round(ms), slo_ms: slo });
      } else if (operation !== 'xread') {
        this.#slowOps.ok();
      }
      return result;
    } catch (error) {
      this.metrics.circuitCallsTotal.inc({ peer_id: this.id, outcome: 'failure' });
      this.metrics.errorsTotal.inc({ peer_id: this.id, error_type: operation });
      this.breaker.recordFailure();
      this.lastError = describeError(error);
      throw new PeerUnavailableError(this.id, `${operation} failed: ${this.lastError}`, {
        cause: error,
      });
    }
  }

  /**
   * Replaces the reader connection (after a read hung past its deadline: a black-holed socket
   * never errors by itself).
   */
  resetReader(): void {
    if (this.#closed || this.#cluster !== undefined) return;
    const old = this.#reader;
    this.#reader = this.#createReader();
    old.destroy();
    void this.#connectLoop('reader');
  }

  /** Closes every connection (pending blocking reads reject at once). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    if (this.#pingTimer !== undefined) clearTimeout(this.#pingTimer);
    this.#reader.destroy();
    this.#query.destroy();
    await this.#cluster?.close();
    this.#setUp(false, 'closed');
    this.#wakeReadyWaiters();
  }

  #create(): QueryConnection {
    return new QueryConnection({
      url: this.peer.redisUrl,
      tls: this.peer.tls,
      name: 'replication-engine-query',
      commandTimeoutMs: 15_000,
      onOversized: (command, values) => this.#reportOversized(command, values),
      ...this.#events.query,
    });
  }

  /** The peer sent a reply over its bounds (`values` skipped, or 0: the reply refused whole). */
  #reportOversized(command: QueryCommand, values: number): void {
    this.metrics.peerOversizedRepliesTotal.inc({ peer_id: this.id, command });
    this.#oversized.fail({ command, ...(values > 0 ? { values } : { refused: true }) });
  }

  /** The reader: no command timeout (blocking reads have their own deadline, RedisPeerStream). */
  #createReader(): StreamConnection {
    return new StreamConnection({
      url: this.peer.redisUrl,
      tls: this.peer.tls,
      name: 'replication-engine-reader',
      ...this.#events.reader,
    });
  }

  /** What either connection reports: each distinct error logged once, readiness refreshed. */
  #connectionEvents(role: Role): {
    onError: (error: Error) => void;
    onReady: () => void;
    onEnd: () => void;
  } {
    let lastLogged = '';
    // A cluster peer's seed connections, let go once it is known to be one, report nothing.
    const retired = (): boolean => role !== 'cluster' && this.#cluster !== undefined;
    return {
      onError: (error) => {
        if (retired()) return;
        const text = describeError(error);
        // Reconnect attempts repeat the same error: log each distinct one once.
        if (text !== lastLogged) {
          lastLogged = text;
          this.#log.warn({ role, err: text }, 'peer connection error');
        }
        this.lastError = text;
        this.#refresh('connection error');
      },
      onReady: () => {
        lastLogged = '';
        this.metrics.peerConnectionsTotal.inc({ peer_id: this.id, status: 'success' });
        this.#refresh('ready');
      },
      onEnd: () => {
        if (!retired()) this.#refresh('connection closed');
      },
    };
  }

  async #connectLoop(role: Role): Promise<void> {
    const backoff = new Backoff({ baseMs: 100, maxMs: 5000 });
    while (!this.#closed) {
      const client = this.#connection(role);
      if (client === undefined || client.isOpen) return; // the client reconnects on its own
      try {
        await client.connect();
        // Closed (or this reader replaced) while connecting: the connection must not outlive it.
        if (this.#closed || client !== this.#connection(role)) {
          if (client instanceof PeerCluster) void client.close();
          else client.destroy();
        } else if (role === 'cluster') {
          this.#refresh('ready'); // the slots are known only now, after the shards' own events
        } else if (role === 'query' && this.peer.cluster === undefined) {
          const cluster = await reportsCluster(this.#query).catch(() => false);
          if (cluster) this.#becomeCluster();
          this.#kind.resolve(cluster);
        }
        return;
      } catch (error) {
        // Closed while connecting (the engine stopping): nothing failed.
        if (this.#closed) return;
        this.metrics.peerConnectionsTotal.inc({ peer_id: this.id, status: 'failure' });
        // Logged like a lost connection's error (each distinct one once): a first connection
        // that fails reports only here.
        this.#events[role].onError(error instanceof Error ? error : new Error(String(error)));
        this.#refresh('connect failed');
        await sleep(backoff.next(), this.#abort.signal);
      }
    }
  }

  #connection(role: Role): StreamConnection | QueryConnection | PeerCluster | undefined {
    if (role === 'cluster') return this.#cluster;
    // A cluster peer has neither: its streams are read shard by shard.
    if (this.#cluster !== undefined) return undefined;
    return role === 'reader' ? this.#reader : this.#query;
  }

  /** The peer is a cluster: its single-instance connections go, a cluster client connects. */
  #becomeCluster(): void {
    if (this.#closed || this.#cluster !== undefined) return;
    this.#cluster = new PeerCluster(this.peer, this.#events.cluster, (command, values) =>
      this.#reportOversized(command, values),
    );
    this.#kind.resolve(true);
    this.#reader.destroy();
    this.#query.destroy();
    this.#log.info('the peer is a Redis Cluster');
    void this.#connectLoop('cluster');
  }

  #refresh(reason: string): void {
    this.#setUp(this.connected, reason);
    this.#wakeReadyWaiters();
  }

  #wakeReadyWaiters(): void {
    const waiters = this.#readyWaiters;
    this.#readyWaiters = [];
    for (const wake of waiters) wake();
  }

  #setUp(up: boolean, reason: string): void {
    if (up === this.#up) return;
    this.#up = up;
    this.metrics.peerConnected.set({ peer_id: this.id }, up ? 1 : 0);
    if (up) {
      this.lastSuccessAt = Date.now();
      this.#log.info('peer connected');
      this.events.onUp(this.id);
    } else if (!this.#closed) {
      this.#log.warn({ reason }, 'peer disconnected');
      this.events.onDown(this.id, reason);
    }
  }

  #schedulePing(): void {
    if (this.#closed) return;
    const health = this.settings.peerHealth();
    const interval = Math.max(100, health.pingIntervalMs);
    this.#pingTimer = setTimeout(() => {
      void this.#pingIfIdle().finally(() => this.#schedulePing());
    }, interval);
    this.#pingTimer.unref();
  }

  async #pingIfIdle(): Promise<void> {
    const health = this.settings.peerHealth();
    if (!health.enabled || this.#closed || !this.connected) return;
    if (Date.now() - this.lastSuccessAt < health.idleThresholdMs) return;
    const started = performance.now();
    try {
      await this.run('ping', (c) => c.sendCommand(['PING']));
      this.metrics.peerPingsTotal.inc({ peer_id: this.id, status: 'success' });
      this.metrics.peerPingLatencySeconds.observe(
        { peer_id: this.id },
        (performance.now() - started) / 1000,
      );
    } catch {
      this.metrics.peerPingsTotal.inc({ peer_id: this.id, status: 'failure' });
    }
  }
}
