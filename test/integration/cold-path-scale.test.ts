import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RepairReport } from '../../src/engine/cold-path.js';
import { eventually } from '../helpers/redis-server.js';
import { snapshot, startMesh, type Mesh, type MeshNode } from '../helpers/mesh.js';
import { BASE_MS, converged, fill, record } from './cold-path-support.js';

const KEYS = 100_000;
const keyOf = (i: number): string => `uk.nhs.patient.${i}`;

describe('cold path: 100k keys per node', { timeout: 120_000 }, () => {
  let mesh: Mesh;
  let a: MeshNode;
  let b: MeshNode;
  before(async () => {
    mesh = await startMesh({ nodes: 2, settings: { hot_path: { enabled: false } } });
    [a, b] = mesh.nodes as [MeshNode, MeshNode];
    const records = Array.from({ length: KEYS }, (_, i) => record(keyOf(i)));
    await fill([a.store, b.store], records);
    const [ra, rb] = await Promise.all([a.store.merkleRoot(), b.store.merkleRoot()]);
    assert.equal(ra, rb, 'identical fills give identical roots');
  });
  after(async () => {
    await mesh.stop();
  });

  it('converges 100 divergent keys within one cycle each way, in few round trips', async () => {
    const touched: string[] = [];
    // 40 newer on A, 30 newer on B, 20 deleted on A, 10 new on B.
    const onA = [
      ...Array.from({ length: 40 }, (_, i) => record(keyOf(i * 997), { version: 2, origin: a.id })),
      ...Array.from({ length: 20 }, (_, i) =>
        record(keyOf(50_000 + i * 13), { version: 3, origin: a.id, deleted: true }),
      ),
    ];
    const onB = [
      ...Array.from({ length: 30 }, (_, i) =>
        record(keyOf(1 + i * 1009), { version: 2, origin: b.id }),
      ),
      ...Array.from({ length: 10 }, (_, i) => record(`uk.nhs.new.${i}`, { origin: b.id })),
    ];
    await a.store.apply(onA);
    await b.store.apply(onB);
    touched.push(...onA.map((r) => r.key), ...onB.map((r) => r.key));
    assert.equal(new Set(touched).size, 100);

    const pullA = await a.engine.repair(b.id);
    const pullB = await b.engine.repair(a.id);
    assert.equal(pullA.applied, 40);
    assert.equal(pullB.applied, 60);
    assert.equal(pullA.divergentKeys, 100);
    assert.equal(pullA.deferred, 0);
    for (const report of [pullA, pullB]) {
      assert.ok(
        report.peerRoundTrips <= 20,
        `${report.peerRoundTrips} round trips for 100 divergent keys in ${KEYS}`,
      );
    }
    const state = await converged([a.store, b.store], touched);
    assert.ok(state.records, 'identical divergent records');
    assert.ok(state.roots, 'identical roots: the other 99,900 keys agree too');
    assert.deepEqual(await snapshot(a.store, touched), await snapshot(b.store, touched));
  });

  it('with max_items_per_cycle 30, converges over several scheduled cycles within budget', async () => {
    const onA = Array.from({ length: 100 }, (_, i) =>
      record(keyOf(7 + i * 911), { version: 5, updatedAt: BASE_MS + 100, origin: a.id }),
    );
    await a.store.apply(onA);
    const keys = onA.map((r) => r.key);
    const reports: RepairReport[] = [];
    b.engine.on('repair', (r) => {
      if (r.peerId === a.id) reports.push(r);
    });
    await b.engine.updateConfig(
      mesh.configFor(1, {
        cold_path: { enabled: true, interval_sec: 1, max_items_per_cycle: 30 },
      }),
    );
    try {
      await eventually(
        async () => (await converged([a.store, b.store], keys)).records,
        'B converged by scheduled cycles',
        20_000,
      );
    } finally {
      await b.engine.updateConfig(mesh.configFor(1, {}));
    }
    const working = reports.filter((r) => r.applied > 0 || r.deferred > 0);
    assert.ok(working.length >= 4, `${working.length} cycles for 100 keys at 30 per cycle`);
    for (const r of reports) {
      assert.ok(r.fetched <= 30, `fetched ${r.fetched}`);
      assert.ok(r.applied <= 30, `applied ${r.applied}`);
      assert.ok(r.changes.length <= 30, `changes ${r.changes.length}`);
    }
    assert.deepEqual(
      working.map((r) => r.deferred),
      [70, 40, 10, 0],
    );
    assert.equal(
      working.reduce((n, r) => n + r.applied, 0),
      100,
    );
    const state = await converged([a.store, b.store], keys);
    assert.ok(state.roots, 'identical roots');
  });
});
