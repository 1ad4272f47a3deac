import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  compareVersions,
  maxVersion,
  nextClock,
  wins,
  type RecordVersion,
} from '../../src/model/record.js';

function v(overrides: Partial<RecordVersion> = {}): RecordVersion {
  return {
    key: 'k',
    updatedAt: 1000,
    version: 1,
    origin: 'node-a',
    contentHash: 'aa',
    deleted: false,
    ...overrides,
  };
}

describe('compareVersions', () => {
  it('orders by updatedAt, then version, then origin, then content hash', () => {
    assert.ok(compareVersions(v({ updatedAt: 1001 }), v({ version: 9, origin: 'z' })) > 0);
    assert.ok(compareVersions(v({ version: 2 }), v({ origin: 'z', contentHash: 'ff' })) > 0);
    assert.ok(compareVersions(v({ origin: 'node-b' }), v({ contentHash: 'ff' })) > 0);
    assert.ok(compareVersions(v({ contentHash: 'ab' }), v({ contentHash: 'aa' })) > 0);
    assert.equal(compareVersions(v(), v()), 0);
  });

  it('compares numbers numerically, not as strings', () => {
    assert.ok(compareVersions(v({ version: 10 }), v({ version: 9 })) > 0);
    assert.ok(compareVersions(v({ updatedAt: 10_000 }), v({ updatedAt: 9_999 })) > 0);
  });

  it('compares strings by code unit, not locale', () => {
    assert.ok(compareVersions(v({ origin: 'B' }), v({ origin: 'a' })) < 0);
  });

  it('is antisymmetric and total, tombstone included', () => {
    const tomb = v({ deleted: true, contentHash: '' });
    const all = [v(), tomb, v({ origin: 'b' }), v({ version: 2 }), v({ deleted: true })];
    for (const a of all) {
      for (const b of all)
        assert.equal(Math.sign(compareVersions(a, b)) + Math.sign(compareVersions(b, a)), 0);
    }
    // Same clock: the put's hash beats the tombstone's empty hash.
    assert.ok(compareVersions(v(), tomb) > 0);
  });
});

describe('wins / maxVersion', () => {
  it('wins only strictly, and always against nothing', () => {
    assert.ok(wins(v(), undefined));
    assert.ok(!wins(v(), v()));
    assert.ok(wins(v({ version: 2 }), v()));
    assert.equal(maxVersion(v(), v({ updatedAt: 2000 })).updatedAt, 2000);
  });
});

describe('nextClock', () => {
  it('starts at version 1 at the current time', () => {
    assert.deepEqual(nextClock(undefined, 5000, 'n'), { updatedAt: 5000, version: 1, origin: 'n' });
  });

  it('moves past a previous version from the future (clock skew)', () => {
    const prev = { updatedAt: 9000, version: 4, origin: 'other' };
    const next = nextClock(prev, 5000, 'me');
    assert.deepEqual(next, { updatedAt: 9001, version: 5, origin: 'me' });
    assert.ok(
      compareVersions(
        { ...next, key: 'k', contentHash: '', deleted: false },
        { ...prev, key: 'k', contentHash: 'ff', deleted: false },
      ) > 0,
    );
  });

  it('uses the current time when it is ahead', () => {
    assert.deepEqual(nextClock({ updatedAt: 1000, version: 1, origin: 'x' }, 5000, 'me'), {
      updatedAt: 5000,
      version: 2,
      origin: 'me',
    });
  });
});
