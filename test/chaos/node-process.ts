/**
 * One replication engine in its own process, so a chaos run can kill -9 it for real:
 * `npx tsx test/chaos/node-process.ts <config.yaml|config.json>`.
 *
 * Connects its store to the local Redis as the daemon does (`connectLocalStore`: no offline queue,
 * retried while the Redis is down, named `replication-engine:<node id>` as `startNode` names it, so
 * a `local-conn-kill` fault can find it in CLIENT LIST), starts a ReplicationEngine, prints `ready`
 * on stdout, then one JSON line per engine event (gap, repair with changes, peer up/down). SIGTERM
 * or SIGINT drains and exits 0; so does the end of stdin (the parent is gone), so no engine outlives
 * its test. Logs go to stderr.
 */
import { readFileSync } from 'node:fs';
import { parseConfig } from '../../src/config/load.js';
import { ReplicationEngine } from '../../src/engine/engine.js';
import { connectLocalStore } from '../../src/node/local-store.js';
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

function emit(event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
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
  if (report.applied > 0 || report.deferred > 0)
    emit({
      event: 'repair',
      peerId: report.peerId,
      applied: report.applied,
      deferred: report.deferred,
    });
});
engine.on('peerDown', (peerId, reason) => emit({ event: 'peerDown', peerId, reason }));
engine.on('peerUp', (peerId) => emit({ event: 'peerUp', peerId }));

let stopping: Promise<void> | undefined;
function shutdown(): void {
  stopping ??= (async () => {
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
process.stdout.write('ready\n');
