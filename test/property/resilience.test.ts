import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AimdBatchSizer } from '../../src/engine/aimd.js';
import { Backoff } from '../../src/engine/backoff.js';
import { TokenBucket } from '../../src/engine/token-bucket.js';

const aimdOptionsArb = fc
  .record({
    min: fc.integer({ min: 1, max: 5000 }),
    span: fc.integer({ min: 0, max: 5000 }),
    initial: fc.double({ min: -1e6, max: 1e6, noNaN: true }),
    increaseStep: fc.option(fc.integer({ min: 1, max: 10_000 }), { nil: undefined }),
    decreaseFactor: fc.option(fc.double({ min: 0.001, max: 0.999, noNaN: true }), {
      nil: undefined,
    }),
    targetLatencyMs: fc.option(fc.integer({ min: 0, max: 1000 }), { nil: undefined }),
  })
  .map(({ min, span, initial, increaseStep, decreaseFactor, targetLatencyMs }) => ({
    min,
    max: min + span,
    initial,
    ...(increaseStep === undefined ? {} : { increaseStep }),
    ...(decreaseFactor === undefined ? {} : { decreaseFactor }),
    ...(targetLatencyMs === undefined ? {} : { targetLatencyMs }),
  }));

const outcomeArb = fc.record({
  full: fc.boolean(),
  flushMs: fc.oneof(fc.double({ min: 0, max: 2000 }), fc.constant(Number.NaN)),
  ok: fc.boolean(),
});

describe('AIMD (property)', () => {
  it('size is always an integer in [min, max]', () => {
    fc.assert(
      fc.property(aimdOptionsArb, fc.array(outcomeArb, { maxLength: 200 }), (opts, outcomes) => {
        const a = new AimdBatchSizer(opts);
        const inRange = (n: number): boolean =>
          Number.isInteger(n) && n >= opts.min && n <= opts.max;
        assert.ok(inRange(a.size), `initial ${a.size}`);
        for (const o of outcomes) {
          const n = a.record(o);
          assert.equal(n, a.size);
          assert.ok(inRange(n), `size ${n} after ${JSON.stringify(o)}`);
        }
      }),
    );
  });
});

describe('Backoff (property)', () => {
  it('never returns a negative delay or one above maxMs', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e7, noNaN: true }),
        fc.double({ min: 0, max: 1e7, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), {
          minLength: 1,
          maxLength: 100,
        }),
        fc.nat({ max: 2000 }),
        (a, b, jitter, randoms, extra) => {
          const [baseMs, maxMs] = a <= b ? [a, b] : [b, a];
          let i = 0;
          const backoff = new Backoff({
            baseMs,
            maxMs,
            jitter,
            random: () => randoms[i++ % randoms.length]!,
          });
          for (let k = 0; k < randoms.length + extra; k++) {
            const d = backoff.next();
            assert.ok(d >= 0 && d <= maxMs, `delay ${d} outside [0, ${maxMs}]`);
          }
        },
      ),
    );
  });
});

type Op = { kind: 'reserve' | 'tryTake'; gapMs: number; n: number };

describe('TokenBucket (property)', () => {
  it('with waits honoured, tokens taken in any window T stay within burst + rate*T + the last take', () => {
    const opArb: fc.Arbitrary<Op> = fc.record({
      kind: fc.constantFrom('reserve', 'tryTake'),
      gapMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2000 })),
      n: fc.integer({ min: 0, max: 3000 }),
    });
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100_000 }),
        fc.integer({ min: 1, max: 2000 }),
        fc.array(opArb, { minLength: 1, maxLength: 60 }),
        (ratePerSec, burst, ops) => {
          let now = 0;
          const tb = new TokenBucket({ ratePerSec, burst, now: () => now });
          const taken: { at: number; n: number }[] = [];
          for (const op of ops) {
            now += op.gapMs;
            if (op.kind === 'reserve') {
              const wait = tb.reserve(op.n);
              assert.ok(Number.isInteger(wait) && wait >= 0, `wait ${wait}`);
              taken.push({ at: now, n: op.n });
              now += wait;
              assert.ok(tb.available >= -1e-6, 'debt is repaid once the wait is honoured');
            } else if (tb.tryTake(op.n)) {
              taken.push({ at: now, n: op.n });
            }
          }
          for (let i = 0; i < taken.length; i++) {
            let sum = 0;
            for (let j = i; j < taken.length; j++) {
              const last = taken[j]!;
              sum += last.n;
              const windowMs = last.at - taken[i]!.at;
              const bound = burst + (ratePerSec * windowMs) / 1000 + last.n;
              assert.ok(
                sum <= bound + 1e-6,
                `took ${sum} in ${windowMs} ms, bound ${bound} (rate ${ratePerSec}, burst ${burst})`,
              );
            }
          }
        },
      ),
    );
  });
});
