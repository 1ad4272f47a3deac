/**
 * Non-ASCII node ids and origins end to end, on real redis-servers (SPEC §8, "One order"): records
 * whose clocks are equal and whose origins are non-ASCII converge by a cold-path repair and by the
 * hot path (where a batch holding several versions of a key keeps the greatest in UTF-8 byte order,
 * as the Lua apply does), and daemons whose `local_node_id`s are non-ASCII become ready and
 * replicate, their ids intact in health, metrics, cursors and the Redis client name.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import Database from 'better-sqlite3';
import { resolveConfig } from '../../src/config/index.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import { ReplicationEngine } from '../../src/engine/engine.js';
import type { StoredRecord } from '../../src/model/record.js';
import { createLogger } from '../../src/observability/logger.js';
import { SyncStore } from '../../src/store/sync-store.js';
import { startDaemon, type Daemon } from '../fixtures/cli/cli-process.js';
import { snapshot } from '../helpers/mesh.js';
import { eventually, freePort, startRedis, type RedisServer } from '../helpers/redis-server.js';
import { BASE_MS, converged, metric, record } from './cold-path-support.js';

/** In UTF-8 byte order ü (C3) < ﬀ (EF AC 80) < 😀 (F0 9F 98 80); in UTF-16 code units 😀 < ﬀ. */
const ORIGINS = ['ü-node', '\u{1F600}-node', 'ﬀ-node'] as const;
const BY_BYTES = ['ü-node', 'ﬀ-node', '\u{1F600}-node'] as const;
const KEYS = Array.from({ length: 21 }, (_, i) => `uk.unicode.${i}`);

const bytesOrder = (a: string, b: string): number =>
  Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/** The same record as `record()`, with an equal clock whatever the origin. */
function sameClock(key: string, origin: string): StoredRecord {
  return record(key, { version: 1, updatedAt: BASE_MS, origin });
}

interface TestNode {
  readonly id: string;
  readonly redis: RedisServer;
  readonly store: SyncStore;
  readonly engine: ReplicationEngine;
  readonly dir: string;
}

const logger = createLogger({
  level: (process.env['LOG_LEVEL'] as 'silent' | undefined) ?? 'silent',
});

/** A store and an (unstarted) engine on `redis`, replicating from `peers`. */
async function testNode(
  id: string,
  redis: RedisServer,
  peers: readonly { id: string; url: string }[],
  options: { settings?: Record<string, unknown>; store?: Record<string, unknown> } = {},
): Promise<TestNode> {
  const dir = mkdtempSync(join(tmpdir(), 'unicode-node-'));
  const config: ResolvedConfig = resolveConfig({
    replication: {
      local_node_id: id,
      settings: {
        cold_path: { enabled: false },
        peer_health: { ping_interval_sec: 1, idle_threshold_sec: 2 },
        ...options.settings,
      },
      peers: peers.map((p) => ({ node_id: p.id, redis_url: p.url })),
      cursor: { sqlite_path: join(dir, 'cursors.db') },
    },
    local: { redis_url: redis.url },
    store: options.store ?? {},
    http: { enabled: false },
  });
  const store = await SyncStore.connect({ redisUrl: redis.url, nodeId: id, store: config.store });
  const engine = new ReplicationEngine(config, store, { logger: logger.child({ node: id }) });
  return { id, redis, store, engine, dir };
}

async function stopNodes(nodes: readonly TestNode[]): Promise<void> {
  await Promise.allSettled(nodes.map((n) => n.engine.stop()));
  await Promise.allSettled(nodes.map((n) => n.store.close()));
  for (const n of nodes) rmSync(n.dir, { recursive: true, force: true });
}

