/**
 * The hot path's raw baseline in its own process, as the engine runs in its own: a fresh process,
 * so neither side profits from a JIT and heap warmed by earlier benchmark sections (in one process
 * the baseline ran up to 25% faster after the store section than alone).
 *
 * argv[2]: { from, to, n }. XREAD COUNT 1000 from `from`, pipelined HSETs of the same records
 * into `to`, until `n` are copied; the next read overlaps the writes of the previous batch (as the
 * engine's reads overlap its applies), so the baseline is as fast as a plain copy gets. No parsing,
 * verification or LWW. Sends { type: 'rate', rate, cpuUs } (records/s, and this process's CPU time
 * while copying, µs) and exits.
 */
import { createClient, RESP_TYPES } from '@redis/client';

const { from, to, n } = JSON.parse(process.argv[2] ?? '{}');
const BUFFERS = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } };
// No per-command timeout: node-redis arms an AbortSignal per command otherwise.
const source = createClient({ url: from, commandOptions: { timeout: 0 } });
const target = createClient({ url: to, commandOptions: { timeout: 0 } });
await Promise.all([source.connect(), target.connect()]);
const started = performance.now();
const cpuBefore = process.cpuUsage();
let cursor = '0-0';
let copied = 0;
let writing = Promise.resolve();
while (copied < n) {
  const reply = await source.sendCommand(
    ['XREAD', 'COUNT', '1000', 'STREAMS', 'cdc', cursor],
    BUFFERS,
  );
  const entries = Object.values(reply ?? {})[0] ?? [];
  if (entries.length === 0) break;
  await writing;
  writing = Promise.all(
    entries.map(([, f]) =>
      target.sendCommand([
        'HSET',
        Buffer.concat([Buffer.from('item:'), f[3]]),
        'h',
        f[5],
        'c',
        f[7],
        'm',
        f[9],
      ]),
    ),
  );
  copied += entries.length;
  cursor = String(entries.at(-1)[0]);
}
await writing;
const ms = performance.now() - started;
const cpu = process.cpuUsage(cpuBefore);
source.destroy();
target.destroy();
process.send?.({ type: 'rate', rate: (copied / ms) * 1000, cpuUs: cpu.user + cpu.system }, () =>
  process.exit(0),
);
