/**
 * The chaos checker and schedule themselves: the checker must catch a lost write, a resurrected
 * key and a phantom record, and accept what may legitimately survive; a seed must always give the
 * same schedule. Pure: no Redis.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StoredRecord } from '../../src/model/record.js';
import { History, checkHistory, sha256Hex } from './history.js';
import {
  AWAY_MAX_MS,
  AWAY_MIN_MS,
  REPAIR_ONLY_KINDS,
  makeSchedule,
  resourcesOf,
} from './schedule.js';

function put(
  key: string,
  body: string,
  updatedAt: number,
  version: number,
  origin: string,
): StoredRecord {
  const content = Buffer.from(body);
  return {
    key,
    content,
    contentHash: sha256Hex(content),
    contentType: 'json',
    updatedAt,
    version,
    origin,
    deleted: false,
  };
}

function del(key: string, updatedAt: number, version: number, origin: string): StoredRecord {
  return {
    key,
    content: Buffer.alloc(0),
    contentHash: '',
    contentType: 'binary',
    updatedAt,
    version,
    origin,
    deleted: true,
  };
}

/** A history with acknowledged writes: each record as written by `origin` (node index 0). */
function acked(...records: StoredRecord[]): History {
  const h = new History();
  for (const r of records) {
    const op = h.begin(0, r.origin, r.key, r.deleted ? undefined : r.content);
    op.status = 'ok';
    op.record = r;
  }
  return h;
}

const finals = (...records: StoredRecord[]): Map<string, StoredRecord> =>
  new Map(records.map((r) => [r.key, r]));

describe('chaos checker', () => {
  const a1 = put('k', '{"a":1}', 100, 1, 'node-a');
  const b2 = put('k', '{"b":2}', 105, 2, 'node-b');
  const d3 = del('k', 110, 3, 'node-a');

  it('accepts the LWW maximum of the acknowledged writes', () => {
    assert.deepEqual(checkHistory(acked(a1, b2), finals(b2)), []);
    assert.deepEqual(checkHistory(acked(a1, b2, d3), finals(d3)), []);
  });

  it('reports a lost write (an older or missing survivor)', () => {
    const v = checkHistory(acked(a1, b2), finals(a1));
    assert.equal(v.length, 1);
    assert.equal(v[0]!.kind, 'lost');
    assert.equal(checkHistory(acked(a1), finals())[0]!.kind, 'lost');
  });

  it('reports a deleted key that came back', () => {
    const v = checkHistory(acked(a1, b2, d3), finals(b2));
    assert.equal(v[0]!.kind, 'resurrected');
  });

  it('reports a phantom: a record no write made', () => {
    const v = checkHistory(acked(a1), finals(put('k', '{"x":9}', 200, 2, 'node-c')));
    assert.equal(v[0]!.kind, 'phantom');
  });

  it('accepts a later write that failed (indeterminate: it may have happened)', () => {
    const h = acked(a1);
    h.begin(1, 'node-b', 'k', Buffer.from('{"late":1}')).status = 'failed';
    assert.deepEqual(checkHistory(h, finals(put('k', '{"late":1}', 300, 2, 'node-b'))), []);
    // But not one from another node or with other content.
    const v = checkHistory(h, finals(put('k', '{"late":1}', 300, 2, 'node-c')));
    assert.equal(v[0]!.kind, 'phantom');
  });

  it('excuses writes lost with a wiped Redis, but still accepts them if they survived', () => {
    const h = acked(a1, b2);
    h.ops[1]!.excused = 'wiped';
    assert.deepEqual(checkHistory(h, finals(a1)), []);
    assert.deepEqual(checkHistory(h, finals(b2)), []);
  });

  it('accepts a deleted key that is gone (purged) or superseded, never one that is live', () => {
    // Purged everywhere once every peer held it.
    assert.deepEqual(checkHistory(acked(a1, b2, d3), finals()), []);
    // A stale peer's b2 refused and superseded: a tombstone at b2's clock, version + 1, no client's.
    const superseding = del('k', 105, 3, 'node-c');
    assert.deepEqual(checkHistory(acked(a1, b2, d3), finals(superseding)), []);
    // The stale record itself, or an older live one, is a resurrection.
    assert.equal(checkHistory(acked(a1, b2, d3), finals(b2))[0]!.kind, 'resurrected');
    assert.equal(checkHistory(acked(a1, b2, d3), finals(a1))[0]!.kind, 'resurrected');
  });

  it('reports a lost delete when an older client tombstone survives the greatest one', () => {
    const d4 = del('k', 120, 4, 'node-b');
    const v = checkHistory(acked(a1, d3, d4), finals(d3));
    assert.equal(v.length, 1);
    assert.equal(v[0]!.kind, 'lost');
  });

  it('reports an acknowledged put given up to a tombstone no client wrote (superseded)', () => {
    // b2 is the greatest acknowledged write; a supersede of it (version + 1) would beat it.
    const v = checkHistory(acked(a1, b2), finals(del('k', 105, 3, 'node-a')));
    assert.equal(v.length, 1);
    assert.equal(v[0]!.kind, 'lost');
    assert.match(v[0]!.detail, /superseded/);
    // Nor may an acknowledged put be gone.
    assert.equal(checkHistory(acked(a1, b2), finals())[0]!.kind, 'lost');
  });

  it('reports content that does not match its hash', () => {
    const bad = { ...b2, content: Buffer.from('tampered') };
    assert.ok(checkHistory(acked(a1, b2), finals(bad)).some((v) => v.kind === 'bad-content'));
  });
});