/** Runs one raw command on a redis-server. */
async function onRedis(redis: RedisServer, args: string[]): Promise<unknown> {
  const client = createClient({ url: redis.url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await client.sendCommand(args);
  } finally {
    await client.close();
  }
}

describe('non-ASCII origins with equal clocks', { timeout: 120_000 }, () => {
  let redisA: RedisServer;
  let redisB: RedisServer;
  before(async () => {
    [redisA, redisB] = await Promise.all([startRedis(), startRedis()]);
  });
  after(async () => {
    await Promise.all([redisA, redisB].map((r) => r?.stop()));
  });

  it('converge by a cold-path repair to identical records and roots', async () => {
    const [idA, idB] = ['ü-node', 'ﬀ-node'];
    const a = await testNode(idA, redisA, [{ id: idB, url: redisB.url }], {
      settings: { hot_path: { enabled: false } },
    });
    const b = await testNode(idB, redisB, [{ id: idA, url: redisA.url }], {
      settings: { hot_path: { enabled: false } },
    });
    try {
      await Promise.all([a.engine.start(), b.engine.start()]);
      // Each key has the same clock and content on both nodes; only the origins differ, in all
      // three pairings (one of them, 😀 against ﬀ, is where UTF-16 and UTF-8 disagree).
      await a.store.apply(KEYS.map((key, i) => sameClock(key, ORIGINS[i % 3]!)));
      await b.store.apply(KEYS.map((key, i) => sameClock(key, ORIGINS[(i + 1) % 3]!)));
      assert.equal((await converged([a.store, b.store], KEYS)).roots, false);

      const first = await a.engine.repair(idB);
      assert.equal(first.divergentKeys, KEYS.length);
      await b.engine.repair(idA);

      const state = await converged([a.store, b.store], KEYS);
      assert.ok(state.records, 'identical records');
      assert.ok(state.roots, 'identical Merkle roots');
      assert.equal(state.count, KEYS.length);
      const held = await a.store.getRecords(KEYS);
      for (const [i, key] of KEYS.entries()) {
        const pair = [ORIGINS[i % 3]!, ORIGINS[(i + 1) % 3]!];
        const winner = pair.sort(bytesOrder)[1];
        assert.equal(held.find((r) => r.key === key)?.origin, winner, key);
      }
      for (const [node, peer] of [
        [a, idB],
        [b, idA],
      ] as const) {
        const again = await node.engine.repair(peer);
        assert.equal(again.inSync, true, `${node.id} in sync with ${peer}`);
        assert.equal(again.divergentKeys, 0);
      }
    } finally {
      await stopNodes([a, b]);
      await Promise.all([redisA, redisB].map((r) => onRedis(r, ['FLUSHALL'])));
    }
  });

  it('converge by the hot path: a relayed batch keeps the greatest origin in UTF-8 byte order', async () => {
    // P relays what it applies, so its stream holds every version that won there: per key, the
    // three origins in ascending byte order (each beats the one before). Q tails P alone and reads
    // all of them in one batch, so the batch's own coalescing decides what Q applies.
    const [idP, idQ] = ['ü-relay', '東京-\u{1F680}'];
    const p = await testNode(idP, redisA, [], { store: { relay: true } });
    const q = await testNode(idQ, redisB, [{ id: idP, url: redisA.url }], {
      settings: { hot_path: { batch_size: 500, adaptive_batch_size: false } },
    });
    try {
      for (const origin of BY_BYTES) {
        const results = await p.store.apply(KEYS.map((key) => sameClock(key, origin)));
        const applied = results.filter((r) => r.outcome === 'applied').length;
        assert.equal(applied, KEYS.length, `every ${origin} version wins on P`);
      }
      // A corrupt entry (its hash does not match its data): quarantined under dlq:<P's id>.
      await onRedis(redisA, [
        'XADD',
        'cdc',
        '*',
        'op',
        'PUT',
        'key',
        'uk.unicode.corrupt',
        'hash',
        '0'.repeat(64),
        'data',
        '{}',
        'meta',
        `{"content_type":"json","version":1,"updated_at":${BASE_MS},"origin":"ü-node"}`,
      ]);
      const last = (await onRedis(redisA, ['XREVRANGE', 'cdc', '+', '-', 'COUNT', '1'])) as [
        [string, unknown],
      ];
      await q.engine.start();
      await eventually(
        () => q.engine.health().peers[0]?.cursor === last[0][0],
        'Q committed its cursor past the last entry of P',
        30_000,
      );

      const [onP, onQ] = await Promise.all([snapshot(p.store, KEYS), snapshot(q.store, KEYS)]);
      assert.deepEqual(onQ, onP);
      assert.equal(await q.store.merkleRoot(), await p.store.merkleRoot());
      for (const r of await q.store.getRecords(KEYS)) {
        assert.equal(r.origin, '\u{1F600}-node', r.key);
      }
      assert.equal(await q.store.get('uk.unicode.corrupt'), undefined);
      assert.equal(await onRedis(redisB, ['XLEN', `dlq:${idP}`]), 1, 'dlq keyed by the peer id');
      assert.equal(q.engine.health().peers[0]?.node_id, idP);
      assert.ok(
        (await metric(q.engine, 'replication_cdc_events_applied_total', { peer_id: idP })) >= 1,
        'metrics labelled with the peer id',
      );
    } finally {
      await stopNodes([p, q]);
      await Promise.all([redisA, redisB].map((r) => onRedis(r, ['FLUSHALL'])));
    }
  });
});

describe('daemons with non-ASCII local_node_ids', { timeout: 180_000 }, () => {
  const ids = ['ü-node', '\u{1F600}-node'] as const;
  let dir: string;
  let redis: RedisServer[] = [];
  let ports: number[] = [];
  let daemons: Daemon[] = [];

  const yaml = (i: number): string =>
    [
      'replication:',
      `  local_node_id: ${JSON.stringify(ids[i])}`,
      '  settings:',
      '    hot_path:',
      '      block_timeout: "500ms"',
      '    cold_path:',
      '      interval_sec: 2',
      '  peers:',
      `    - node_id: ${JSON.stringify(ids[1 - i])}`,
      `      redis_url: "${redis[1 - i]!.url}"`,
      '  cursor:',
      `    sqlite_path: "${join(dir, `cursors-${i}.db`)}"`,
      'local:',
      `  redis_url: "${redis[i]!.url}"`,
      'http:',
      `  port: ${ports[i]}`,
      '',
    ].join('\n');
  const url = (i: number, path: string): string => `http://127.0.0.1:${ports[i]}${path}`;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'unicode-daemon-'));
    redis = await Promise.all([startRedis(), startRedis()]);
    ports = [await freePort(), await freePort()];
    daemons = [0, 1].map((i) => {
      const file = join(dir, `node-${i}.yaml`);
      writeFileSync(file, yaml(i));
      return startDaemon(['-c', file]);
    });
  });

  after(async () => {
    for (const d of daemons) if (d.child.exitCode === null) d.child.kill('SIGKILL');
    await Promise.all(daemons.map((d) => d.exited));
    await Promise.all(redis.map((r) => r.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('become ready, replicate both ways, and keep their ids intact', async () => {
    for (const i of [0, 1]) {
      await eventually(
        async () => (await fetch(url(i, '/ready')).catch(() => undefined))?.status === 200,
        `daemon ${ids[i]} ready (its output: ${daemons[i]!.output().slice(-2000)})`,
        60_000,
      );
    }
    // An application writes on each node through its own store, with the node's id as origin.
    const apps = await Promise.all(
      ids.map((nodeId, i) => SyncStore.connect({ redisUrl: redis[i]!.url, nodeId })),
    );
    try {
      await apps[0]!.put('uk.doc.from-0', { on: ids[0] });
      await apps[1]!.put('uk.doc.from-1', { on: ids[1] });
      await eventually(
        async () =>
          (await apps[1]!.getRecords(['uk.doc.from-0']))[0]?.origin === ids[0] &&
          (await apps[0]!.getRecords(['uk.doc.from-1']))[0]?.origin === ids[1],
        'each document on the other node, with its origin',
        30_000,
      );
    } finally {
      await Promise.all(apps.map((s) => s.close()));
    }

    const health = (await (await fetch(url(0, '/health'))).json()) as {
      node_id: string;
      peers: { node_id: string }[];
    };
    assert.equal(health.node_id, ids[0]);
    assert.equal(health.peers[0]?.node_id, ids[1]);
    const metrics = await (await fetch(url(0, '/metrics'))).text();
    assert.ok(metrics.includes(`peer_id="${ids[1]}"`), 'metrics labelled with the peer id');
    const clients = String(await onRedis(redis[0]!, ['CLIENT', 'LIST']));
    assert.match(clients, /name=replication-engine:%C3%BC-node /, clients);

    for (const d of daemons) d.child.kill('SIGTERM');
    for (const d of daemons) assert.deepEqual(await d.exited, { code: 0, signal: null });
    const db = new Database(join(dir, 'cursors-0.db'), { readonly: true });
    try {
      const rows = db.prepare('SELECT peer_id FROM cursors').all() as { peer_id: string }[];
      assert.deepEqual(rows, [{ peer_id: ids[1] }]);
    } finally {
      db.close();
    }
  });
});
