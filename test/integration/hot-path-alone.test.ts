/**
 * The hot path on its own (issue 18): with the cold path disabled, nothing repairs what the hot
 * path skips, so each test ends with every entry of the peer's stream applied and the cursor at
 * the stream's head, whatever failed on the way: the local store's connections killed during a
 * catch-up, the local Redis killed and restarted with its data while the peer writes, an apply
 * failing while a stream check drains the batches in flight.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import type { StoredRecord } from '../../src/model/record.js';
import type { LocalStore } from '../../src/engine/local-store.js';
import { ReplicationEngine } from '../../src/engine/engine.js';
import { connectLocalStore } from '../../src/node/local-store.js';
import { createLogger } from '../../src/observability/logger.js';
import { startMesh, writeMany, type Mesh } from '../helpers/mesh.js';
import { eventually } from '../helpers/redis-server.js';

const quiet = createLogger({
  level: (process.env['LOG_LEVEL'] as 'silent' | undefined) ?? 'silent',
});
let mesh: Mesh | undefined;
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
  await mesh?.stop();
  mesh = undefined;
});

/** Keys of `keys` that `node`'s store does not hold. */
async function missing(m: Mesh, node: number, keys: readonly string[]): Promise<string[]> {
  const held = new Set<string>();
  for (let i = 0; i < keys.length; i += 5000) {
    const records = await m.nodes[node]!.store.getRecords(keys.slice(i, i + 5000));
    for (const r of records) held.add(r.key);
  }
  return keys.filter((k) => !held.has(k));
}

/** The id of the last entry in the stream of `node`. */
async function streamHead(m: Mesh, node: number): Promise<string> {
  const client = createClient({ url: m.nodes[node]!.redis.url });
  await client.connect();
  try {
    const reply: unknown = await client.sendCommand(['XREVRANGE', 'cdc', '+', '-', 'COUNT', '1']);
    return String((reply as [string, unknown][])[0]![0]);
  } finally {
    client.destroy();
  }
}

