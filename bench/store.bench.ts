/**
 * SyncStore benchmarks on a redis-server of its own: local put and replicated apply throughput
 * against raw baselines (the same data written with pipelined HSET + XADD and no logic), and the
 * time to bring the Merkle root up to date after N writes into stores of 100k and 1M keys.
 */
import { loadavg } from 'node:os';
import { createClient } from '@redis/client';
import { encodeData } from '../src/codec/zstd.js';
import type { StoredRecord } from '../src/model/record.js';
import { sha256Hex } from '../src/store/input.js';
import type { CommandSender } from '../src/store/redis-io.js';
import { SyncStore } from '../src/store/sync-store.js';
import { startRedis } from '../test/helpers/redis-server.js';
import { median, perSecond, type BenchOptions, type BenchRow } from './report.js';

const SECTION = 'store';
const PUTS = 20_000;
const PUT_CONCURRENCY = 64;
const APPLY_RECORDS = 100_000;
const APPLY_BATCH = 100;

type Client = CommandSender;

function doc(i: number): Record<string, unknown> {
  // ~1 KB of JSON, varied per key so zstd has real work.
  return {
    id: `uk.nhs.patient.${i}`,
    nhs: `${900 + (i % 100)} ${String(i).padStart(3, '0')} ${i % 9973}`,
    notes: Array.from(
      { length: 18 },
      (_, j) => `note ${j} for patient ${i}: stable, review in ${j + 2} weeks`,
    ),
  };
}

function record(i: number, version = 1, small = false): StoredRecord {
  const content = Buffer.from(JSON.stringify(small ? { i, v: version } : doc(i)));
  return {
    key: `uk.nhs.patient.${i}`,
    content,
    contentHash: sha256Hex(content),
    contentType: 'json',
    version,
    updatedAt: 1_735_776_000_000 + version,
    origin: 'node-b',
    deleted: false,
  };
}

/** The raw baseline of one record: HSET of the record fields + XADD of the CDC entry. */
function rawWrite(client: Client, prefix: string, r: StoredRecord, data: Buffer): Promise<unknown> {
  const meta = `{"content_type":"json","version":${r.version},"updated_at":${r.updatedAt},"origin":"node-b"}`;
  return Promise.all([
    client.sendCommand([
      'HSET',
      `${prefix}item:${r.key}`,
      'c',
      r.content,
      'h',
      r.contentHash,
      't',
      'json',
      'ts',
      String(r.updatedAt),
      'v',
      String(r.version),
      'o',
      r.origin,
      'd',
      '0',
      'tp',
      '',
    ]),
    client.sendCommand([
      'XADD',
      `${prefix}cdc`,
      'MAXLEN',
      '~',
      '100000',
      '*',
      'op',
      'PUT',
      'key',
      r.key,
      'hash',
      r.contentHash,
      'data',
      data,
      'meta',
      meta,
    ]),
  ]);
}

async function withConcurrency(
  total: number,
  concurrency: number,
  op: (i: number) => Promise<unknown>,
): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) await op(next++);
    }),
  );
  return performance.now() - started;
}

async function fill(store: SyncStore, from: number, to: number): Promise<void> {
  const batch = 1_000;
  const inFlight: Promise<unknown>[] = [];
  for (let start = from; start < to; start += batch) {
    const records = Array.from({ length: Math.min(batch, to - start) }, (_, i) =>
      record(start + i, 1, true),
    );
    inFlight.push(store.apply(records));
    if (inFlight.length >= 4) await Promise.all(inFlight.splice(0));
  }
  await Promise.all(inFlight);
}

/** Applies `count` new versions of keys spread over [0, size) and times the refresh that follows. */
async function changeAndRefresh(
  store: SyncStore,
  size: number,
  count: number,
  version: number,
): Promise<{ ms: number; note: string }> {
  const stride = Math.max(1, Math.floor(size / count));
  const changed = Array.from({ length: count }, (_, i) =>
    record((i * stride) % size, version, true),
  );
  for (let i = 0; i < changed.length; i += 1_000) await store.apply(changed.slice(i, i + 1_000));
  const started = performance.now();
  const stats = await store.refreshMerkle();
  await store.merkleRoot();
  const ms = performance.now() - started;
  const where =
    stats.rounds === 1 ? `in ${stats.buckets} buckets` : `in ${stats.rounds} rounds of ≤ 8,192`;
  return { ms, note: `${stats.keys} keys settled ${where}` };
}

