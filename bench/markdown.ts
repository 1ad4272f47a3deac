/**
 * Renders docs/BENCHMARKS.md from bench/results.json: one table per section (figure, baseline,
 * ratio, note) and the machine it ran on.
 */
import { execFileSync } from 'node:child_process';
import { cpus, totalmem, type as osType, release } from 'node:os';
import type { BenchRow } from './report.js';

interface Results {
  sections?: Record<
    string,
    { measuredAt: string; node: string; platform: string; rows: BenchRow[] }
  >;
}

const TITLES: Record<string, string> = {
  store: 'SyncStore (issue 2)',
  'store-batch': 'Batched writes (issue 23)',
  'hot-path': 'Hot path (issue 3)',
  'cold-path': 'Cold path (issue 4)',
  timeline: 'Latency through a peer outage (issue 6)',
  cluster: 'Redis Cluster (issue 22)',
};

/** How to read the batch ratio (it moves with the machine's load). */
const STORE_BATCH_NOTE = [
  'A putMany spends its time on CPU: ~11 µs per entry in Node (JSON, sha256, zstd: what a put',
  'does too) and ~15 µs in Redis (the write_many script; a third of it the XADD), one after the',
  'other; 1,000 awaited puts spend the same plus a round trip each, so the ratio follows what a',
  'round trip costs on this shared 2-core machine at the time. Runs on 2026-12-04 (branch h23a)',
  'measured 3.4–6.4: 6.1 and 6.4 when an awaited put took 172–208 µs, 3.4–4.4 when it took',
  '116–140 µs; the putMany itself took 27–48 ms. Issuing each chunk as soon as it is encoded (so',
  'Redis runs one while Node encodes the next), smaller chunks, fewer calls per entry in the',
  'script (one HSET of the dirty marks and one MSET of the records, as apply.lua does) and a shared',
  'zstd context were each measured and bought nothing here beyond the noise. Counted instead by',
  'callgrind (`node --import tsx bench/redis-instructions.ts 2000 --write-many`, deterministic',
  'whatever the load; 2026-12-06, branch h23): the script took 93,139 Redis instructions per new',
  'entry and 114,813 per second version; with the marks in one HSET and the records in one MSET,',
  'and no string.format for a new key clock and version, 84,137 and 104,608 (-9.7%, -8.9%; the',
  'row above was run on that, at load 12.9, where wall-clock figures say little). Passing the',
  'entries in five arguments (flag bytes, hashes, an arena of bodies with its offsets, as apply.lua',
  'takes its records) instead of seven per entry cost Redis more, not less (91,842 per new entry:',
  'cutting the pieces out of the arena in Lua costs more than parsing them as arguments), so it',
  'was not kept. (A batch into an empty merkle:dirty pays ~29,000 more per entry for its first 512',
  'marks, kept as a listpack that each mark searches linearly; the tree refresh empties it.)',
  'On a quiet machine (2026-12-06, load 1.6-1.9, three runs in a row): 6.90×, 7.37× and 6.63×',
  '(ratios of medians 7.01, 6.97 and 7.43), the putMany 29-31 ms: the target of 5× is met when',
  'the machine is not shared; the row above is the last of the three.',
];

/** How to read the cluster section (figures move with this shared machine's speed). */
const CLUSTER_NOTE = [
  'A Redis Cluster store (docs/PROTOCOL.md §9, issue 22), on a 3-master cluster on this machine,',
  'each figure against a single instance in the same run (2026-12-06, load 1.2-2). Local writes',
  'cost the same with 16 or 256 partitions (0.63× and 0.69×): a write is one script call on one',
  'shard either way. A backlog: the partitions one master serves are applied in one apply_shard',
  'call, and batches that wait are merged, so a partition gets several batches a call: 0.65× and',
  '0.39× (0.43× and 0.27× on 2026-12-04, one call per partition per batch). What still grows',
  'with P is the per-partition work of a call (its checks, dirty marks, feed entry) when little',
  'waits to be merged. The tree refresh runs 64 partitions at once (178 ms with 256 partitions,',
  "as a single instance: 252 ms with 16 at once); a repair reads this node's tree a level at a",
  'time, as fast on a 1M-key cluster store as on a single instance (54 and 51 ms).',
];

