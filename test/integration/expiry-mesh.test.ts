/**
 * Expiry across a mesh (issue 23): three real nodes, one of them reached only by repairs (its hot
 * path off) or away for a while. From a record's `expiresAt` on, no node that holds it serves it,
 * however late it arrived; a later write without a TTL clears the expiry everywhere; and an
 * expired record is collected like a tombstone, so a node returning late with the older live
 * value does not bring it back. Real redis-servers, real engines, short TTLs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventually } from '../helpers/redis-server.js';
import { startMesh, type MeshNode } from '../helpers/mesh.js';
import { trimStream } from './cold-path-support.js';

/** Short retention, a small clock margin (one machine), repairs every second. */
const STORE = { tombstone_ttl: '2s', max_clock_skew: '200ms' };
const SETTINGS = { cold_path: { enabled: true, interval_sec: 1, backoff_base_sec: 1 } };
const PERSISTENT = { persistent: true, args: ['--appendfsync', 'always'] };

async function served(nodes: readonly MeshNode[], key: string): Promise<string | undefined> {
  for (const node of nodes) {
    if ((await node.store.get(key)) !== undefined) return `${node.id} serves ${key}`;
  }
  return undefined;
}

async function listed(node: MeshNode, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const record of node.store.scan({ prefix })) keys.push(record.key);
  return keys;
}

async function purgeAll(nodes: readonly MeshNode[]): Promise<void> {
  for (const node of nodes) await node.engine.purgeTombstones();
}

describe('expiry in a mesh', { timeout: 120_000 }, () => {
  it('with one node reached only by repairs, no node serves a record after its expiresAt, and a later write without TTL clears it', async () => {
    const mesh = await startMesh({ nodes: 3, settings: SETTINGS, store: STORE });
    try {
      const [a, b, c] = mesh.nodes as [MeshNode, MeshNode, MeshNode];
      // C takes nothing from the streams: what reaches it comes by the cold path, later.
      c.config = mesh.configFor(2, { ...SETTINGS, hot_path: { enabled: false } });
      await mesh.restartEngine(2);

      const { record } = await a.store.put('s.1', { user: 'ada' }, { ttlMs: 2000 });
      const expiresAt = record.expiresAt!;
      const batch = await a.store.putMany(
        Array.from({ length: 5 }, (_, i) => ({ key: `b.${i}`, content: { i }, expiresAt })),
      );
      assert.ok(batch.every((r) => r.ok));
      const keys = ['s.1', ...batch.map((r) => r.key)];
      // Every node comes to hold every record with its expiry (C by repair, perhaps after it).
      await eventually(async () => {
        for (const node of mesh.nodes) {
          const records = await node.store.getRecords(keys);
          if (records.length !== keys.length) return false;
          if (!records.every((r) => r.expiresAt === expiresAt)) return false;
        }
        return true;
      }, 'every node holds the expiring records');

      await eventually(() => Date.now() >= expiresAt, 'the records expired');
      for (const node of mesh.nodes) {
        for (const key of keys) {
          assert.equal(await node.store.get(key), undefined, `${node.id} serves ${key}`);
        }
        assert.deepEqual(await listed(node, 's.'), [], `${node.id} lists s.1`);
        assert.deepEqual(await listed(node, 'b.'), [], `${node.id} lists the batch`);
        assert.equal(await node.store.count({ prefix: 'b.' }), 0, `${node.id} counts the batch`);
      }

      // A later write without a TTL: live again everywhere, with no expiry (C by repair).
      await b.store.put('s.1', { user: 'ada', renewed: true });
      await eventually(async () => {
        const seen = await Promise.all(mesh.nodes.map((n) => n.store.get('s.1')));
        return seen.every((r) => r !== undefined && r.expiresAt === undefined && r.version === 2);
      }, 'the renewed record everywhere');
      await eventually(async () => {
        const roots = await Promise.all(mesh.nodes.map((n) => n.store.merkleRoot()));
        return roots.every((r) => r === roots[0]);
      }, 'the trees agree');
      assert.equal((await c.store.get('s.1'))?.origin, b.id);
    } finally {
      await mesh.stop();
    }
  });

  it('a node away with the older live value returns after the expiry: the key never comes back, and is purged everywhere', async () => {
    const mesh = await startMesh({ nodes: 3, settings: SETTINGS, store: STORE, redis: PERSISTENT });
    try {
      const [a, b, c] = mesh.nodes as [MeshNode, MeshNode, MeshNode];
      await a.store.put('doc.1', { v: 'old' });
      await eventually(
        async () => (await served([b], 'doc.1')) !== undefined && !!(await c.store.get('doc.1')),
        'replicated',
      );
      await c.engine.stop();
      await c.redis.kill();
      const { record } = await a.store.put('doc.1', { v: 'new' }, { ttlMs: 300 });
      const expiresAt = record.expiresAt!;
      await eventually(
        async () => (await b.store.getRecord('doc.1'))?.expiresAt === expiresAt,
        'B has the expiring write',
      );
      // Nothing in any stream tells C of it any more.
      await trimStream(a);
      await trimStream(b);
      // Expired, and the TTL passed since: kept on A and B all the same, for C.
      await eventually(() => Date.now() > expiresAt + 2_100, 'the TTL passed since the expiry');
      await purgeAll([a, b]);
      assert.equal((await a.store.getRecord('doc.1'))?.expiresAt, expiresAt, 'A keeps it for C');
      assert.equal(await served([a, b], 'doc.1'), undefined);

      await c.redis.restart();
      assert.ok(await c.store.get('doc.1'), 'C came back holding the old value');
      await mesh.restartEngine(2);
      const deadline = Date.now() + 20_000;
      for (;;) {
        const bad = await served([a, b], 'doc.1');
        if (bad !== undefined) assert.fail(bad);
        const onC = await c.store.getRecord('doc.1');
        if (onC?.expiresAt === expiresAt) break;
        if (Date.now() > deadline) assert.fail('C did not take the expiring write');
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.equal(await served(mesh.nodes, 'doc.1'), undefined);

      // Once every node holds it, it is purged everywhere, and stays gone.
      await eventually(
        async () => {
          await purgeAll(mesh.nodes);
          const records = await Promise.all(mesh.nodes.map((n) => n.store.getRecord('doc.1')));
          return records.every((r) => r === undefined);
        },
        'purged on every node once every node holds it',
        20_000,
      );
      for (let i = 0; i < 20; i++) {
        assert.equal(await served(mesh.nodes, 'doc.1'), undefined, 'the key came back');
        await new Promise((r) => setTimeout(r, 50));
      }
      const roots = await Promise.all(mesh.nodes.map((n) => n.store.merkleRoot()));
      assert.ok(
        roots.every((r) => r === roots[0]),
        'the trees agree',
      );
    } finally {
      await mesh.stop();
    }
  });
});
