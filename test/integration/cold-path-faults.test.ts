import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../helpers/redis-server.js';
import { startMesh, type Mesh, type MeshNode } from '../helpers/mesh.js';
import { converged, fill, metric, record, trimStream } from './cold-path-support.js';

describe('cold path: a peer that fails mid-repair', { timeout: 90_000 }, () => {
  let mesh: Mesh;
  let a: MeshNode;
  let b: MeshNode;
  let c: MeshNode;
  before(async () => {
    mesh = await startMesh({
      nodes: 3,
      settings: { hot_path: { enabled: false }, cold_path: { backoff_base_sec: 1 } },
    });
    [a, b, c] = mesh.nodes as [MeshNode, MeshNode, MeshNode];
  });
  after(async () => {
    await mesh.stop();
  });

  it('backs that peer off and keeps repairing the others', async () => {
    // Enough on B that a repair against it is still running when B's Redis dies.
    await fill(
      [b.store],
      Array.from({ length: 30_000 }, (_, i) => record(`fail.b.${i}`, { origin: b.id })),
    );
    await b.store.merkleRoot();
    const repairing = a.engine.repair(b.id).then(
      () => undefined,
      (error: unknown) => error,
    );
    // Past the root comparison (the drill-down is running), B's Redis dies.
    await eventually(
      async () =>
        (await metric(a.engine, 'replication_peer_operation_duration_seconds', {
          peer_id: b.id,
          operation: 'merkle_root',
        })) > 0,
      'the repair compared roots',
    );
    await b.redis.kill();
    const failure = await repairing;
    assert.ok(failure instanceof Error, 'the repair failed');
    assert.equal((failure as Error & { code?: string }).code, 'PEER_UNAVAILABLE');

    assert.equal(await metric(a.engine, 'replication_repair_errors_total', { peer_id: b.id }), 1);
    const health = a.engine.health().peers.find((p) => p.node_id === b.id)!;
    assert.equal(health.last_repair?.outcome, 'error');
    assert.ok(health.last_repair?.error, 'the error is reported');

    // C is still repaired, by hand and by scheduled cycles, while B is down.
    await c.store.put('fail.c.1', { v: 1 });
    const report = await a.engine.repair(c.id);
    assert.equal(report.applied, 1);
    await a.engine.updateConfig(
      mesh.configFor(0, {
        hot_path: { enabled: false },
        cold_path: { enabled: true, interval_sec: 1, backoff_base_sec: 1, backoff_max_sec: 2 },
      }),
    );
    for (let i = 0; i < 5; i++) await c.store.put(`fail.c.sched.${i}`, { i });
    await eventually(
      async () =>
        (await converged([a.store, c.store], ['fail.c.1', 'fail.c.sched.0', 'fail.c.sched.4']))
          .records,
      'A repaired from C by scheduled cycles while B is down',
    );
    assert.equal(
      a.engine.health().peers.find((p) => p.node_id === b.id)!.last_repair?.outcome,
      'error',
      'B is still failing',
    );
    await eventually(
      async () =>
        (await metric(a.engine, 'replication_repair_skipped_total', {
          peer_id: b.id,
          reason: 'disconnected',
        })) > 0,
      'cycles with B skipped while it is unreachable, once its backoff is over',
    );

    // B comes back (empty: its Redis was not persistent), writes again, and A repairs from it.
    await b.redis.restart();
    await b.store.put('fail.b.after', { back: true });
    await eventually(
      async () => (await a.store.get('fail.b.after')) !== undefined,
      'A repaired from B once B is back',
      20_000,
    );
    assert.equal(
      a.engine.health().peers.find((p) => p.node_id === b.id)!.last_repair?.outcome,
      'ok',
    );
  });
});

describe('cold path: a gap in the hot path starts a repair at once', { timeout: 60_000 }, () => {
  let mesh: Mesh;
  let a: MeshNode;
  let b: MeshNode;
  before(async () => {
    // Scheduled cycles off: only the gap can start a repair.
    mesh = await startMesh({ nodes: 2, settings: { cold_path: { enabled: false } } });
    [a, b] = mesh.nodes as [MeshNode, MeshNode];
  });
  after(async () => {
    await mesh.stop();
  });

  it('converges B to A although the stream no longer holds the writes', async () => {
    await a.store.put('gap.before', { v: 1 });
    await eventually(async () => (await b.store.get('gap.before')) !== undefined, 'hot path');
    await b.engine.stop();

    const keys = Array.from({ length: 50 }, (_, i) => `gap.k.${i}`);
    for (const key of keys) await a.store.put(key, { key });
    await a.store.delete('gap.before');
    await trimStream(a);

    await mesh.restartEngine(1);
    await eventually(
      async () => {
        const state = await converged([a.store, b.store], [...keys, 'gap.before']);
        return state.records && state.count === 51;
      },
      'B converged to A by the gap-triggered repair',
      10_000,
    );
    assert.equal(await b.store.get('gap.before'), undefined, 'the trimmed delete was repaired');
    assert.ok(
      (await metric(b.engine, 'replication_repair_cycles_total', { peer_id: a.id })) >= 1,
      'a repair cycle ran',
    );
    assert.ok(
      (await metric(b.engine, 'replication_stream_gaps_total', { peer_id: a.id })) >= 1,
      'the gap was counted',
    );
  });
});
