/**
 * Redis Cluster benchmarks (issue 22), each measured against the single-instance layout in the
 * same run on this machine: a 200k-event backlog replicated by the hot path into a single
 * instance and into a 3-master cluster (16 and 256 partitions); local writes, whose cost must not
 * grow with P; the tree's upkeep (refresh after 5,000 writes); and a repair of 100 divergent keys
 * in a 1M-key store, the cluster store's against the single instance's. With `--quick`, 50k events
 * and 100k keys.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@redis/client';
import { startRedisCluster, type RedisCluster } from '../src/cli/redis-cluster.js';
import { encodeCdcEntry } from '../src/codec/cdc.js';
import { resolveConfig } from '../src/config/index.js';
import type { StoredRecord } from '../src/model/record.js';
import { startNode, type RunningNode } from '../src/node/node.js';
import { createLogger } from '../src/observability/logger.js';
import { createClusterConnection } from '../src/redis/connect.js';
import { sha256Hex } from '../src/store/input.js';
import type { LocalStore } from '../src/engine/local-store.js';
import { PartitionedStore } from '../src/store/partitioned-store.js';
import { newRedisClient } from '../src/store/redis-io.js';
import { SyncStore } from '../src/store/sync-store.js';
import { startRedis, type RedisServer } from '../test/helpers/redis-server.js';
import { fillIdentical, record } from './cold-path.bench.js';
import { document } from './hot-path.bench.js';
import { median, type BenchOptions, type BenchRow } from './report.js';

const SECTION = 'cluster';
const WRITES = 5_000;
const DIVERGENT = 100;
const REPAIR_RUNS = 3;

function recordOf(i: number): StoredRecord {
  const content = document(i);
  return {
    key: `uk.nhs.patient.${i}`,
    content,
    contentHash: sha256Hex(content),
    contentType: 'json',
    updatedAt: Date.now(),
    version: 1,
    origin: 'node-a',
    deleted: false,
  };
}

/**
 * Median ms of a repair by nodes on a single instance and on the cluster (16 partitions), each
 * holding `keys` records, from a single-instance peer holding the same records with 100 of them
 * newer; repeated on fresh divergence. Both nodes repair the same divergence in each run.
 */
async function repairRows(
  peer: RedisServer,
  single: RedisServer,
  cluster: RedisCluster,
  keys: number,
  dir: string,
): Promise<BenchRow[]> {
  const raw = newRedisClient({ url: peer.url });
  await raw.connect();
  const nodes: RunningNode[] = [];
  try {
    const peerStore = new SyncStore(raw, { nodeId: 'node-a' });
    for (const [name, url] of [
      ['r-single', single.url],
      ['r-cluster', cluster.url],
    ] as const) {
      const config = resolveConfig({
        replication: {
          local_node_id: name,
          settings: { hot_path: { enabled: false }, cold_path: { enabled: false } },
          peers: [{ node_id: 'node-a', redis_url: peer.url }],
          cursor: { sqlite_path: join(dir, `${name}-cursors.db`) },
        },
        local: { redis_url: url, redis_prefix: 'r:' },
        store: { partitions: 16 },
        http: { enabled: false },
      });
      nodes.push(await startNode(config, { logger: createLogger({ level: 'warn' }) }));
    }
    await fillIdentical([peerStore, ...nodes.map((n) => n.store)], keys);
    const times: [number[], number[]] = [[], []];
    for (let run = 0; run < REPAIR_RUNS; run++) {
      const newer = Array.from({ length: DIVERGENT }, (_, j) =>
        record((run * 7919 + j * 997) % keys, run + 2, 'node-a'),
      );
      await peerStore.apply(newer);
      await peerStore.merkleRoot(); // the peer's owner has re-hashed, as its engine does
      for (const [i, node] of nodes.entries()) {
        const started = performance.now();
        const report = await node.engine.repair('node-a');
        times[i]!.push(performance.now() - started);
        if (report.applied !== DIVERGENT) {
          throw new Error(`repair applied ${report.applied} of ${DIVERGENT}`);
        }
      }
    }
    const [singleMs, clusterMs] = times.map((t) => median(t)) as [number, number];
    const label = keys >= 1_000_000 ? `${keys / 1_000_000}M` : `${keys / 1000}k`;
    return [
      {
        section: SECTION,
        name: `repair ${DIVERGENT} divergent keys in a ${label}-key single instance`,
        value: Math.round(singleMs),
        unit: 'ms',
        note: `from a single-instance peer; median of ${REPAIR_RUNS}`,
      },
      {
        section: SECTION,
        name: `repair ${DIVERGENT} divergent keys in a ${label}-key cluster store, 16 partitions`,
        value: Math.round(clusterMs),
        unit: 'ms',
        baseline: Math.round(singleMs),
        ratio: singleMs / clusterMs,
        note: 'the same divergence, vs the single instance (ratio > 1: faster)',
      },
    ];
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    await raw.close();
  }
}

