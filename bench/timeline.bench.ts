/**
 * End-to-end latency over time at a steady 1,000 writes/s while the peer's redis-server is killed
 * and restored midway (issue 6): writes on A, engine of B in its own process. Renders
 * docs/latency-timeline.svg so the outage and the recovery are visible.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SyncStore } from '../src/store/sync-store.js';
import { startRedis } from '../test/helpers/redis-server.js';
import { document, EngineChild, engineConfig } from './hot-path.bench.js';
import type { BenchOptions, BenchRow } from './report.js';

const SECTION = 'timeline';

export interface Sample {
  /** Seconds since the start of the run, at the write. */
  readonly at: number;
  /** Write on A → applied on B, ms. */
  readonly latencyMs: number;
}

/** A log-scale scatter of latency over time, with the outage shaded. */
export function renderSvg(
  samples: readonly Sample[],
  outage: readonly [number, number],
  seconds: number,
): string {
  const width = 900;
  const height = 360;
  const left = 60;
  const right = 20;
  const top = 30;
  const bottom = 40;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const minMs = 0.5;
  const maxMs = Math.max(100, ...samples.map((s) => s.latencyMs)) * 1.2;
  const x = (t: number): number => left + (t / seconds) * plotW;
  const y = (ms: number): number => {
    const v = Math.log10(Math.max(minMs, ms));
    const lo = Math.log10(minMs);
    const hi = Math.log10(maxMs);
    return top + plotH - ((v - lo) / (hi - lo)) * plotH;
  };
  const ticks = [1, 10, 100, 1000, 10000].filter((ms) => ms <= maxMs);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<rect x="${x(outage[0])}" y="${top}" width="${x(outage[1]) - x(outage[0])}" height="${plotH}" fill="#fde2e2"/>`,
    `<text x="${x(outage[0]) + 4}" y="${top + 14}" fill="#b00">peer redis-server killed</text>`,
    `<text x="${width / 2}" y="18" text-anchor="middle" font-size="14">End-to-end latency (write on A → applied on B), 1,000 writes/s</text>`,
  ];
  for (const ms of ticks) {
    parts.push(
      `<line x1="${left}" x2="${width - right}" y1="${y(ms)}" y2="${y(ms)}" stroke="#eee"/>`,
    );
    parts.push(
      `<text x="${left - 6}" y="${y(ms) + 4}" text-anchor="end">${ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`}</text>`,
    );
  }
  for (let t = 0; t <= seconds; t += 5) {
    parts.push(`<text x="${x(t)}" y="${height - bottom + 16}" text-anchor="middle">${t} s</text>`);
  }
  parts.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${top + plotH}" stroke="#333"/>`);
  parts.push(
    `<line x1="${left}" x2="${width - right}" y1="${top + plotH}" y2="${top + plotH}" stroke="#333"/>`,
  );
  // Per 250 ms bin: the median and the worst write, as two lines (a point per write would be MBs).
  const bins = new Map<number, number[]>();
  for (const s of samples) {
    const bin = Math.floor(s.at * 4);
    const values = bins.get(bin);
    if (values === undefined) bins.set(bin, [s.latencyMs]);
    else values.push(s.latencyMs);
  }
  const median: string[] = [];
  const worst: string[] = [];
  for (const [bin, values] of [...bins.entries()].sort((p, q) => p[0] - q[0])) {
    values.sort((p, q) => p - q);
    const at = x((bin + 0.5) / 4).toFixed(1);
    median.push(`${at},${y(values[Math.floor(values.length / 2)]!).toFixed(1)}`);
    worst.push(`${at},${y(values[values.length - 1]!).toFixed(1)}`);
  }
  parts.push(
    `<polyline fill="none" stroke="#f59e0b" stroke-width="1" points="${worst.join(' ')}"/>`,
  );
  parts.push(
    `<polyline fill="none" stroke="#2563eb" stroke-width="1.5" points="${median.join(' ')}"/>`,
  );
  parts.push(
    `<text x="${width - right - 180}" y="${top + 14}" fill="#2563eb">median per 250 ms</text>`,
  );
  parts.push(
    `<text x="${width - right - 180}" y="${top + 28}" fill="#f59e0b">worst per 250 ms</text>`,
  );
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

export async function run(options: BenchOptions = { quick: false }): Promise<BenchRow[]> {
  const seconds = options.quick ? 12 : 30;
  const outage: [number, number] = [seconds * 0.4, seconds * 0.4 + 3];
  const dir = mkdtempSync(join(tmpdir(), 'bench-timeline-'));
  const a = await startRedis({ persistent: true });
  const b = await startRedis();
  const child = new EngineChild(engineConfig(a.url, b.url, dir, 100), true);
  const writer = await SyncStore.connect({ redisUrl: a.url, nodeId: 'node-a' });
  const samples: Sample[] = [];
  let failed = 0;
  try {
    await child.ready();
    const origin = performance.timeOrigin;
    const started = performance.now();
    let written = 0;
    let killed = false;
    let restored = false;
    const pending: Promise<void>[] = [];
    while (performance.now() - started < seconds * 1000) {
      const elapsed = (performance.now() - started) / 1000;
      if (!killed && elapsed >= outage[0]) {
        killed = true;
        await a.kill();
      }
      if (killed && !restored && elapsed >= outage[1]) {
        restored = true;
        await a.restart();
      }
      const due = Math.floor(elapsed * 1000);
      while (written < due) {
        const t = origin + performance.now();
        const n = written++;
        pending.push(
          writer.put(`timeline.${n % 5000}`, document(n, t)).then(
            () => undefined,
            () => {
              failed += 1;
            },
          ),
        );
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.all(pending);
    await new Promise((r) => setTimeout(r, 2000));
    const stats = await child.stats();
    for (const [writtenAt, latencyMs] of stats.timeline) {
      samples.push({ at: (writtenAt - origin - started) / 1000, latencyMs });
    }
    const svg = renderSvg(samples, outage, seconds);
    writeFileSync(fileURLToPath(new URL('../docs/latency-timeline.svg', import.meta.url)), svg);
    const steady = samples
      .filter((s) => s.at < outage[0])
      .map((s) => s.latencyMs)
      .sort((p, q) => p - q);
    const after = samples
      .filter((s) => s.at > outage[1] + 5)
      .map((s) => s.latencyMs)
      .sort((p, q) => p - q);
    const worst = Math.max(0, ...samples.map((s) => s.latencyMs));
    const pct = (xs: number[], p: number): number =>
      xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? NaN;
    return [
      { section: SECTION, name: 'p50 before the outage', value: pct(steady, 50), unit: 'ms' },
      {
        section: SECTION,
        name: 'worst write during recovery',
        value: worst,
        unit: 'ms',
        note: `peer redis-server down ${outage[1] - outage[0]} s`,
      },
      { section: SECTION, name: 'p50 from 5 s after restore', value: pct(after, 50), unit: 'ms' },
      {
        section: SECTION,
        name: 'writes refused while the peer was down',
        value: failed,
        unit: 'writes',
        note: 'writes go to the killed Redis',
      },
      {
        section: SECTION,
        name: 'writes delivered',
        value: samples.length,
        unit: 'writes',
        note: 'docs/latency-timeline.svg',
      },
    ];
  } finally {
    await child.stop();
    await writer.close();
    await Promise.all([a.stop(), b.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
}