export async function run(options: BenchOptions = { quick: false }): Promise<BenchRow[]> {
  const server = await startRedis({ args: ['--maxmemory', '0'] });
  // No per-command timeout: node-redis would arm an AbortSignal per command, taxing the baseline's
  // one-command-per-write far more than the store's one script call per batch.
  const client = createClient({ url: server.url, commandOptions: { timeout: 0 } });
  client.on('error', () => undefined);
  await client.connect();
  const rows: BenchRow[] = [];
  const row = (r: Omit<BenchRow, 'section'>): void => {
    rows.push({ section: SECTION, ...r });
    console.error(
      `  ${r.name}: ${r.value} ${r.unit}${r.baseline === undefined ? '' : ` (baseline ${r.baseline})`}`,
    );
  };
  try {
    // Local put: 1 KB JSON, 64 concurrent writers.
    const docs = Array.from({ length: PUTS }, (_, i) => doc(i));
    const putStore = new SyncStore(client, { nodeId: 'node-a', redisPrefix: 'put:', merkle: {} });
    await withConcurrency(2_000, PUT_CONCURRENCY, (i) => putStore.put(`warm.${i}`, docs[i]!));
    const putMs = await withConcurrency(PUTS, PUT_CONCURRENCY, (i) =>
      putStore.put(`uk.nhs.patient.${i}`, docs[i]!),
    );
    const rawRecords = docs.map((_, i) => record(i));
    const rawData = rawRecords.map((r) => encodeData(r.content).data);
    const rawPutMs = await withConcurrency(PUTS, PUT_CONCURRENCY, (i) =>
      rawWrite(client, 'rawput:', rawRecords[i]!, rawData[i]!),
    );
    const putRate = perSecond(PUTS, putMs);
    const rawPutRate = perSecond(PUTS, rawPutMs);
    row({
      name: 'put 1KB JSON (64 concurrent)',
      value: putRate,
      unit: 'ops/s',
      baseline: rawPutRate,
      ratio: putRate / rawPutRate,
      note: 'put includes sha256 + zstd in Node; baseline: HSET + XADD of precomputed data',
    });
    await client.flushAll();

    // Replicated apply: batches of 100, one batch in flight (as the hot path does).
    const applyStore = new SyncStore(client, { nodeId: 'node-a', redisPrefix: 'apply:' });
    const applyRecords = Array.from({ length: APPLY_RECORDS }, (_, i) => record(i));
    const applyData = applyRecords.map((r) => encodeData(r.content).data);
    await applyStore.apply(
      applyRecords.slice(0, 2_000).map((r) => ({ ...r, key: `warm.${r.key}` })),
    );
    let started = performance.now();
    for (let i = 0; i < APPLY_RECORDS; i += APPLY_BATCH)
      await applyStore.apply(applyRecords.slice(i, i + APPLY_BATCH));
    const applyMs = performance.now() - started;
    started = performance.now();
    for (let i = 0; i < APPLY_RECORDS; i += APPLY_BATCH) {
      await Promise.all(
        applyRecords
          .slice(i, i + APPLY_BATCH)
          .map((r, j) => rawWrite(client, 'rawapply:', r, applyData[i + j]!)),
      );
    }
    const rawApplyMs = performance.now() - started;
    const applyRate = perSecond(APPLY_RECORDS, applyMs);
    const rawApplyRate = perSecond(APPLY_RECORDS, rawApplyMs);
    row({
      name: 'apply 1KB JSON, batches of 100',
      value: applyRate,
      unit: 'records/s',
      baseline: rawApplyRate,
      ratio: applyRate / rawApplyRate,
      note: 'target ≥ 0.6× raw; baseline: pipelined HSET + XADD per batch',
    });
    // Duplicates (the hot path re-reading what it already has) are the cheap case.
    started = performance.now();
    for (let i = 0; i < APPLY_RECORDS; i += APPLY_BATCH)
      await applyStore.apply(applyRecords.slice(i, i + APPLY_BATCH));
    row({
      name: 'apply duplicates, batches of 100',
      value: perSecond(APPLY_RECORDS, performance.now() - started),
      unit: 'records/s',
    });
    await client.flushAll();

    // Merkle refresh after N writes.
    const tree = new SyncStore(client, { nodeId: 'node-a', redisPrefix: 'tree:' });
    await fill(tree, 0, 100_000);
    started = performance.now();
    await tree.merkleRoot();
    row({
      name: 'first root of 100k keys (from scratch)',
      value: performance.now() - started,
      unit: 'ms',
    });
    let version = 2;
    const r100k = await changeAndRefresh(tree, 100_000, 1_000, version++);
    row({
      name: 'refresh after 1,000 writes, 100k keys',
      value: r100k.ms,
      unit: 'ms',
      note: r100k.note,
    });
    const w100k = await changeAndRefresh(tree, 100_000, 100_000, version++);
    row({
      name: 'refresh after 100k writes, 100k keys',
      value: w100k.ms,
      unit: 'ms',
      note: w100k.note,
    });

    if (!options.quick) {
      started = performance.now();
      await fill(tree, 100_000, 1_000_000);
      const fillMs = performance.now() - started;
      started = performance.now();
      await tree.merkleRoot();
      row({
        name: 'root after filling to 1M keys',
        value: performance.now() - started,
        unit: 'ms',
        note: `fill took ${(fillMs / 1000).toFixed(1)} s`,
      });
      const r1m = await changeAndRefresh(tree, 1_000_000, 1_000, version++);
      row({
        name: 'refresh after 1,000 writes, 1M keys',
        value: r1m.ms,
        unit: 'ms',
        note: `${r1m.note}; target well under 100 ms`,
      });
      const w1m = await changeAndRefresh(tree, 1_000_000, 100_000, version++);
      row({
        name: 'refresh after 100k writes, 1M keys',
        value: w1m.ms,
        unit: 'ms',
        note: w1m.note,
      });
    }
  } finally {
    await client.close();
    await server.stop();
  }
  return rows;
}

