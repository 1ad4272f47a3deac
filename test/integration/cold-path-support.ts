/**
 * Shared pieces of the cold-path integration tests: generated records, bulk fills through
 * `apply`, raw Redis access to a node, metric reads and store comparison.
 */
import { createClient } from '@redis/client';
import type { ReplicationEngine } from '../../src/engine/engine.js';
import type { StoredRecord } from '../../src/model/record.js';
import { sha256Hex } from '../../src/store/input.js';
import type { SyncStore } from '../../src/store/sync-store.js';
import { snapshot, type MeshNode } from '../helpers/mesh.js';

/** A fixed epoch for generated records, well in the past (but inside the tombstone TTL). */
export const BASE_MS = Date.now() - 60 * 60 * 1000;

/** A generated record; `content` defaults to a small JSON document naming the key and version. */
export function record(
  key: string,
  options: { version?: number; updatedAt?: number; origin?: string; deleted?: boolean } = {},
): StoredRecord {
  const version = options.version ?? 1;
  const deleted = options.deleted ?? false;
  const content = deleted ? Buffer.alloc(0) : Buffer.from(JSON.stringify({ key, version }));
  return {
    key,
    content,
    contentHash: deleted ? '' : sha256Hex(content),
    contentType: deleted ? 'binary' : 'json',
    version,
    updatedAt: options.updatedAt ?? BASE_MS + version,
    origin: options.origin ?? 'node-gen',
    deleted,
  };
}

/** Applies `records` to every store in batches (fast bulk fill). */
export async function fill(
  stores: readonly SyncStore[],
  records: readonly StoredRecord[],
  batch = 20_000,
): Promise<void> {
  for (let i = 0; i < records.length; i += batch) {
    const chunk = records.slice(i, i + batch);
    await Promise.all(stores.map((s) => s.apply(chunk)));
  }
}

/** Runs one raw command on a node's Redis (a client of its own, closed after). */
export async function onRedis(node: MeshNode, args: string[]): Promise<unknown> {
  const client = createClient({ url: node.redis.url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await client.sendCommand(args);
  } finally {
    await client.close();
  }
}

/** Trims a node's CDC stream to nothing, so its peers' hot paths never see what it held. */
export function trimStream(node: MeshNode): Promise<unknown> {
  return onRedis(node, ['XTRIM', 'cdc', 'MAXLEN', '0']);
}

/** The value of one metric series, a histogram's count (0 when the series does not exist yet). */
export async function metric(
  engine: ReplicationEngine,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const m = engine.metrics.registry.getSingleMetric(name);
  if (m === undefined) throw new Error(`no metric ${name}`);
  const { values } = await m.get();
  const histogram = values.some((v) => (v as { metricName?: string }).metricName !== undefined);
  const series = values.find(
    (v) =>
      (!histogram || (v as { metricName?: string }).metricName === `${name}_count`) &&
      Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want),
  );
  return series?.value ?? 0;
}

/** True when every store holds exactly the same records for `keys` and the same Merkle root. */
export async function converged(stores: readonly SyncStore[], keys: readonly string[]) {
  const snaps = await Promise.all(stores.map((s) => snapshot(s, keys)));
  const roots = await Promise.all(stores.map((s) => s.merkleRoot()));
  const first = JSON.stringify(snaps[0]);
  return {
    records: snaps.every((s) => JSON.stringify(s) === first),
    roots: roots.every((r) => r === roots[0]),
    count: snaps[0]!.length,
  };
}
