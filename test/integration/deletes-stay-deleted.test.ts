/**
 * Deletes stay deleted (issue 20, SPEC §8): a tombstone is purged only when older than
 * `store.tombstone_ttl` and acknowledged by every configured peer, so a node away past the TTL
 * cannot bring a deleted document back; a node whose own Redis comes back empty rebuilds from its
 * peers at once, even with scheduled repairs off. Real redis-servers, short TTLs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ResolvedConfig } from '../../src/config/types.js';
import type { EngineHealth } from '../../src/observability/health.js';
import { eventually } from '../helpers/redis-server.js';
import { startMesh, writeMany, type Mesh, type MeshNode } from '../helpers/mesh.js';
import { metric, onRedis, trimStream } from './cold-path-support.js';

/** Short retention, a small clock margin (one machine), repairs every second. */
const STORE = { tombstone_ttl: '2s', max_clock_skew: '200ms' };
const SETTINGS = { cold_path: { enabled: true, interval_sec: 1, backoff_base_sec: 1 } };
/** Kept across restarts, fsynced at once: a node that comes back holds what it held. */
const PERSISTENT = { persistent: true, args: ['--appendfsync', 'always'] };

/** One acknowledged purge on `node` (what the daemon runs every min(1 h, TTL / 10)). */
async function purge(node: MeshNode): Promise<number> {
  return (await node.engine.purgeTombstones()).purged;
}

/** Waits until a tombstone written at `at` is past the TTL (2 s), then purges on `nodes`. */
async function ttlPassed(at: number, ...nodes: MeshNode[]): Promise<void> {
  await eventually(() => Date.now() > at + 2_100, 'the TTL passed');
  for (const node of nodes) await purge(node);
}

/** Stops a node's engine and kills its Redis (its data survives when persistent). */
async function stopNode(node: MeshNode): Promise<void> {
  await node.engine.stop();
  await node.redis.kill();
}

async function live(node: MeshNode, key: string): Promise<boolean> {
  return (await node.store.get(key)) !== undefined;
}

/** Everything of `nodes` holds `key` as a tombstone or not at all (never live). */
async function deletedEverywhere(nodes: readonly MeshNode[], key: string): Promise<boolean> {
  const seen = await Promise.all(nodes.map((n) => n.store.getRecord(key)));
  return seen.every((r) => r === undefined || r.deleted);
}

/** The config of node `i` without peer `peerId`. */
function without(mesh: Mesh, i: number, peerId: string): ResolvedConfig {
  const config = mesh.configFor(i, SETTINGS);
  return {
    ...config,
    replication: {
      ...config.replication,
      peers: config.replication.peers.filter((p) => p.nodeId !== peerId),
    },
  };
}