/**
 * Section `store-batch`: one `putMany` of 1,000 1 KB JSON documents against 1,000 `put`s of the
 * same documents awaited one after another (an application writing them in a loop), on fresh
 * keys, the fastest of 9 rounds each. Its own section, so it runs in seconds (`--only store-batch`).
 */
export async function runBatch(): Promise<BenchRow[]> {
  const server = await startRedis({ args: ['--maxmemory', '0'] });
  const client = createClient({ url: server.url, commandOptions: { timeout: 0 } });
  client.on('error', () => undefined);
  await client.connect();
  const ENTRIES = 1_000;
  const ROUNDS = 9;
  try {
    const store = new SyncStore(client, { nodeId: 'node-a', redisPrefix: 'batch:' });
    const docs = Array.from({ length: ENTRIES }, (_, i) => doc(i));
    await store.putMany(docs.map((content, i) => ({ key: `warm.${i}`, content })));
    for (let i = 0; i < 200; i++) await store.put(`warm1.${i}`, docs[i]!);
    const single: number[] = [];
    const batch: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      let started = performance.now();
      for (let i = 0; i < ENTRIES; i++) await store.put(`one.${round}.${i}`, docs[i]!);
      single.push(performance.now() - started);
      started = performance.now();
      const results = await store.putMany(
        docs.map((content, i) => ({ key: `many.${round}.${i}`, content })),
      );
      batch.push(performance.now() - started);
      if (!results.every((r) => r.ok)) throw new Error('putMany refused an entry');
    }
    const load = loadavg()[0]!.toFixed(1);
    // The fastest round of each: the least disturbed by other work on a shared machine.
    const putsMs = Math.min(...single);
    const manyMs = Math.min(...batch);
    const medianRatio = (median(single) / median(batch)).toFixed(2);
    return [
      {
        section: 'store-batch',
        name: 'putMany of 1,000 1KB JSON',
        value: manyMs,
        unit: 'ms',
        baseline: putsMs,
        ratio: putsMs / manyMs,
        note: `baseline: 1,000 awaited puts; target ratio ≥ 5; fastest of ${ROUNDS} (ratio of medians ${medianRatio}); load ${load}`,
      },
    ];
  } finally {
    await client.close();
    await server.stop();
  }
}
