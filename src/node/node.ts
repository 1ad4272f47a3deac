/**
 * One node of the mesh, wired: this node's store on its Redis, the replication engine, the admin
 * HTTP server, and the periodic tombstone purge. The CLI's `run` and `demo` both start nodes here;
 * signal handling stays in `cli/`.
 */
import type { ResolvedConfig, ResolvedHttp } from '../config/types.js';
import { ReplicationEngine } from '../engine/engine.js';
import { describeError } from '../redis/connect.js';
import { startAdminServer } from '../observability/http.js';
import type { AdminApi, AdminServer } from '../observability/http.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { RepeatingWarning } from '../observability/repeating-warning.js';
import { snakeCaseKeys } from '../observability/snake-case.js';
import { createMetrics } from '../observability/metrics.js';
import { PartitionedStore } from '../store/partitioned-store.js';
import type { CommandSender } from '../store/redis-io.js';
import { connectLocalStore } from './local-store.js';
import type { LocalStoreHandle, NodeStore } from './local-store.js';

/** Options of {@link startNode}. */
export interface StartNodeOptions {
  readonly logger: Logger;
  /** @default a fresh registry */
  readonly metrics?: Metrics;
  /** Aborts the wait for the local Redis at start. */
  readonly signal?: AbortSignal;
  /** Give up when the local Redis does not answer within this long; by default wait forever. */
  readonly connectTimeoutMs?: number;
  /** Overrides the purge period (default min(1 h, tombstone_ttl / 10), at least 1 s). */
  readonly purgeIntervalMs?: number;
}

/** A running node. */
export interface RunningNode {
  readonly engine: ReplicationEngine;
  readonly store: NodeStore;
  /** Raw commands to this node's Redis, the store's connection (routed by key on a cluster). */
  readonly redis: CommandSender;
  readonly metrics: Metrics;
  /** The admin HTTP server, when `http.enabled`. */
  readonly admin: AdminServer | undefined;
  /** The configuration in force. */
  readonly config: ResolvedConfig;
  /**
   * Applies a new configuration live (peers and `replication.settings` through
   * `engine.updateConfig`; the HTTP server is restarted when `http:` changed). `local:` and
   * `store:` need a restart: a change there is logged and otherwise ignored.
   * @throws {ReplicationError} `RELOAD_REJECTED` when the engine refuses it (the old config stays).
   */
  reload(next: ResolvedConfig): Promise<void>;
  /** Drains the engine, then closes the HTTP server and the store. Idempotent. */
  stop(timeoutMs?: number): Promise<void>;
}

/** How often tombstones are purged: a tenth of their TTL, at most hourly, at least every second. */
export function purgeIntervalMs(tombstoneTtlMs: number): number {
  return Math.max(1000, Math.min(60 * 60 * 1000, Math.floor(tombstoneTtlMs / 10)));
}

/** The admin API over an engine: every action answers a small JSON object. */
export function engineAdminApi(engine: ReplicationEngine): AdminApi {
  return {
    pause: (peerId) => {
      engine.pause(peerId);
      return Promise.resolve({ peer_id: peerId, paused: true });
    },
    resume: (peerId) => {
      engine.resume(peerId);
      return Promise.resolve({ peer_id: peerId, paused: false });
    },
    resync: async (peerId) => {
      await engine.resync(peerId);
      return { peer_id: peerId, resync: 'started' };
    },
    // snake_case on the wire, like /health and the YAML (RepairReport is camelCase in TypeScript).
    repair: async (peerId, options) =>
      snakeCaseKeys(await engine.repair(peerId, { dryRun: options.dryRun })),
  };
}

function sameHttp(a: ResolvedHttp, b: ResolvedHttp): boolean {
  return a.enabled === b.enabled && a.host === b.host && a.port === b.port && a.token === b.token;
}

/**
 * Warns about every connection whose TLS certificate is not verified (`reject_unauthorized:
 * false`): anyone on the path can then read and change what is replicated.
 */
export function warnUnverifiedTls(config: ResolvedConfig, logger: Logger): void {
  const unverified = [
    ...(config.local.tls?.rejectUnauthorized === false ? ['local'] : []),
    ...config.replication.peers
      .filter((p) => p.tls?.rejectUnauthorized === false)
      .map((p) => `replication.peers[${JSON.stringify(p.nodeId)}]`),
  ];
  for (const where of unverified) {
    logger.warn(
      { config: where },
      `TLS certificate verification is off for ${where} (reject_unauthorized: false): the ` +
        'connection can be read and changed by anyone on the path; use it for tests only',
    );
  }
}

/** `local:` or `store:` differ (they need a restart). */
function restartOnlyChanges(a: ResolvedConfig, b: ResolvedConfig): string[] {
  const changed: string[] = [];
  const local = (c: ResolvedConfig): string =>
    JSON.stringify([
      c.local.redisUrl,
      c.local.redisPrefix,
      c.local.tls?.ca?.toString('base64') ?? null,
      c.local.tls?.cert?.toString('base64') ?? null,
      c.local.tls?.key?.toString('base64') ?? null,
      c.local.tls?.rejectUnauthorized ?? null,
      c.local.tls?.servername ?? null,
    ]);
  if (local(a) !== local(b)) changed.push('local');
  if (JSON.stringify(a.store) !== JSON.stringify(b.store)) changed.push('store');
  return changed;
}