/** Polls `check` on `nodes` until `done` is true, failing if `never` is ever true on the way. */
async function watch(
  what: string,
  never: () => Promise<string | undefined>,
  done: () => Promise<boolean>,
  timeoutMs = 20_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let polls = 0;
  for (;;) {
    const bad = await never();
    if (bad !== undefined) assert.fail(`${bad} (after ${polls} polls)`);
    polls += 1;
    if (await done()) return polls;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('deletes stay deleted', { timeout: 120_000 }, () => {
  it('a node away past the TTL, while the stream is trimmed past the delete, does not bring it back', async () => {
    const mesh = await startMesh({ nodes: 3, settings: SETTINGS, store: STORE, redis: PERSISTENT });
    try {
      const [a, b, c] = mesh.nodes as [MeshNode, MeshNode, MeshNode];
      await a.store.put('doc.1', { v: 'old' });
      await eventually(
        async () => (await live(b, 'doc.1')) && (await live(c, 'doc.1')),
        'replicated',
      );
      await stopNode(c);
      const deletedAt = Date.now();
      await a.store.delete('doc.1');
      await eventually(async () => !(await live(b, 'doc.1')), 'B has the delete');
      // Nothing in any stream tells C of the delete any more.
      await trimStream(a);
      await trimStream(b);
      // The TTL passes: the tombstone is kept on A and B, for C.
      await ttlPassed(deletedAt, a, b);

      // C returns with the old value.
      await c.redis.restart();
      assert.equal(await live(c, 'doc.1'), true, 'C came back holding the old value');
      await mesh.restartEngine(2);
      const polls = await watch(
        'C converged to the delete',
        async () => {
          for (const n of [a, b])
            if (await live(n, 'doc.1')) return `${n.id} serves the deleted document`;
          return undefined;
        },
        async () => !(await live(c, 'doc.1')),
      );
      assert.ok(polls > 0);
      assert.equal(a.engine.health().tombstones?.held, 1, 'A held the tombstone for C');
      assert.deepEqual(
        a.engine.health().tombstones?.held_for.map((h) => h.peer_id),
        [c.id],
        'C held the tombstone back',
      );
      // Once C holds it, the tombstone is purged everywhere, and the document stays deleted.
      await eventually(
        async () => {
          await Promise.all(mesh.nodes.map((n) => purge(n)));
          const records = await Promise.all(mesh.nodes.map((n) => n.store.getRecord('doc.1')));
          return records.every((r) => r === undefined);
        },
        'purged on every node once every node holds it',
        20_000,
      );
      for (let i = 0; i < 20; i++) {
        assert.ok(await deletedEverywhere(mesh.nodes, 'doc.1'), 'the document stays deleted');
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(await metric(a.engine, 'replication_tombstones_purged_total'), 1);
    } finally {
      await mesh.stop();
    }
  });

  it("C's Redis up before its engine: A never serves the deleted document", async () => {
    const mesh = await startMesh({ nodes: 3, settings: SETTINGS, store: STORE, redis: PERSISTENT });
    try {
      const [a, b, c] = mesh.nodes as [MeshNode, MeshNode, MeshNode];
      await a.store.put('doc.2', { v: 'old' });
      await eventually(
        async () => (await live(b, 'doc.2')) && (await live(c, 'doc.2')),
        'replicated',
      );
      await stopNode(c);
      const deletedAt = Date.now();
      await a.store.delete('doc.2');
      await eventually(async () => !(await live(b, 'doc.2')), 'B has the delete');
      await ttlPassed(deletedAt, a, b);
      await c.redis.restart();
      // A and B repair against C's Redis (holding the old value) while C's engine is down.
      const cycles = await metric(a.engine, 'replication_repair_cycles_total', { peer_id: c.id });
      await watch(
        'A repaired with C three times',
        async () => {
          await purge(a);
          for (const n of [a, b])
            if (await live(n, 'doc.2')) return `${n.id} serves the deleted document`;
          return undefined;
        },
        async () =>
          (await metric(a.engine, 'replication_repair_cycles_total', { peer_id: c.id })) >=
          cycles + 3,
      );
      assert.equal(
        (await a.store.getRecord('doc.2'))?.deleted,
        true,
        'A still holds the tombstone',
      );
      await mesh.restartEngine(2);
      await watch(
        'C converged to the delete',
        async () => {
          for (const n of [a, b])
            if (await live(n, 'doc.2')) return `${n.id} serves the deleted document`;
          return undefined;
        },
        async () => !(await live(c, 'doc.2')),
      );
    } finally {
      await mesh.stop();
    }
  });

  it('a peer down past the TTL holds tombstones back (reported), which are purged once it returns and syncs', async () => {
    const mesh = await startMesh({ nodes: 2, settings: SETTINGS, store: STORE, redis: PERSISTENT });
    try {
      const [a, b] = mesh.nodes as [MeshNode, MeshNode];
      const keys = await writeMany(mesh, 0, 5, 'held');
      await eventually(async () => (await b.store.getRecords(keys)).length === 5, 'replicated');
      const acked = async (): Promise<number | undefined> =>
        (await a.store.tombstones.gcState()).acked.get(b.id);
      const before = Date.now();
      await eventually(async () => ((await acked()) ?? 0) >= before, 'a repair acknowledged B');
      await stopNode(b);
      // B, down past the TTL with no tombstone to keep yet, is named in health but blocks nothing.
      await ttlPassed(Date.now(), a);
      const idle = a.engine.health().tombstones!;
      assert.deepEqual(
        idle.held_for.map((h) => h.peer_id),
        [b.id],
      );
      assert.equal(idle.held, 0);
      assert.equal(
        await metric(a.engine, 'replication_tombstone_gc_blocked', { peer_id: b.id }),
        0,
        'gc_blocked reads 1 for a peer that holds nothing back',
      );
      const deletedAt = Date.now();
      for (const key of keys) await a.store.delete(key);
      await ttlPassed(deletedAt, a);
      assert.equal((await a.store.getRecords(keys)).filter((r) => r.deleted).length, 5, 'kept');
      const t = a.engine.health().tombstones!;
      assert.equal(t.held, 5);
      assert.equal(t.held_for.length, 1);
      assert.equal(t.held_for[0]!.peer_id, b.id);
      const since = t.held_for[0]!.acknowledged_at_ms;
      assert.ok(
        since !== null && since <= deletedAt,
        `B last acknowledged before it went down (${since})`,
      );
      assert.ok(t.held_bytes > 5 * 40, `bytes held: ${t.held_bytes}`);
      assert.equal(await metric(a.engine, 'replication_tombstones_held'), 5);
      assert.ok((await metric(a.engine, 'replication_tombstones_held_bytes')) > 0);
      assert.equal(
        await metric(a.engine, 'replication_tombstone_gc_blocked', { peer_id: b.id }),
        1,
      );
      assert.equal(
        await metric(a.engine, 'replication_peer_acknowledged_at_ms', { peer_id: b.id }),
        since,
      );
      assert.equal((await a.store.getRecords(keys)).filter((r) => r.deleted).length, 5);

      await b.redis.restart();
      await mesh.restartEngine(1);
      await eventually(
        async () => {
          await purge(a);
          return (await a.store.getRecords(keys)).length === 0;
        },
        'A purged them once B acknowledged them',
        20_000,
      );
      assert.equal(a.engine.health().tombstones?.held, 0);
      assert.equal(
        await metric(a.engine, 'replication_tombstone_gc_blocked', { peer_id: b.id }),
        0,
      );
      assert.equal(await metric(a.engine, 'replication_tombstones_purged_total'), 5);
      await eventually(
        async () => {
          await purge(b);
          return (await b.store.getRecords(keys)).length === 0;
        },
        'B purged them too',
        20_000,
      );
    } finally {
      await mesh.stop();
    }
  });

  it('a peer removed from the config no longer holds tombstones back', async () => {
    const mesh = await startMesh({ nodes: 3, settings: SETTINGS, store: STORE });
    try {
      const [a, b, c] = mesh.nodes as [MeshNode, MeshNode, MeshNode];
      await a.store.put('doc.3', { v: 1 });
      await eventually(
        async () => (await live(b, 'doc.3')) && (await live(c, 'doc.3')),
        'replicated',
      );
      await stopNode(c);
      const deletedAt = Date.now();
      await a.store.delete('doc.3');
      await ttlPassed(deletedAt, a);
      assert.equal((await a.store.getRecord('doc.3'))?.deleted, true, 'kept for C');
      assert.deepEqual(
        a.engine.health().tombstones?.held_for.map((h) => h.peer_id),
        [c.id],
      );
      await a.engine.updateConfig(without(mesh, 0, c.id));
      await eventually(async () => {
        await purge(a);
        return (await a.store.getRecord('doc.3')) === undefined;
      }, 'purged without C');
      assert.deepEqual(a.engine.health().tombstones?.held_for, []);
    } finally {
      await mesh.stop();
    }
  });

  it('a node removed from the config and back without a rebuild converges to the deletes', async () => {
    const mesh = await startMesh({ nodes: 3, settings: SETTINGS, store: STORE, redis: PERSISTENT });
    try {
      const [a, b, c] = mesh.nodes as [MeshNode, MeshNode, MeshNode];
      await a.store.put('doc.4', { v: 'old' });
      await eventually(
        async () => (await live(b, 'doc.4')) && (await live(c, 'doc.4')),
        'replicated',
      );
      await stopNode(c);
      const deletedAt = Date.now();
      await a.store.delete('doc.4');
      await eventually(async () => !(await live(b, 'doc.4')), 'B has the delete');
      await trimStream(a);
      await trimStream(b);
      // C is taken out of the mesh: the delete is purged everywhere else.
      await a.engine.updateConfig(without(mesh, 0, c.id));
      await b.engine.updateConfig(without(mesh, 1, c.id));
      await ttlPassed(deletedAt);
      await eventually(async () => {
        await purge(a);
        await purge(b);
        return (
          (await a.store.getRecord('doc.4')) === undefined &&
          (await b.store.getRecord('doc.4')) === undefined
        );
      }, 'purged on A and B');
      // C comes back with its old data, and is put back in the config without being rebuilt.
      await c.redis.restart();
      await mesh.restartEngine(2);
      await a.engine.updateConfig(mesh.configFor(0, SETTINGS));
      await b.engine.updateConfig(mesh.configFor(1, SETTINGS));
      await watch(
        'C converged to the delete',
        async () => {
          for (const n of [a, b]) {
            if (await live(n, 'doc.4')) return `${n.id} serves the deleted document`;
          }
          return undefined;
        },
        async () => !(await live(c, 'doc.4')),
      );
      const prevented =
        (await metric(a.engine, 'replication_resurrections_prevented_total', { peer_id: c.id })) +
        (await metric(b.engine, 'replication_resurrections_prevented_total', { peer_id: c.id }));
      assert.ok(prevented >= 1, `refusals counted: ${prevented}`);
      // C holds a superseding tombstone, just above its old record.
      const held = await c.store.getRecord('doc.4');
      assert.equal(held?.deleted, true);
    } finally {
      await mesh.stop();
    }
  });

  it('a node whose Redis was flushed rebuilds from its peers at once, with scheduled repairs off', async () => {
    const mesh = await startMesh({ nodes: 2 });
    try {
      const b = mesh.nodes[1]!;
      assert.equal(b.config.replication.coldPath.enabled, false);
      const keys = await writeMany(mesh, 0, 2000, 'wiped');
      await eventually(
        async () => (await b.store.getRecords(keys)).length === 2000,
        'replicated',
        30_000,
      );
      await onRedis(b, ['FLUSHALL']);
      keys.push(...(await writeMany(mesh, 0, 10, 'after')));
      let during: EngineHealth | undefined;
      await eventually(
        async () => {
          const h = b.engine.health();
          if (h.rebuild?.finished_at_ms === null) during ??= h;
          return (await b.store.getRecords(keys)).length === 2010;
        },
        'B rebuilt: every key is back',
        30_000,
      );
      assert.ok(during !== undefined, 'the rebuild was reported while it ran');
      assert.equal(during.healthy, false, 'unhealthy while rebuilding');
      assert.ok(during.problems.some((p) => p.includes('rebuilding from peers')));
      assert.equal(await metric(b.engine, 'replication_local_store_resets_total'), 1);
      await eventually(
        () => b.engine.health().rebuild?.finished_at_ms !== null,
        'the rebuild is reported finished',
      );
      const after = b.engine.health();
      assert.deepEqual(after.rebuild?.peers_pending, []);
      assert.ok(
        !after.problems.some((p) => p.includes('rebuilding')),
        `no rebuild problem left: ${after.problems.join('; ')}`,
      );
    } finally {
      await mesh.stop();
    }
  });
});
