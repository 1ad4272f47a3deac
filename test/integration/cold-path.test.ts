import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient, RESP_TYPES } from '@redis/client';
import { snapshot, startMesh, type Mesh, type MeshNode } from '../helpers/mesh.js';
import { converged, metric, trimStream } from './cold-path-support.js';

const REPAIR_ONLY = { hot_path: { enabled: false } };

/** Repairs in both directions: each node pulls what the other has newer. */
async function repairBoth(a: MeshNode, b: MeshNode): Promise<void> {
  await a.engine.repair(b.id);
  await b.engine.repair(a.id);
}

describe('cold path: two nodes, repair alone', () => {
  let mesh: Mesh;
  let a: MeshNode;
  let b: MeshNode;
  before(async () => {
    mesh = await startMesh({ nodes: 2, settings: REPAIR_ONLY });
    [a, b] = mesh.nodes as [MeshNode, MeshNode];
  });
  after(async () => {
    await mesh.stop();
  });

  it('converges independently written nodes: puts, deletes, the same keys on both', async () => {
    const keys: string[] = [];
    for (let i = 0; i < 40; i++) {
      keys.push(`conv.a.${i}`, `conv.b.${i}`);
      await a.store.put(`conv.a.${i}`, { i, on: 'a' });
      await b.store.put(`conv.b.${i}`, { i, on: 'b' });
    }
    for (let i = 0; i < 20; i++) {
      const key = `conv.both.${i}`;
      keys.push(key);
      // Written on both, twice on one side for some, so either side can win.
      await Promise.all([a.store.put(key, { v: 'a' }), b.store.put(key, { v: 'b' })]);
      if (i % 3 === 0) await a.store.put(key, { v: 'a2' });
      if (i % 3 === 1) await b.store.put(key, { v: 'b2' });
    }
    await a.store.delete('conv.a.3');
    await b.store.delete('conv.b.4');
    await a.store.delete('conv.b.5'); // a delete of a key this node never had
    await b.store.delete('conv.both.7');
    await a.store.put('conv.both.8', { v: 'a-after' });
    await b.store.delete('conv.both.8'); // concurrent put and delete

    const before = await converged([a.store, b.store], keys);
    assert.equal(before.roots, false);

    await repairBoth(a, b);

    const after = await converged([a.store, b.store], keys);
    assert.ok(after.records, 'identical records');
    assert.ok(after.roots, 'identical Merkle roots');
    assert.equal(after.count, keys.length);
    for (const key of ['conv.a.3', 'conv.b.4', 'conv.b.5', 'conv.both.7']) {
      assert.equal(await a.store.get(key), undefined, key);
      assert.equal(await b.store.get(key), undefined, key);
    }
    // A further repair finds nothing to do.
    const again = await a.engine.repair(b.id);
    assert.equal(again.inSync, true);
    assert.equal(again.peerRoundTrips, 1);
  });

  it('stores a repaired record byte for byte as the peer does: a compressed content stays its frame', async () => {
    const doc = { notes: Array.from({ length: 30 }, (_, i) => `visit ${i}: no change`) };
    await a.store.put('frame.big', doc);
    await a.store.put('frame.small', { s: 1 });
    await b.engine.repair(a.id);
    const raw = createClient({ url: b.redis.url });
    const rawA = createClient({ url: a.redis.url });
    await Promise.all([raw.connect(), rawA.connect()]);
    try {
      for (const key of ['frame.big', 'frame.small']) {
        const get = (client: typeof raw, store: MeshNode['store']) =>
          client.sendCommand<Buffer>(['GET', store.keys.item(key)], {
            typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer },
          });
        const [onA, onB] = await Promise.all([get(rawA, a.store), get(raw, b.store)]);
        assert.ok(onB !== null && onB.equals(onA), `${key}: same bytes on both nodes`);
      }
      const big = await raw.sendCommand<string>(['GET', b.store.keys.item('frame.big')]);
      assert.match(big.slice(0, big.indexOf('\n')), /"z":1/);
      assert.deepEqual((await b.store.get('frame.big'))?.content, Buffer.from(JSON.stringify(doc)));
    } finally {
      raw.destroy();
      rawA.destroy();
    }
  });

  it('never deletes a key the peer lacks (the seed data-loss case)', async () => {
    await a.store.put('loss.only-on-a', { precious: true });
    const report = await a.engine.repair(b.id);
    assert.equal(report.changes.length, 0);
    assert.ok(await a.store.get('loss.only-on-a'), 'kept on A after A repaired against B');
    assert.equal(await b.store.get('loss.only-on-a'), undefined);

    const back = await b.engine.repair(a.id);
    assert.deepEqual(
      back.changes.map((c) => [c.key, c.action, c.local]),
      [['loss.only-on-a', 'put', null]],
    );
    assert.ok(await a.store.get('loss.only-on-a'));
    assert.ok(await b.store.get('loss.only-on-a'));
    assert.deepEqual(
      await snapshot(a.store, ['loss.only-on-a']),
      await snapshot(b.store, ['loss.only-on-a']),
    );
  });

  it('repairs a delete whose CDC entry the peer never saw, and never resurrects it', async () => {
    await a.store.put('del.k1', { v: 1 });
    await b.store.put('del.k2', { v: 'b' }); // only on B, deleted on A later (A never had it)
    await repairBoth(a, b);
    assert.ok(await b.store.get('del.k1'));
    assert.ok(await a.store.get('del.k2'));

    await a.store.delete('del.k1');
    await a.store.delete('del.k2');
    await trimStream(a); // nothing left for a hot path to find
    await b.engine.repair(a.id);
    for (const key of ['del.k1', 'del.k2']) {
      assert.equal(await b.store.get(key), undefined, key);
      assert.equal((await b.store.getRecord(key))?.deleted, true, `${key} is a tombstone on B`);
    }
    for (let round = 0; round < 4; round++) await repairBoth(round % 2 ? a : b, round % 2 ? b : a);
    for (const node of [a, b]) {
      for (const key of ['del.k1', 'del.k2']) {
        assert.equal(await node.store.get(key), undefined, `${key} on ${node.id}`);
        assert.equal((await node.store.getRecord(key))?.deleted, true, `${key} on ${node.id}`);
      }
    }
    const state = await converged([a.store, b.store], ['del.k1', 'del.k2']);
    assert.ok(state.records && state.roots);
  });

  it('dry run reports the changes (key, both clocks, action) and changes nothing', async () => {
    await a.store.put('dry.new', { v: 1 });
    await b.store.put('dry.old', { v: 'b' });
    await repairBoth(a, b);
    await a.store.put('dry.old', { v: 'a' }); // newer on A
    await a.store.delete('dry.new'); // tombstone on A
    await a.store.put('dry.absent', { v: 'a' }); // absent on B
    await b.store.put('dry.b-newer', { v: 'b' }); // B wins: not a change for B

    const keys = ['dry.new', 'dry.old', 'dry.absent', 'dry.b-newer'];
    const snapBefore = await snapshot(b.store, keys);
    const rootBefore = await b.store.merkleRoot();
    const cyclesBefore = await metric(b.engine, 'replication_repair_cycles_total', {
      peer_id: a.id,
    });

    const dry = await b.engine.repair(a.id, { dryRun: true });
    assert.equal(dry.dryRun, true);
    assert.equal(dry.applied, 0);
    assert.equal(dry.fetched, 0);
    const byKey = new Map(dry.changes.map((c) => [c.key, c]));
    assert.deepEqual([...byKey.keys()].sort(), ['dry.absent', 'dry.new', 'dry.old']);
    const absent = byKey.get('dry.absent')!;
    assert.equal(absent.action, 'put');
    assert.equal(absent.local, null);
    assert.equal(absent.peer.origin, a.id);
    const deleted = byKey.get('dry.new')!;
    assert.equal(deleted.action, 'delete');
    assert.equal(deleted.peer.deleted, true);
    assert.equal(deleted.local?.deleted, false);
    assert.ok(deleted.peer.version > deleted.local.version);
    const old = byKey.get('dry.old')!;
    assert.equal(old.action, 'put');
    assert.equal(old.local?.origin, b.id);
    assert.equal(old.peer.origin, a.id);

    assert.deepEqual(await snapshot(b.store, keys), snapBefore, 'records unchanged');
    assert.equal(await b.store.merkleRoot(), rootBefore, 'root unchanged');
    assert.equal(
      await metric(b.engine, 'replication_repair_cycles_total', { peer_id: a.id }),
      cyclesBefore,
      'a dry run is not a cycle',
    );

    // The real repair makes exactly those changes.
    const real = await b.engine.repair(a.id);
    assert.deepEqual(
      real.changes.map((c) => c.key),
      dry.changes.map((c) => c.key),
    );
    assert.equal(real.applied, 3);
  });

  it('moves the repair metrics', async () => {
    await repairBoth(a, b);
    const read = async () => ({
      cycles: await metric(b.engine, 'replication_repair_cycles_total', { peer_id: a.id }),
      fetched: await metric(b.engine, 'replication_repair_items_fetched_total', { peer_id: a.id }),
      submitted: await metric(b.engine, 'replication_repair_items_submitted_total', {
        peer_id: a.id,
      }),
      divergence: await metric(b.engine, 'replication_merkle_divergence_total', { peer_id: a.id }),
      divergent: await metric(b.engine, 'replication_repair_divergent_keys', { peer_id: a.id }),
    });
    const start = await read();
    for (let i = 0; i < 7; i++) await a.store.put(`metrics.${i}`, { i });
    await b.store.put('metrics.only-b', { v: 1 });

    const report = await b.engine.repair(a.id);
    assert.equal(report.divergentKeys, 8);
    const mid = await read();
    assert.equal(mid.cycles - start.cycles, 1);
    assert.equal(mid.fetched - start.fetched, 7);
    assert.equal(mid.submitted - start.submitted, 7);
    assert.equal(mid.divergence - start.divergence, 1);
    assert.equal(mid.divergent, 8);

    await a.engine.repair(b.id);
    const inSync = await b.engine.repair(a.id);
    assert.equal(inSync.inSync, true);
    const end = await read();
    assert.equal(end.cycles - mid.cycles, 1);
    assert.equal(end.fetched, mid.fetched);
    assert.equal(end.divergence, mid.divergence, 'an in-sync cycle is no divergence');
    assert.equal(end.divergent, 0);
    const health = b.engine.health().peers.find((p) => p.node_id === a.id)!;
    assert.equal(health.last_repair?.outcome, 'ok');
    assert.equal(health.last_repair?.in_sync, true);
  });
});
