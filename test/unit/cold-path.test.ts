import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveConfig } from '../../src/config/index.js';
import { ColdPath, divergentChildren } from '../../src/engine/cold-path.js';
import type { PeerLink } from '../../src/engine/peer-link.js';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics } from '../../src/observability/metrics.js';
import type { LocalStore } from '../../src/engine/local-store.js';
import { ZERO_HASH } from '../../src/store/merkle-hash.js';

const h = (c: string): string => c.repeat(64);

describe('divergentChildren', () => {
  it('is empty for identical children', () => {
    const nodes = [
      { path: '0', hash: h('a') },
      { path: '7', hash: h('b') },
    ];
    assert.deepEqual(divergentChildren(nodes, [...nodes]), []);
  });

  it('lists children with different hashes and children present on one side only, sorted', () => {
    const local = [
      { path: '10', hash: h('a') },
      { path: '1f', hash: h('c') },
      { path: '13', hash: h('d') },
    ];
    const peer = [
      { path: '10', hash: h('a') },
      { path: '13', hash: h('e') },
      { path: '1a', hash: h('f') },
    ];
    assert.deepEqual(divergentChildren(local, peer), ['13', '1a', '1f']);
  });

  it('treats a missing side as all empty', () => {
    const nodes = [
      { path: 'a', hash: h('1') },
      { path: '3', hash: h('2') },
    ];
    assert.deepEqual(divergentChildren([], nodes), ['3', 'a']);
    assert.deepEqual(divergentChildren(nodes, []), ['3', 'a']);
  });
});

describe('ColdPath keeps the local tree fresh', () => {
  /** A store that only counts the refreshes asked of it. */
  function countingStore() {
    const calls = { roots: 0, budgeted: [] as (number | undefined)[] };
    const store: LocalStore = {
      apply: () => Promise.resolve([]),
      isCurrent: () => Promise.resolve(false),
      getRecords: () => Promise.resolve([]),
      shouldAcceptWrites: () => Promise.resolve(true),
      merkleRoot: () => {
        calls.roots += 1;
        return Promise.resolve(ZERO_HASH);
      },
      merkleChildren: () => Promise.resolve([]),
      merkleLeaves: () => Promise.resolve([]),
      merkleChildrenMany: (paths) => Promise.resolve(paths.map(() => [])),
      merkleLeavesMany: (buckets) => Promise.resolve(buckets.map(() => [])),
      refreshMerkle: (options?: { budgetMs?: number }) => {
        calls.budgeted.push(options?.budgetMs);
        return Promise.resolve();
      },
      quarantine: () => Promise.resolve(),
      keepsFrames: false,
    };
    return { store, calls };
  }

  function coldPath(store: LocalStore, catchingUp: () => boolean): ColdPath {
    const config = resolveConfig({
      replication: {
        local_node_id: 'node-b',
        peers: [{ node_id: 'node-a', redis_url: 'redis://127.0.0.1:1' }],
      },
    });
    const peer = config.replication.peers[0]!;
    return new ColdPath({
      localNodeId: 'node-b',
      settings: () => config.replication.coldPath,
      maxItemBytes: config.store.maxItemBytes,
      store,
      metrics: createMetrics(),
      logger: createLogger({ level: 'silent' }),
      // Paused, so no scheduled cycle ever reaches the link; the tree upkeep goes on regardless.
      peer: () => ({ link: {} as PeerLink, config: peer, catchingUp, paused: () => true }),
      peers: () => [peer],
      onReport: () => undefined,
    });
  }

  async function until(condition: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 1_500;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  it('while a peer catches up, refreshes with a 1 s budget at most every 10 s; fully once idle', async () => {
    const { store, calls } = countingStore();
    let busy = true;
    const cold = coldPath(store, () => busy);
    cold.start();
    try {
      await until(() => calls.budgeted.length === 1, 'the budgeted refresh');
      assert.deepEqual(calls.budgeted, [1_000]);
      // Several 250 ms ticks later: no second one, and no full refresh.
      await new Promise((resolve) => setTimeout(resolve, 700));
      assert.deepEqual(calls, { roots: 0, budgeted: [1_000] });
      busy = false;
      await until(() => calls.roots >= 2, 'full refreshes every 250 ms');
      assert.equal(calls.budgeted.length, 1);
    } finally {
      await cold.stop();
    }
  });
});
