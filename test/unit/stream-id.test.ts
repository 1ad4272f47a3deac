import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  compareStreamIds,
  formatStreamId,
  lagMs,
  nextStreamId,
  parseStreamId,
} from '../../src/codec/stream-id.js';

const MAX = (1n << 64n) - 1n;
const u64 = fc.bigInt({ min: 0n, max: MAX });

describe('stream ids', () => {
  it('parses the forms Redis uses', () => {
    assert.deepEqual(parseStreamId('0'), { ms: 0n, seq: 0n });
    assert.deepEqual(parseStreamId('1-0'), { ms: 1n, seq: 0n });
    assert.deepEqual(parseStreamId('18446744073709551615-18446744073709551615'), {
      ms: MAX,
      seq: MAX,
    });
  });

  it('rejects malformed ids and ids past 2^64 - 1', () => {
    for (const bad of [
      '',
      '-',
      '1-',
      '-1',
      'a-1',
      '1-2-3',
      ' 1-0',
      '18446744073709551616-0',
      '1.5-0',
    ]) {
      assert.throws(() => parseStreamId(bad), RangeError, bad);
    }
  });

  it('orders numerically, not lexically', () => {
    assert.ok(compareStreamIds('9-0', '10-0') < 0);
    assert.ok(compareStreamIds('1-10', '1-9') > 0);
    assert.equal(compareStreamIds('5', '5-0'), 0);
  });

  it('is a total order matching (ms, seq) tuples', () => {
    fc.assert(
      fc.property(u64, u64, u64, u64, (m1, s1, m2, s2) => {
        const a = `${m1}-${s1}`;
        const b = `${m2}-${s2}`;
        const expected = m1 !== m2 ? (m1 < m2 ? -1 : 1) : s1 !== s2 ? (s1 < s2 ? -1 : 1) : 0;
        assert.equal(Math.sign(compareStreamIds(a, b)), expected);
        assert.equal(Math.sign(compareStreamIds(b, a)), -expected);
      }),
    );
  });

  it('is transitive', () => {
    const id = fc
      .tuple(fc.bigInt({ min: 0n, max: 5n }), fc.bigInt({ min: 0n, max: 5n }))
      .map(([m, s]) => `${m}-${s}`);
    fc.assert(
      fc.property(id, id, id, (a, b, c) => {
        if (compareStreamIds(a, b) <= 0 && compareStreamIds(b, c) <= 0)
          assert.ok(compareStreamIds(a, c) <= 0);
      }),
    );
  });

  it('round-trips through format', () => {
    fc.assert(
      fc.property(
        u64,
        u64,
        (ms, seq) => formatStreamId(parseStreamId(`${ms}-${seq}`)) === `${ms}-${seq}`,
      ),
    );
  });

  it('computes the next id, carrying into ms at the top of seq', () => {
    assert.equal(nextStreamId('5-9'), '5-10');
    assert.equal(nextStreamId(`5-${MAX}`), '6-0');
    assert.equal(nextStreamId(`${MAX}-${MAX}`), undefined);
    fc.assert(
      fc.property(u64, u64, (ms, seq) => {
        const id = `${ms}-${seq}`;
        const next = nextStreamId(id);
        return next === undefined || compareStreamIds(next, id) > 0;
      }),
    );
  });

  it('measures lag in ms, never negative', () => {
    assert.equal(lagMs('1000-5', '1250-0'), 250);
    assert.equal(lagMs('1250-0', '1000-5'), 0);
    assert.equal(lagMs('0-0', '0-1'), 0);
    fc.assert(fc.property(u64, u64, (a, b) => lagMs(`${a}-0`, `${b}-0`) >= 0));
  });
});