const HOT_PATH_NOTE = [
  'The engine, the baseline and both Redis servers share 2 cores, which each side keeps 75–80 %',
  "busy, so the throughput ratio follows the baseline's CPU per event over the engine's (the",
  '"CPU per event" rows). When this shared machine runs fast, the baseline (mostly socket I/O) gains',
  'more than the engine (mostly zstd, sha256 and Lua): two runs on 2026-12-02 of nearly the same',
  'code (167c982, 790ecb5) measured 0.55× with the baseline at 153,824 events/s and 0.73× with it',
  'at 83,930, the ~84k/s the target was set at. Other guests of the host also take CPU at times',
  '(the steal row); in one run during such a spell the baseline fell to 44,893 events/s and every',
  'figure with it (latency p99 39 ms). So each round runs the baseline and then the engine at both',
  'batch sizes, and the notes give the ratio within each round besides the ratio of the medians.',
  'Recent changes: the apply sends the item values (4c45ab5) and the version tuples (b782415) of a',
  'call in one argument, ~1.3 and ~0.3 µs less main-thread CPU per event; three batches per peer',
  'are applied at once instead of two (cb3eb8f); the Merkle upkeep during a catch-up is bounded',
  '(d65342b, the 600k row). The default batch_size 100 costs more per event than 500 (a script',
  'call, a SQLite commit and a read of the peer per 100 events) and waits longer on the peer: the',
  'reads of a backlog follow one another, so at 100 the tailer spends ~40% of a catch-up awaiting',
  'the next read, against ~15% at 500. Verifying a frame (zstd decompression and sha256 of the',
  "content) is about a fifth of the engine's CPU; moving it to a worker thread was measured slower",
  'on these 2 cores (52k against 55k events/s; 42k with shared memory), as it only moves CPU',
  'between threads.',
];

function fmt(value: number | undefined): string {
  if (value === undefined || Number.isNaN(value)) return '';
  if (Number.isInteger(value)) return value.toLocaleString('en-GB');
  return Math.abs(value) >= 100 ? Math.round(value).toLocaleString('en-GB') : value.toFixed(2);
}

function redisVersion(): string {
  try {
    return execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return 'redis-server: unknown';
  }
}

/** The machine this process runs on, in one line. */
export function machine(): string {
  const cpu = cpus();
  return `${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${osType()} ${release()}, Node ${process.version}, ${redisVersion()}`;
}

export function renderBenchmarks(results: Results): string {
  const lines = [
    '# Benchmarks',
    '',
    'Generated by `npm run bench` from `bench/results.json`; do not edit by hand. Every figure is',
    'measured in the same run as its baseline, on the same machine. Ratios are figure ÷ baseline',
    '(for throughput: higher is better). Tests never assert timings; these numbers are the record.',
    '',
    `Machine: ${machine()}.`,
    '',
  ];
  for (const [section, data] of Object.entries(results.sections ?? {})) {
    lines.push(
      `## ${TITLES[section] ?? section}`,
      '',
      `Measured ${data.measuredAt} (${data.node}, ${data.platform}).`,
      '',
    );
    lines.push(
      '| measurement | value | unit | baseline | ratio | note |',
      '|---|---:|---|---:|---:|---|',
    );
    for (const r of data.rows) {
      lines.push(
        `| ${r.name} | ${fmt(r.value)} | ${r.unit} | ${fmt(r.baseline)} | ${r.ratio === undefined ? '' : r.ratio.toFixed(2)} | ${r.note ?? ''} |`,
      );
    }
    lines.push('');
    if (section === 'hot-path') lines.push(...HOT_PATH_NOTE, '');
    if (section === 'store-batch') lines.push(...STORE_BATCH_NOTE, '');
    if (section === 'cluster') lines.push(...CLUSTER_NOTE, '');
    if (section === 'timeline') lines.push('![latency over time](latency-timeline.svg)', '');
  }
  return `${lines.join('\n')}\n`;
}
