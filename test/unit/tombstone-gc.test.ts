/**
 * What a purge reports per holding peer (`collectTombstones`' `heldBy`, which drives
 * `replication_tombstone_gc_blocked`): a peer counts as blocking only for the tombstones past the
 * TTL that arrived since its own last acknowledgement. An in-memory tombstone index stands in for
 * Redis: the rule is arithmetic on arrival scores (GcStore's ZCOUNTs are covered by
 * test/integration/deletes-stay-deleted.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { collectTombstones } from '../../src/engine/tombstone-gc.js';
import type { TombstoneStore } from '../../src/engine/local-store.js';

/** A tombstone index of arrival scores, with `acked` acknowledgements and purges that remove. */
function indexStore(arrivals: number[], acked: Record<string, number>): TombstoneStore {
  const inRange = (from: number, to: number) => arrivals.filter((a) => a >= from && a < to);
  const store: Partial<TombstoneStore> = {
    gcState: () => Promise.resolve({ horizon: 0, acked: new Map(Object.entries(acked)) }),
    purgeTombstones: (_now, cutoff) => {
      const before = arrivals.length;
      arrivals = arrivals.filter((a) => a >= cutoff);
      return Promise.resolve({ purged: before - arrivals.length });
    },
    heldTombstones: (from, to) =>
      Promise.resolve({ count: inRange(from, to).length, bytes: 100 * inRange(from, to).length }),
    countTombstones: (from, to) => Promise.resolve(inRange(from, to).length),
  };
  return store as TombstoneStore;
}

describe('tombstone collection: who holds what back', () => {
  const now = 10_000;
  const ttl = 2_000; // past the TTL: arrived before 8,000

  it('counts for each holder the tombstones since its own acknowledgement', async () => {
    const store = indexStore([1_000, 3_000, 5_000, 9_000], { b: 2_000, c: 4_000 });
    const r = await collectTombstones(store, ['b', 'c'], now, ttl);
    assert.equal(r.purged, 1); // 1,000: before both acknowledgements
    assert.equal(r.held.count, 2); // 3,000 and 5,000 (9,000 is within the TTL)
    assert.deepEqual(
      [...r.heldBy],
      [
        ['b', 2],
        ['c', 1],
      ],
    );
  });

  it('a holder with nothing past the TTL since its acknowledgement holds nothing back', async () => {
    // No tombstone past the TTL at all: c is named a holder, and holds nothing back.
    const none = await collectTombstones(indexStore([9_000], { c: 1_000 }), ['c'], now, ttl);
    assert.deepEqual(
      none.holders.map((h) => h.peer_id),
      ['c'],
    );
    assert.deepEqual([...none.heldBy], [['c', 0]]);
    // b never acknowledged and keeps the tombstone of 3,000; c, not acknowledged since 8,000 either,
    // did acknowledge after it: c is named a holder but keeps nothing (the old gauge read 1).
    const r = await collectTombstones(indexStore([3_000], { c: 5_000 }), ['b', 'c'], now, ttl);
    assert.equal(r.purged, 0);
    assert.deepEqual(
      r.holders.map((h) => h.peer_id),
      ['b', 'c'],
    );
    assert.deepEqual(
      [...r.heldBy],
      [
        ['b', 1],
        ['c', 0],
      ],
    );
  });
});