/** Runs `CLIENT KILL TYPE normal` on `url` every 100-300 ms until the returned stop is called. */
function killClientsRepeatedly(url: string): { stop: () => Promise<number> } {
  let running = true;
  let kills = 0;
  const loop = (async () => {
    const client = createClient({ url });
    await client.connect();
    try {
      while (running) {
        // SKIPME yes (the default): this connection survives its own kills.
        const killed = await client.sendCommand(['CLIENT', 'KILL', 'TYPE', 'normal']);
        kills += Number(killed);
        await new Promise((r) => setTimeout(r, 100 + Math.floor(Math.random() * 200)));
      }
    } finally {
      client.destroy();
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return kills;
    },
  };
}

/** Batches that failed to apply, as the engine counted them. */
async function errorsCounted(engine: ReplicationEngine): Promise<number> {
  const metric = await engine.metrics.batchErrorsTotal.get();
  return metric.values.reduce((sum, v) => sum + v.value, 0);
}

/** Waits until `node` holds every key of `keys`; fails with how many never arrived. */
async function allArrive(
  m: Mesh,
  node: number,
  keys: readonly string[],
  ms: number,
): Promise<void> {
  try {
    await eventually(async () => (await missing(m, node, keys)).length === 0, 'every key', ms);
  } catch {
    const lost = await missing(m, node, keys);
    const cursor = m.nodes[node]!.engine.health().peers[0]!.cursor;
    assert.fail(
      `${lost.length} of ${keys.length} keys never arrived by the hot path (cursor ${cursor}, head ${await streamHead(m, 0)}), e.g. ${lost.slice(0, 3).join(', ')}`,
    );
  }
}

describe('the hot path alone loses nothing (cold path disabled)', () => {
  it('applies a 50k catch-up whole while its local connections are killed every 100-300 ms', async () => {
    mesh = await startMesh({ nodes: 2, start: false, settings: { hot_path: { batch_size: 100 } } });
    const keys = await writeMany(mesh, 0, 50_000, 'kill');
    const head = await streamHead(mesh, 0);
    const b = mesh.nodes[1]!;
    const killer = killClientsRepeatedly(b.redis.url);
    cleanups.push(async () => void (await killer.stop()));
    await b.engine.start();
    await eventually(
      () => b.engine.health().peers[0]!.cursor === head,
      'the cursor at the head',
      120_000,
    ).catch(
      () => undefined, // judged below, by what arrived
    );
    const kills = await killer.stop();
    cleanups.length = 0;
    assert.ok(kills > 0, 'the local connections were killed during the catch-up');
    await allArrive(mesh, 1, keys, 30_000);
    await eventually(
      () => b.engine.health().peers[0]!.cursor === head,
      'the cursor at the head',
      30_000,
    );
  });

  it('delivers what a peer wrote while the local Redis was down, after it restarts with its data', async () => {
    mesh = await startMesh({
      nodes: 2,
      start: false,
      redis: { persistent: true },
      settings: { hot_path: { batch_size: 50 } },
    });
    const b = mesh.nodes[1]!;
    // The local store connected as the daemon connects it (no offline queue): while its Redis is
    // down, applies fail at once instead of waiting for it.
    const local = await connectLocalStore(b.config);
    b.engine = new ReplicationEngine(b.config, local.store, { logger: quiet });
    cleanups.push(async () => {
      await b.engine.stop();
      await local.close();
    });
    await b.engine.start();
    const before = await writeMany(mesh, 0, 2000, 'before');
    await b.redis.kill();
    // The peer keeps writing while the local Redis is down: every apply fails until it is back.
    const during = await writeMany(mesh, 0, 3000, 'during');
    await eventually(
      async () => (await errorsCounted(b.engine)) > 0,
      'an apply failure counted',
      20_000,
    );
    await b.redis.restart();
    const after = await writeMany(mesh, 0, 2000, 'after');
    await allArrive(mesh, 1, [...before, ...during, ...after], 60_000);
    const head = await streamHead(mesh, 0);
    await eventually(
      () => b.engine.health().peers[0]!.cursor === head,
      'the cursor at the head',
      20_000,
    );
  });

  it('re-reads a batch that failed while a stream check drained the batches in flight', async () => {
    mesh = await startMesh({ nodes: 2, start: false, settings: { hot_path: { batch_size: 50 } } });
    const keys = await writeMany(mesh, 0, 20_000, 'drain');
    const head = await streamHead(mesh, 0);
    const b = mesh.nodes[1]!;
    // Every 7th apply fails, and each takes a few ms: the catch-up spans several stream checks
    // (every 2 s), each of which drains the batches in flight, some of them failing.
    let applies = 0;
    let failures = 0;
    const store = b.store;
    const flaky: LocalStore = {
      apply: async (records: readonly StoredRecord[]) => {
        applies += 1;
        await new Promise((r) => setTimeout(r, 3));
        if (applies % 7 === 0) {
          failures += 1;
          throw new Error('injected apply failure');
        }
        return store.apply(records);
      },
      isCurrent: (k, h) => store.isCurrent(k, h),
      getRecords: (k) => store.getRecords(k),
      shouldAcceptWrites: () => store.shouldAcceptWrites(),
      merkleRoot: () => store.merkleRoot(),
      merkleChildren: (p) => store.merkleChildren(p),
      merkleLeaves: (p) => store.merkleLeaves(p),
      merkleChildrenMany: (p) => store.merkleChildrenMany(p),
      merkleLeavesMany: (b) => store.merkleLeavesMany(b),
      refreshMerkle: (o) => store.refreshMerkle(o),
      quarantine: (p, e) => store.quarantine(p, e),
      keepsFrames: store.keepsFrames,
    };
    b.engine = new ReplicationEngine(b.config, flaky, { logger: quiet });
    await b.engine.start();
    await eventually(
      () => b.engine.health().peers[0]!.cursor === head,
      'the cursor at the head',
      120_000,
    );
    assert.ok(failures > 10, `${failures} applies failed`);
    await allArrive(mesh, 1, keys, 1000);
  });

  it('reports what waits as lag while the peer is paused, then delivers it on resume', async () => {
    mesh = await startMesh({ nodes: 2 });
    const b = mesh.nodes[1]!;
    const first = await writeMany(mesh, 0, 20, 'live');
    await allArrive(mesh, 1, first, 20_000);
    b.engine.pause('node-a');
    const waiting = await writeMany(mesh, 0, 12, 'paused');
    await eventually(
      () => b.engine.health().peers[0]!.lag_events === 12,
      '12 entries counted as lag while paused',
      20_000,
    );
    const paused = b.engine.health().peers[0]!;
    assert.ok((paused.lag_ms ?? 0) > 0, `lag_ms ${paused.lag_ms}`);
    assert.equal((await missing(mesh, 1, waiting)).length, 12, 'nothing applied while paused');
    b.engine.resume('node-a');
    await allArrive(mesh, 1, waiting, 20_000);
    await eventually(
      () => b.engine.health().peers[0]!.lag_events === 0,
      'no lag once applied',
      20_000,
    );
  });
});
