/**
 * Shared shape of benchmark results: rows printed as a table and merged into bench/results.json by
 * section, so each benchmark module owns its section and later runs replace only theirs.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

/** One measured figure. */
export type BenchRow = {
  section: string;
  name: string;
  value: number;
  unit: string;
  /** The same figure for a raw baseline (no engine logic), when there is one. */
  baseline?: number;
  /** value / baseline (or baseline / value for times, so higher is better). */
  ratio?: number;
  note?: string;
};

/** Options every benchmark module receives. */
export type BenchOptions = {
  /** Skip the slowest measurements (e.g. the 1M-key store). */
  quick: boolean;
};

/** A benchmark module: measures and returns its rows. */
export type BenchModule = {
  run(options?: BenchOptions): Promise<BenchRow[]>;
};

/** The middle item of `items` ordered by `by` (the upper middle of an even count). */
export function medianBy<T>(items: readonly T[], by: (item: T) => number): T {
  return [...items].sort((x, y) => by(x) - by(y))[Math.floor(items.length / 2)]!;
}

/** The median of `values` (the upper middle of an even count). */
export function median(values: readonly number[]): number {
  return medianBy(values, (v) => v);
}

function fmt(value: number | undefined): string {
  if (value === undefined) return '';
  if (Number.isInteger(value)) return value.toLocaleString('en-GB');
  return Math.abs(value) >= 100 ? Math.round(value).toLocaleString('en-GB') : value.toFixed(2);
}

/** The rows as an aligned text table. */
export function formatTable(rows: readonly BenchRow[]): string {
  const header = ['section', 'name', 'value', 'unit', 'baseline', 'ratio', 'note'];
  const lines = rows.map((r) => [
    r.section,
    r.name,
    fmt(r.value),
    r.unit,
    fmt(r.baseline),
    r.ratio === undefined ? '' : r.ratio.toFixed(2),
    r.note ?? '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const render = (cells: string[]): string =>
    cells
      .map((c, i) =>
        i === 2 || i === 4 || i === 5 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!),
      )
      .join('  ')
      .trimEnd();
  return [render(header), render(widths.map((w) => '-'.repeat(w))), ...lines.map(render)].join(
    '\n',
  );
}

/**
 * Writes `rows` into the JSON file at `path`, replacing the sections present in `rows` and keeping
 * the others.
 */
export function mergeResults(path: string, rows: readonly BenchRow[]): void {
  let existing: { sections?: Record<string, unknown> } = {};
  if (existsSync(path)) {
    try {
      existing = JSON.parse(readFileSync(path, 'utf8')) as typeof existing;
    } catch {
      existing = {};
    }
  }
  const sections: Record<string, unknown> = { ...(existing.sections ?? {}) };
  const bySection = new Map<string, BenchRow[]>();
  for (const row of rows) bySection.set(row.section, [...(bySection.get(row.section) ?? []), row]);
  const meta = {
    measuredAt: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
  };
  for (const [section, sectionRows] of bySection)
    sections[section] = { ...meta, rows: sectionRows };
  writeFileSync(path, `${JSON.stringify({ sections }, null, 2)}\n`);
}

/** Operations per second of `count` operations that took `ms`. */
export function perSecond(count: number, ms: number): number {
  return Math.round((count / ms) * 1000);
}

/** Clock ticks of all CPUs since boot, in total and stolen by the hypervisor (zeros off Linux). */
export interface CpuTicks {
  readonly total: number;
  readonly steal: number;
}

/** The machine's CPU ticks now, from the `cpu` line of /proc/stat. */
export function cpuTicks(): CpuTicks {
  let line: string | undefined;
  try {
    line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
  } catch {
    return { total: 0, steal: 0 };
  }
  // cpu user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
  const ticks = (line ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
  return { total: ticks.reduce((a, b) => a + b, 0), steal: ticks[7] ?? 0 };
}

/** The share of CPU time the hypervisor took from this machine between two readings, in %. */
export function stealPercent(from: CpuTicks, to: CpuTicks): number {
  const total = to.total - from.total;
  return total > 0 ? (100 * (to.steal - from.steal)) / total : 0;
}
