import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../helpers/redis-server.js';
import { startMesh, type Mesh } from '../helpers/mesh.js';
import { converged, trimStream } from './cold-path-support.js';

/** mulberry32: a small seeded PRNG, so a failing run can be replayed with COLD_PATH_SEED. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = Number(process.env['COLD_PATH_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const STEPS = Number(process.env['COLD_PATH_STEPS'] ?? 1000);
const POOL = 150;

describe(`cold path: randomized faults, seed ${SEED}`, { timeout: 120_000 }, () => {
  let mesh: Mesh;
  before(async () => {
    mesh = await startMesh({
      nodes: 3,
      settings: {
        cold_path: { enabled: true, interval_sec: 1, max_items_per_cycle: 50, backoff_base_sec: 1 },
      },
    });
  });
  after(async () => {
    await mesh.stop();
  });

  it('converges every store and root after random writes, deletes and faults', async (t) => {
    const random = prng(SEED);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const nodes = mesh.nodes;
    const keys = Array.from({ length: POOL }, (_, i) => `rnd.${i % 7}.${i}`);
    const stopped = new Set<number>();
    const paused = new Map<number, Set<string>>(nodes.map((_, i) => [i, new Set<string>()]));
    const log: string[] = [];
    const note = (line: string): void => {
      log.push(line);
    };

    try {
      for (let step = 0; step < STEPS; step++) {
        const i = Math.floor(random() * nodes.length);
        const node = nodes[i]!;
        const roll = random();
        if (roll < 0.6) {
          const key = pick(keys);
          await node.store.put(key, { step, by: node.id, n: Math.floor(random() * 1e6) });
        } else if (roll < 0.8) {
          await node.store.delete(pick(keys));
        } else if (roll < 0.87) {
          if (stopped.has(i)) continue;
          const peer = pick(nodes.filter((n) => n !== node)).id;
          const set = paused.get(i)!;
          if (set.has(peer)) {
            node.engine.resume(peer);
            set.delete(peer);
            note(`${step}: ${node.id} resumes ${peer}`);
          } else {
            node.engine.pause(peer);
            set.add(peer);
            note(`${step}: ${node.id} pauses ${peer}`);
          }
        } else if (roll < 0.93) {
          await trimStream(node);
          note(`${step}: ${node.id} stream trimmed`);
        } else if (roll < 0.97) {
          if (stopped.has(i)) {
            await mesh.restartEngine(i);
            stopped.delete(i);
            paused.get(i)!.clear();
            note(`${step}: ${node.id} engine restarted`);
          } else if (stopped.size === 0) {
            await node.engine.stop();
            stopped.add(i);
            note(`${step}: ${node.id} engine stopped`);
          }
        } else {
          // Let the mesh run a little between bursts.
          await new Promise((r) => setTimeout(r, 20 + random() * 80));
        }
      }

      // Heal: every engine running, nothing paused, then repairs between every pair.
      for (const i of stopped) await mesh.restartEngine(i);
      for (const [i, set] of paused) for (const peer of set) nodes[i]!.engine.resume(peer);
      note('healed');
      await eventually(
        () => nodes.every((n) => n.engine.health().peers_connected === nodes.length - 1),
        'every peer connected again',
      );
      await eventually(
        async () => {
          for (const node of nodes) {
            for (const peer of nodes) {
              // A failure (a link still settling) is retried by the next round.
              if (peer !== node) {
                await node.engine.repair(peer.id, { maxItems: POOL }).catch(() => undefined);
              }
            }
          }
          const state = await converged(
            nodes.map((n) => n.store),
            keys,
          );
          return state.records && state.roots;
        },
        'every store and root identical',
        30_000,
      );
    } catch (error) {
      t.diagnostic(`seed ${SEED} (replay: COLD_PATH_SEED=${SEED}); faults:`);
      for (const line of log) t.diagnostic(line);
      throw error;
    }
    const state = await converged(
      nodes.map((n) => n.store),
      keys,
    );
    assert.ok(state.records, `identical records (seed ${SEED})`);
    assert.ok(state.roots, `identical roots (seed ${SEED})`);
    assert.ok(state.count > 0);
  });
});
