import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../helpers/redis-server.js';
import { snapshot, startMesh, type Mesh } from '../helpers/mesh.js';

describe('hot path: 3-node mesh', () => {
  let mesh: Mesh;
  before(async () => {
    mesh = await startMesh({ nodes: 3 });
  });
  after(async () => {
    await mesh.stop();
  });

  it('reaches Running and connects every peer', async () => {
    for (const node of mesh.nodes) assert.equal(node.engine.state, 'running');
    await eventually(
      () => mesh.nodes.every((n) => n.engine.health().peers_connected === 2),
      'all peers connected',
    );
  });

  it('replicates puts, deletes and concurrent conflicting writes to every node', async () => {
    const [a, b, c] = mesh.nodes as [
      (typeof mesh.nodes)[0],
      (typeof mesh.nodes)[0],
      (typeof mesh.nodes)[0],
    ];
    const keys: string[] = [];
    for (let i = 0; i < 50; i++) {
      const node = mesh.nodes[i % 3]!;
      const key = `uk.nhs.patient.${i}`;
      keys.push(key);
      await node.store.put(key, { i, by: node.id });
    }
    await a.store.delete('uk.nhs.patient.3');
    await b.store.delete('uk.nhs.patient.4');
    // The same keys written on all three at once: LWW must pick one winner everywhere.
    for (let i = 0; i < 20; i++) {
      const key = `uk.conflict.${i}`;
      keys.push(key);
      await Promise.all([
        a.store.put(key, { v: 'a' }),
        b.store.put(key, { v: 'b' }),
        c.store.put(key, { v: 'c' }),
      ]);
    }
    await eventually(async () => {
      const [sa, sb, sc] = await Promise.all(mesh.nodes.map((n) => snapshot(n.store, keys)));
      return (
        JSON.stringify(sa) === JSON.stringify(sb) &&
        JSON.stringify(sb) === JSON.stringify(sc) &&
        sa!.length === keys.length
      );
    }, 'three identical stores');
    assert.equal(await c.store.get('uk.nhs.patient.3'), undefined);
    assert.equal(await c.store.get('uk.nhs.patient.4'), undefined);
    const got = await c.store.get('uk.nhs.patient.10');
    assert.deepEqual(JSON.parse(got!.content.toString()), { i: 10, by: 'node-b' });
    await eventually(async () => {
      const roots = await Promise.all(mesh.nodes.map((n) => n.store.merkleRoot()));
      return roots.every((r) => r === roots[0]);
    }, 'identical Merkle roots');
  });
});
