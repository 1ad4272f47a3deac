/**
 * Cold-path benchmarks on redis-servers of their own (two nodes, hot path off): a repair of 100k
 * keys with 100 divergent (time and peer round trips), and the identical-root check for 1M keys
 * (100k with `--quick` or BENCH_QUICK=1), once both trees are up to date.
 */
import type { StoredRecord } from '../src/model/record.js';
import { sha256Hex } from '../src/store/input.js';
import type { LocalStore } from '../src/engine/local-store.js';
import { startMesh, type Mesh, type MeshNode } from '../test/helpers/mesh.js';
import { median, type BenchOptions, type BenchRow } from './report.js';

const SECTION = 'cold-path';
const REPAIR_KEYS = 100_000;
const DIVERGENT = 100;
const REPAIR_RUNS = 5;
const ROOT_RUNS = 200;
const FILL_BATCH = 20_000;
const EPOCH = 1_735_776_000_000;

/** Record `i` (key `uk.nhs.patient.<i>`) at `version`, on a fixed clock: every store agrees. */
export function record(i: number, version = 1, origin = 'node-gen'): StoredRecord {
  const content = Buffer.from(JSON.stringify({ id: `uk.nhs.patient.${i}`, version }));
  return {
    key: `uk.nhs.patient.${i}`,
    content,
    contentHash: sha256Hex(content),
    contentType: 'json',
    version,
    updatedAt: EPOCH + version,
    origin,
    deleted: false,
  };
}

/** The same `count` records applied to every store, generated batch by batch; trees hashed. */
export async function fillIdentical(
  stores: readonly Pick<LocalStore, 'apply' | 'merkleRoot'>[],
  count: number,
): Promise<void> {
  for (let start = 0; start < count; start += FILL_BATCH) {
    const batch = Array.from({ length: Math.min(FILL_BATCH, count - start) }, (_, j) =>
      record(start + j),
    );
    await Promise.all(stores.map((s) => s.apply(batch)));
  }
  await Promise.all(stores.map((s) => s.merkleRoot()));
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

async function withMesh<T>(fn: (a: MeshNode, b: MeshNode) => Promise<T>): Promise<T> {
  const mesh: Mesh = await startMesh({
    nodes: 2,
    settings: { hot_path: { enabled: false }, cold_path: { enabled: false } },
  });
  try {
    const [a, b] = mesh.nodes as [MeshNode, MeshNode];
    return await fn(a, b);
  } finally {
    await mesh.stop();
  }
}

/** B repairs from A, which holds 100 newer versions among 100k keys; repeated on fresh divergence. */
async function repairRows(): Promise<BenchRow[]> {
  return withMesh(async (a, b) => {
    await fillIdentical([a.store, b.store], REPAIR_KEYS);
    const times: number[] = [];
    const trips: number[] = [];
    for (let run = 0; run < REPAIR_RUNS; run++) {
      const version = run + 2;
      const newer = Array.from({ length: DIVERGENT }, (_, j) =>
        record(((run * 7919 + j * 997) % REPAIR_KEYS) + 0, version, a.id),
      );
      await a.store.apply(newer);
      await a.store.merkleRoot(); // A's owner has re-hashed, as its engine does every second
      const started = performance.now();
      const report = await b.engine.repair(a.id);
      times.push(performance.now() - started);
      trips.push(report.peerRoundTrips);
      if (report.applied !== DIVERGENT) {
        throw new Error(`repair applied ${report.applied} of ${DIVERGENT}`);
      }
    }
    const note = `${REPAIR_KEYS.toLocaleString('en-GB')} keys, ${DIVERGENT} divergent; median of ${REPAIR_RUNS}`;
    return [
      {
        section: SECTION,
        name: 'repair 100k keys / 100 divergent',
        value: median(times),
        unit: 'ms',
        note: `${note}; target < 1,000 ms`,
      },
      {
        section: SECTION,
        name: 'repair peer round trips',
        value: median(trips),
        unit: 'round trips',
        note: 'O(divergent × depth): root + 4 levels + leaves + fetch',
      },
    ];
  });
}

/** Identical trees: read both roots (local one refreshed, a no-op) and compare. */
async function rootRows(keys: number): Promise<BenchRow[]> {
  return withMesh(async (a, b) => {
    const filled = performance.now();
    await fillIdentical([a.store, b.store], keys);
    const fillMs = performance.now() - filled;
    const direct: number[] = [];
    const viaRepair: number[] = [];
    for (let i = 0; i < ROOT_RUNS; i++) {
      let started = performance.now();
      const [mine, theirs] = await Promise.all([b.store.merkleRoot(), a.store.reader.root()]);
      direct.push(performance.now() - started);
      if (mine !== theirs) throw new Error('roots differ for identical stores');
      started = performance.now();
      const report = await b.engine.repair(a.id);
      viaRepair.push(performance.now() - started);
      if (!report.inSync || report.peerRoundTrips !== 1) throw new Error('not in sync in 1 trip');
    }
    const label = keys >= 1_000_000 ? '1M' : `${keys / 1000}k`;
    const note = `${keys.toLocaleString('en-GB')} identical keys; median of ${ROOT_RUNS}; target < 10 ms`;
    return [
      {
        section: SECTION,
        name: `identical-root check ${label} keys`,
        value: median(direct),
        unit: 'ms',
        note,
      },
      {
        section: SECTION,
        name: `identical-root check ${label} keys p99`,
        value: percentile(direct, 99),
        unit: 'ms',
        note: `${ROOT_RUNS} runs`,
      },
      {
        section: SECTION,
        name: `in-sync repair cycle ${label} keys`,
        value: median(viaRepair),
        unit: 'ms',
        note: 'engine.repair: 1 peer round trip, metrics and health included',
      },
      {
        section: SECTION,
        name: `fill ${label} keys × 2 stores (setup)`,
        value: fillMs / 1000,
        unit: 's',
        note: 'apply batches + first Merkle refresh; not a target',
      },
    ];
  });
}

/** Runs the cold-path benchmarks. */
export async function run(options?: BenchOptions): Promise<BenchRow[]> {
  const quick = options?.quick === true || process.env['BENCH_QUICK'] === '1';
  const rows = await repairRows();
  rows.push(...(await rootRows(quick ? 100_000 : 1_000_000)));
  return rows;
}

// Run directly: print the rows.
if (import.meta.url === `file://${process.argv[1]}`) {
  for (const row of await run()) console.log(JSON.stringify(row));
}