describe('chaos schedule', () => {
  it('is a pure function of the seed', () => {
    const options = { nodes: 3, durationMs: 30_000 };
    assert.deepEqual(makeSchedule(1234, options), makeSchedule(1234, options));
    assert.notDeepEqual(makeSchedule(1234, options), makeSchedule(1235, options));
  });

  it('never overlaps two faults on one resource, and leaves out wipes on request', () => {
    for (let seed = 0; seed < 50; seed++) {
      const faults = makeSchedule(seed, { nodes: 3, durationMs: 30_000, noWipe: true });
      assert.ok(faults.every((f) => f.kind !== 'redis-wipe'));
      const busy = new Map<string, number>();
      for (const f of faults) {
        for (const r of resourcesOf(f)) {
          assert.ok((busy.get(r) ?? 0) <= f.atMs, `seed ${seed}: ${r} overlaps at ${f.atMs}`);
          busy.set(r, f.atMs + f.durationMs);
        }
      }
    }
  });

  it('leaves out the faults only a repair can fix in hot-path-only mode', () => {
    const kinds = new Set<string>();
    for (let seed = 0; seed < 50; seed++) {
      for (const f of makeSchedule(seed, { nodes: 3, durationMs: 30_000, hotPathOnly: true })) {
        kinds.add(f.kind);
      }
    }
    assert.ok(REPAIR_ONLY_KINDS.every((k) => !kinds.has(k)));
    assert.ok(kinds.has('local-conn-kill') && kinds.has('redis-restart'));
  });

  it('schedules away-past-ttl with the cold path on only, always longer than the TTL', () => {
    let aways = 0;
    for (let seed = 0; seed < 50; seed++) {
      for (const f of makeSchedule(seed, { nodes: 3, durationMs: 20_000 })) {
        if (f.kind !== 'away-past-ttl') continue;
        aways++;
        assert.ok(f.durationMs >= AWAY_MIN_MS && f.durationMs <= AWAY_MAX_MS);
        assert.ok(f.atMs + AWAY_MIN_MS <= 20_000, `seed ${seed}: starts too late`);
      }
    }
    assert.ok(aways >= 10, `only ${aways} aways in 50 seeds`);
  });
});
