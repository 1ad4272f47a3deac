/**
 * A replication engine in its own process, for benchmarks: its RSS is its own and the driver's
 * work does not share its event loop. Driven over the IPC channel of `fork()`.
 *
 * Messages in: { type: 'stats' }, { type: 'stop' }. Out: { type: 'ready' }, { type: 'stats', ... }.
 */
import { readFileSync } from 'node:fs';
// Runs the built package (dist/), as a deployment would: no TypeScript loader in its memory.
import { createLogger, ReplicationEngine, resolveConfig, SyncStore } from '../../dist/index.js';

/** argv[2]: { config, measureLatency } — measureLatency reads a `t` (epoch ms) field of JSON contents. */
const options = JSON.parse(process.argv[2] ?? '{}');
const config = resolveConfig(options.config);
const store = await SyncStore.connect({
  redisUrl: config.local.redisUrl,
  redisPrefix: config.local.redisPrefix,
  nodeId: config.replication.localNodeId,
  store: config.store,
});
const latencies = [];
/** [write time (epoch ms), latency ms] per applied write, for the timeline plot. */
const timeline = [];
let applied = 0;
const now = () => performance.timeOrigin + performance.now();

const measured = Object.assign(Object.create(store), {
  apply: async (records) => {
    const results = await store.apply(records);
    const at = now();
    for (let i = 0; i < results.length; i++) {
      if (results[i].outcome !== 'applied') continue;
      applied += 1;
      if (options.measureLatency) {
        const t = JSON.parse(records[i].content.toString('utf8')).t;
        if (typeof t === 'number') {
          latencies.push(at - t);
          timeline.push([t, at - t]);
        }
      }
    }
    return results;
  },
});

function peakRssKb() {
  const status = readFileSync('/proc/self/status', 'utf8');
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) : Math.round(process.memoryUsage().rss / 1024);
}

const engine = new ReplicationEngine(config, measured, { logger: createLogger({ level: 'warn' }) });
// The clock starts once the peer is connected, as the raw baseline's starts after it connects:
// both figures then cover reading and writing, neither the TCP handshakes.
let startedAt = now();
engine.once('peerUp', () => {
  startedAt = now();
});
await engine.start();
process.send?.({ type: 'ready' });

process.on('message', (message) => {
  if (message.type === 'stats') {
    process.send?.({
      type: 'stats',
      applied,
      elapsedMs: now() - startedAt,
      peakRssKb: peakRssKb(),
      cpuUs: (({ user, system }) => user + system)(process.cpuUsage()),
      mem: process.memoryUsage(),
      latencies: options.measureLatency ? latencies.splice(0) : [],
      timeline: options.measureLatency ? timeline.splice(0) : [],
    });
  } else if (message.type === 'stop') {
    void engine
      .stop()
      .then(() => store.close())
      .finally(() => process.exit(0));
  }
});
