/**
 * Runs the benchmark modules in sequence, prints one table and merges bench/results.json.
 * Usage: npm run bench [-- --only <section>] [-- --quick]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderBenchmarks } from './markdown.js';
import { formatTable, mergeResults, type BenchModule, type BenchRow } from './report.js';

/** Benchmark modules by section, in run order. Add yours here. */
const MODULES: readonly { section: string; load: () => Promise<BenchModule> }[] = [
  { section: 'store', load: () => import('./store.bench.js') },
  {
    section: 'store-batch',
    load: async () => ({ run: (await import('./store.bench.js')).runBatch }),
  },
  { section: 'hot-path', load: () => import('./hot-path.bench.js') },
  { section: 'cold-path', load: () => import('./cold-path.bench.js') },
  { section: 'timeline', load: () => import('./timeline.bench.js') },
  { section: 'cluster', load: () => import('./cluster.bench.js') },
];

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const only = argValue('--only');
const quick = process.argv.includes('--quick');
const selected = MODULES.filter((m) => only === undefined || m.section === only);
if (selected.length === 0) {
  console.error(
    `no benchmark section ${JSON.stringify(only)}; known: ${MODULES.map((m) => m.section).join(', ')}`,
  );
  process.exitCode = 2;
} else {
  const rows: BenchRow[] = [];
  for (const { section, load } of selected) {
    console.error(`running ${section}${quick ? ' (quick)' : ''}...`);
    const module = await load();
    rows.push(...(await module.run({ quick })));
  }
  console.log(formatTable(rows));
  const path = fileURLToPath(new URL('./results.json', import.meta.url));
  mergeResults(path, rows);
  console.error(`results merged into ${path}`);
  const doc = fileURLToPath(new URL('../docs/BENCHMARKS.md', import.meta.url));
  writeFileSync(
    doc,
    renderBenchmarks(
      JSON.parse(readFileSync(path, 'utf8')) as Parameters<typeof renderBenchmarks>[0],
    ),
  );
  console.error(`${doc} written`);
}