/**
 * Connects this node's store (`local:`, `store:`), starts the engine (`replication:`), the admin
 * server (`http:`, when enabled) and the tombstone purge. Waits for the local Redis (retrying with
 * backoff) unless `connectTimeoutMs` is given. On failure everything started is stopped again.
 * @throws {ReplicationError} when the local Redis, the cursor store or the HTTP port fails.
 */
export async function startNode(
  config: ResolvedConfig,
  options: StartNodeOptions,
): Promise<RunningNode> {
  const logger = options.logger;
  const metrics = options.metrics ?? createMetrics();
  let current = config;
  // Every reconnect attempt fails the same way: one line when it starts, one when it is back.
  const unavailable = new RepeatingWarning(logger, 'local Redis unavailable', {
    recovered: 'local Redis back',
  });
  const local: LocalStoreHandle = await connectLocalStore(config, {
    clientName: `replication-engine:${config.replication.localNodeId}`,
    ...(options.signal !== undefined && { signal: options.signal }),
    ...(options.connectTimeoutMs !== undefined && { timeoutMs: options.connectTimeoutMs }),
    onError: (message) => unavailable.fail({ url: config.local.displayUrl, err: message }),
  });
  local.onReady(() => unavailable.ok({ url: config.local.displayUrl }));
  const { store } = local;
  logger.info(
    {
      url: config.local.displayUrl,
      prefix: config.local.redisPrefix,
      ...(store instanceof PartitionedStore && { cluster: true, partitions: store.layout.count }),
    },
    store instanceof PartitionedStore
      ? 'connected to the local Redis Cluster'
      : 'connected to the local Redis',
  );
  if (store instanceof PartitionedStore && store.layout.count !== config.store.partitions) {
    logger.warn(
      { partitions: store.layout.count, configured: config.store.partitions },
      'the local store keeps the partition count it was created with; store.partitions applies to new stores only',
    );
  }
  const engine = new ReplicationEngine(config, local.store, { metrics, logger });
  let admin: AdminServer | undefined;
  let purging: Promise<void> | undefined;

  const startHttp = async (http: ResolvedHttp): Promise<AdminServer | undefined> => {
    if (!http.enabled) return undefined;
    return startAdminServer({
      host: http.host,
      port: http.port,
      token: http.token,
      metrics,
      logger,
      health: () => engine.health(),
      admin: engineAdminApi(engine),
    });
  };

  const purgeFailing = new RepeatingWarning(logger, 'tombstone purge failed; will retry', {
    recovered: 'tombstone purge works again',
  });
  const purge = (): void => {
    // Only what every configured peer acknowledged (the engine logs what it purged and holds).
    purging ??= engine
      .purgeTombstones()
      .then(() => {
        purgeFailing.ok();
      })
      .catch((error: unknown) => {
        purgeFailing.fail({ err: describeError(error) });
      })
      .finally(() => {
        purging = undefined;
      });
  };

  warnUnverifiedTls(config, logger);
  try {
    admin = await startHttp(config.http);
    await engine.start();
  } catch (error) {
    await engine.stop(2000).catch(() => undefined);
    await admin?.close();
    await local.close();
    throw error;
  }
  const purgeTimer = setInterval(
    purge,
    options.purgeIntervalMs ?? purgeIntervalMs(config.store.tombstoneTtlMs),
  );
  purgeTimer.unref();
  purge();

  let stopping: Promise<void> | undefined;
  const stop = async (timeoutMs = 10_000): Promise<void> => {
    clearInterval(purgeTimer);
    const steps = [
      engine.stop(timeoutMs),
      Promise.resolve(purging),
      // Keep /metrics and /health answering while the engine drains.
    ];
    const results = await Promise.allSettled(steps);
    const more = await Promise.allSettled([admin?.close(), local.close()]);
    for (const result of [...results, ...more]) {
      if (result.status === 'rejected') {
        logger.warn({ err: describeError(result.reason) }, 'shutdown step failed');
      }
    }
  };

  const reload = async (next: ResolvedConfig): Promise<void> => {
    await engine.updateConfig(next);
    const previous = current;
    current = next;
    warnUnverifiedTls(next, logger);
    const ignored = restartOnlyChanges(previous, next);
    if (ignored.length > 0) {
      logger.warn(
        { sections: ignored },
        'changes to local: and store: take effect after a restart; the running values stay',
      );
    }
    if (!sameHttp(previous.http, next.http)) {
      await admin?.close();
      admin = undefined;
      try {
        admin = await startHttp(next.http);
      } catch (error) {
        logger.error(
          { err: describeError(error) },
          'cannot start the HTTP server with the new settings; keeping the old ones',
        );
        admin = await startHttp(previous.http);
      }
    }
  };

  return {
    engine,
    store: local.store,
    redis: local.sender,
    metrics,
    get admin() {
      return admin;
    },
    get config() {
      return current;
    },
    reload,
    stop: (timeoutMs) => (stopping ??= stop(timeoutMs)),
  };
}