/** Appends `n` records to the peer's `cdc` stream, pipelined. */
async function fillStream(url: string, n: number): Promise<void> {
  const client = createClient({ url });
  await client.connect();
  for (let i = 0; i < n; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      batch.push(client.sendCommand(['XADD', 'cdc', '*', ...encodeCdcEntry(recordOf(j))]));
    }
    await Promise.all(batch);
  }
  client.destroy();
}

/** Events/s of a node on `url` (prefix `prefix`) catching up on the peer's backlog of `n`. */
async function catchUp(
  peer: RedisServer,
  url: string,
  prefix: string,
  partitions: 16 | 256,
  n: number,
  dir: string,
): Promise<number> {
  const config = resolveConfig({
    replication: {
      local_node_id: 'node-b',
      settings: { hot_path: { batch_size: 500 }, cold_path: { enabled: false } },
      peers: [{ node_id: 'node-a', redis_url: peer.url }],
      cursor: { sqlite_path: join(dir, `${prefix.replace(':', '')}-cursors.db`) },
    },
    local: { redis_url: url, redis_prefix: prefix },
    store: { partitions },
    http: { enabled: false },
  });
  const started = performance.now();
  const node: RunningNode = await startNode(config, { logger: createLogger({ level: 'warn' }) });
  try {
    const last = `uk.nhs.patient.${n - 1}`;
    for (;;) {
      if ((await node.store.getRecords([last])).length === 1) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return n / ((performance.now() - started) / 1000);
  } finally {
    await node.stop();
  }
}

/** Local writes/s, one at a time with 16 in flight, and the refresh after them (ms). */
async function writes(store: LocalStore & Pick<SyncStore, 'put'>): Promise<[number, number]> {
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < WRITES) {
      const i = next++;
      await store.put(`w.${i}`, { i, body: 'x'.repeat(900) });
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  const rate = WRITES / ((performance.now() - started) / 1000);
  const refreshStarted = performance.now();
  await store.merkleRoot();
  return [rate, performance.now() - refreshStarted];
}

export async function run({ quick }: BenchOptions = { quick: false }): Promise<BenchRow[]> {
  const n = quick ? 50_000 : 200_000;
  const dir = mkdtempSync(join(tmpdir(), 'repl-bench-cluster-'));
  let cluster: RedisCluster | undefined;
  const servers: RedisServer[] = [];
  const rows: BenchRow[] = [];
  try {
    const [peer, single] = await Promise.all([startRedis(), startRedis()]);
    servers.push(peer, single);
    cluster = await startRedisCluster(join(dir, 'cluster'), { appendfsync: 'no' });
    await fillStream(peer.url, n);

    const baseline = await catchUp(peer, single.url, 'b:', 16, n, dir);
    rows.push({
      section: SECTION,
      name: `${n / 1000}k backlog into a single instance`,
      value: Math.round(baseline),
      unit: 'events/s',
      note: 'batch_size 500, the engine in the bench process',
    });
    for (const partitions of [16, 256] as const) {
      const rate = await catchUp(peer, cluster.url, `c${partitions}:`, partitions, n, dir);
      rows.push({
        section: SECTION,
        name: `${n / 1000}k backlog into a 3-master cluster, ${partitions} partitions`,
        value: Math.round(rate),
        unit: 'events/s',
        baseline: Math.round(baseline),
        ratio: rate / baseline,
        note: 'vs the single instance in the same run',
      });
    }

    // Local writes and the tree's upkeep: single vs cluster with 16 and 256 partitions.
    const raw = newRedisClient({ url: single.url });
    await raw.connect();
    const [singleRate, singleRefresh] = await writes(new SyncStore(raw, { nodeId: 'w' }));
    await raw.close();
    const connection = createClusterConnection({ url: cluster.url, reconnectDelay: () => 100 });
    await connection.client.connect();
    for (const partitions of [16, 256] as const) {
      const store = await PartitionedStore.open(connection.sender, {
        nodeId: 'w',
        redisPrefix: `w${partitions}:`,
        partitions,
      });
      const [rate, refresh] = await writes(store);
      rows.push(
        {
          section: SECTION,
          name: `local writes, cluster with ${partitions} partitions`,
          value: Math.round(rate),
          unit: 'writes/s',
          baseline: Math.round(singleRate),
          ratio: rate / singleRate,
          note: `${WRITES} puts of ~1 KB, 16 in flight, vs a single instance`,
        },
        {
          section: SECTION,
          name: `tree refresh after ${WRITES} writes, ${partitions} partitions`,
          value: Math.round(refresh),
          unit: 'ms',
          baseline: Math.round(singleRefresh),
          ratio: singleRefresh / refresh,
          note: 'vs a single instance (ratio > 1: faster)',
        },
      );
    }
    await connection.client.close();

    rows.push(...(await repairRows(peer, single, cluster, quick ? 100_000 : 1_000_000, dir)));
  } finally {
    await cluster?.kill();
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
