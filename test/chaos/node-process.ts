/**
 * One replication engine in its own process, so a chaos run can kill -9 it for real:
 * `npx tsx test/chaos/node-process.ts <config.yaml|config.json>`.
 *
 * Connects its store to the local Redis as the daemon does (`connectLocalStore`: no offline queue,
 * retried while the Redis is down, named `replication-engine:<node id>` as `startNode` names it, so
 * a `local-conn-kill` fault can find it in CLIENT LIST), starts a ReplicationEngine, prints `ready`
 * on stdout, then one JSON line per engine event (gap, repair with changes or old records refused,
 * acknowledgements, tombstones purged, peer up/down). It purges tombstones as the daemon does (every
 * `min(1 h, tombstone_ttl / 10)`, at least every second). SIGTERM
 * or SIGINT drains and exits 0; so does the end of stdin (the parent is gone), so no engine outlives
 * its test. Logs go to stderr.
 */
import { readFileSync } from 'node:fs';
import { parseConfig } from '../../src/config/load.js';
import { ReplicationEngine } from '../../src/engine/engine.js';
import { connectLocalStore } from '../../src/node/local-store.js';
import { purgeIntervalMs } from '../../src/node/node.js';
import { createLogger } from '../../src/observability/logger.js';

const path = process.argv[2];
if (path === undefined) {
  process.stderr.write('usage: node-process.ts <config file>\n');
  process.exit(2);
}

const config = parseConfig(readFileSync(path, 'utf8'), { sourceName: path });
const logger = createLogger({
  level: (process.env['LOG_LEVEL'] as 'warn' | undefined) ?? 'warn',
  destination: process.stderr,
});

/** One event line, stamped with the time (ms since the epoch) to line it up with the schedule. */
function emit(event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ ...event, at: Date.now() })}\n`);
}

let lastConnectError = '';
const local = await connectLocalStore(config, {
  clientName: `replication-engine:${config.replication.localNodeId}`,
  onError: (message) => {
    if (message === lastConnectError) return;
    lastConnectError = message;
    logger.warn({ err: message }, 'local Redis unavailable');
  },
});
const store = local.store;
const engine = new ReplicationEngine(config, store, { logger });
engine.on('gap', (gap) => emit({ event: 'gap', ...gap }));
engine.on('repair', (report) => {
  if (report.acknowledged) emit({ event: 'acked', peerId: report.peerId });
  if (report.applied > 0 || report.deferred > 0 || report.refusedOld > 0)
    emit({
      event: 'repair',
      peerId: report.peerId,
      applied: report.applied,
      deferred: report.deferred,
      refusedOld: report.refusedOld,
    });
});
engine.on('peerDown', (peerId, reason) => emit({ event: 'peerDown', peerId, reason }));
engine.on('peerUp', (peerId) => emit({ event: 'peerUp', peerId }));

let stopping: Promise<void> | undefined;
/** The purge timer, once the engine runs (cleared on shutdown). */
const timers: { purge?: NodeJS.Timeout } = {};
function shutdown(): void {
  stopping ??= (async () => {
    clearInterval(timers.purge);
    await engine.stop(10_000).catch((error: unknown) => logger.error({ err: error }, 'stop'));
    await local.close().catch(() => undefined);
    process.exit(0);
  })();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.stdin.on('end', shutdown);
process.stdin.on('error', shutdown);
process.stdin.resume();

await engine.start();
// The acknowledged tombstone purge, on the daemon's period (src/node/node.ts): without it a chaos
// run would never purge, and the rule that deletes stay deleted would go untested.
timers.purge = setInterval(() => {
  engine
    .purgeTombstones()
    .then(({ purged }) => {
      if (purged > 0) emit({ event: 'purge', purged });
    })
    .catch((error: unknown) => logger.warn({ err: String(error) }, 'tombstone purge failed'));
}, purgeIntervalMs(config.store.tombstoneTtlMs));
timers.purge.unref();
process.stdout.write('ready\n');
