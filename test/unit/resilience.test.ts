import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AimdBatchSizer } from '../../src/engine/aimd.js';
import { Backoff, sleep } from '../../src/engine/backoff.js';
import { CircuitBreaker, type CircuitState } from '../../src/engine/circuit-breaker.js';
import { TokenBucket } from '../../src/engine/token-bucket.js';

/** A clock the test moves by hand. */
function fakeClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('Backoff', () => {
  it('doubles from baseMs and caps at maxMs', () => {
    const b = new Backoff({ baseMs: 100, maxMs: 1000, jitter: 0 });
    assert.deepEqual(
      Array.from({ length: 7 }, () => b.next()),
      [100, 200, 400, 800, 1000, 1000, 1000],
    );
    assert.equal(b.attempts, 7);
  });

  it('keeps jitter within ±jitter of the nominal delay and below maxMs', () => {
    const low = new Backoff({ baseMs: 100, maxMs: 1000, jitter: 0.2, random: () => 0 });
    const high = new Backoff({ baseMs: 100, maxMs: 1000, jitter: 0.2, random: () => 0.999999 });
    assert.equal(low.next(), 80);
    assert.ok(Math.abs(high.next() - 120) < 0.01);
    for (let i = 0; i < 3; i++) {
      low.next();
      high.next();
    }
    // Nominal 1000 (capped): jitter may go down but never above maxMs.
    assert.equal(low.next(), 800);
    assert.equal(high.next(), 1000);
  });

  it('defaults to 20% jitter', () => {
    const b = new Backoff({ baseMs: 1000, maxMs: 10_000, random: () => 0 });
    assert.equal(b.next(), 800);
  });

  it('starts over after reset', () => {
    const b = new Backoff({ baseMs: 50, maxMs: 10_000, jitter: 0 });
    b.next();
    b.next();
    b.reset();
    assert.equal(b.attempts, 0);
    assert.equal(b.next(), 50);
  });

  it('stays finite after very many attempts, even with baseMs 0', () => {
    const b = new Backoff({ baseMs: 0, maxMs: 5, jitter: 0 });
    for (let i = 0; i < 2000; i++) assert.equal(b.next(), 0);
  });

  it('rejects invalid options', () => {
    assert.throws(() => new Backoff({ baseMs: -1, maxMs: 10 }), RangeError);
    assert.throws(() => new Backoff({ baseMs: 10, maxMs: 5 }), RangeError);
    assert.throws(() => new Backoff({ baseMs: 1, maxMs: 5, jitter: 1.5 }), RangeError);
  });
});

describe('sleep', () => {
  it('resolves true after the full time', async () => {
    assert.equal(await sleep(5), true);
  });

  it('resolves false early when the signal aborts', async () => {
    const ac = new AbortController();
    const started = performance.now();
    const pending = sleep(60_000, ac.signal);
    setTimeout(() => ac.abort(), 5);
    assert.equal(await pending, false);
    assert.ok(performance.now() - started < 10_000);
  });

  it('resolves false at once for an already-aborted signal', async () => {
    assert.equal(await sleep(60_000, AbortSignal.abort()), false);
  });
});

describe('CircuitBreaker', () => {
  function make(): {
    cb: CircuitBreaker;
    clock: ReturnType<typeof fakeClock>;
    transitions: [CircuitState, CircuitState][];
  } {
    const clock = fakeClock();
    const transitions: [CircuitState, CircuitState][] = [];
    const cb = new CircuitBreaker({
      failureThreshold: 3,
      resetTimeoutMs: 30_000,
      now: clock.now,
      onTransition: (from, to) => transitions.push([from, to]),
    });
    return { cb, clock, transitions };
  }

  it('opens after threshold consecutive failures', () => {
    const { cb, transitions } = make();
    cb.recordFailure();
    cb.recordFailure();
    assert.equal(cb.state, 'closed');
    assert.equal(cb.canAttempt(), true);
    cb.recordFailure();
    assert.equal(cb.state, 'open');
    assert.equal(cb.stateCode(), 2);
    assert.equal(cb.canAttempt(), false);
    assert.equal(cb.msUntilHalfOpen(), 30_000);
    assert.deepEqual(transitions, [['closed', 'open']]);
  });

  it('a success in between resets the consecutive count', () => {
    const { cb } = make();
    cb.recordFailure();
    cb.recordFailure();
    cb.recordSuccess();
    cb.recordFailure();
    cb.recordFailure();
    assert.equal(cb.state, 'closed');
    assert.equal(cb.stateCode(), 0);
  });

  it('becomes half-open after the reset timeout and allows one trial at a time', () => {
    const { cb, clock, transitions } = make();
    for (let i = 0; i < 3; i++) cb.recordFailure();
    clock.advance(29_999);
    assert.equal(cb.msUntilHalfOpen(), 1);
    assert.equal(cb.state, 'open');
    clock.advance(1);
    assert.equal(cb.state, 'half-open');
    assert.equal(cb.stateCode(), 1);
    assert.equal(cb.msUntilHalfOpen(), 0);
    assert.equal(cb.canAttempt(), true);
    assert.equal(cb.canAttempt(), false, 'a second concurrent trial is refused');
    assert.deepEqual(transitions, [
      ['closed', 'open'],
      ['open', 'half-open'],
    ]);
  });

  it('half-open success closes the circuit', () => {
    const { cb, clock, transitions } = make();
    for (let i = 0; i < 3; i++) cb.recordFailure();
    clock.advance(30_000);
    assert.equal(cb.canAttempt(), true);
    cb.recordSuccess();
    assert.equal(cb.state, 'closed');
    assert.equal(cb.canAttempt(), true);
    assert.equal(cb.failures, 0);
    assert.deepEqual(transitions.at(-1), ['half-open', 'closed']);
  });

  it('half-open failure re-opens with a fresh timer', () => {
    const { cb, clock, transitions } = make();
    for (let i = 0; i < 3; i++) cb.recordFailure();
    clock.advance(40_000);
    assert.equal(cb.canAttempt(), true);
    cb.recordFailure();
    assert.equal(cb.state, 'open');
    assert.equal(cb.msUntilHalfOpen(), 30_000);
    assert.deepEqual(transitions, [
      ['closed', 'open'],
      ['open', 'half-open'],
      ['half-open', 'open'],
    ]);
  });

  it('a trial whose outcome is never recorded is released after the reset timeout', () => {
    const { cb, clock } = make();
    for (let i = 0; i < 3; i++) cb.recordFailure();
    clock.advance(30_000);
    assert.equal(cb.canAttempt(), true);
    clock.advance(29_999);
    assert.equal(cb.canAttempt(), false);
    clock.advance(1);
    assert.equal(cb.canAttempt(), true);
  });

  it('rejects invalid options', () => {
    assert.throws(() => new CircuitBreaker({ failureThreshold: 0, resetTimeoutMs: 1 }), RangeError);
    assert.throws(
      () => new CircuitBreaker({ failureThreshold: 1, resetTimeoutMs: -1 }),
      RangeError,
    );
  });
});

describe('TokenBucket', () => {
  it('starts full and allows a burst, then refuses', () => {
    const clock = fakeClock();
    const tb = new TokenBucket({ ratePerSec: 10, burst: 5, now: clock.now });
    assert.equal(tb.available, 5);
    assert.equal(tb.tryTake(3), true);
    assert.equal(tb.tryTake(), true);
    assert.equal(tb.tryTake(2), false);
    assert.equal(tb.tryTake(), true);
    assert.equal(tb.tryTake(), false);
  });

  it('refills at the rate, up to burst', () => {
    const clock = fakeClock();
    const tb = new TokenBucket({ ratePerSec: 10, burst: 5, now: clock.now });
    assert.equal(tb.tryTake(5), true);
    clock.advance(100);
    assert.equal(tb.available, 1);
    clock.advance(10_000);
    assert.equal(tb.available, 5);
  });

  it('reserve goes into debt and returns the wait that repays it', () => {
    const clock = fakeClock();
    const tb = new TokenBucket({ ratePerSec: 1000, burst: 100, now: clock.now });
    assert.equal(tb.reserve(60), 0);
    assert.equal(tb.reserve(40), 0);
    assert.equal(tb.reserve(250), 250);
    assert.equal(tb.available, -250);
    clock.advance(250);
    assert.equal(tb.available, 0);
    assert.equal(tb.reserve(1), 1);
  });

  it('reserve accepts more than burst at once', () => {
    const clock = fakeClock();
    const tb = new TokenBucket({ ratePerSec: 100, burst: 10, now: clock.now });
    assert.equal(tb.reserve(1010), 10_000);
  });

  it('does not drain when the clock steps backwards', () => {
    const clock = fakeClock();
    const tb = new TokenBucket({ ratePerSec: 100, burst: 10, now: clock.now });
    clock.advance(-5000);
    assert.equal(tb.available, 10);
  });

  it('rejects invalid options and counts', () => {
    assert.throws(() => new TokenBucket({ ratePerSec: 0, burst: 1 }), RangeError);
    assert.throws(() => new TokenBucket({ ratePerSec: 1, burst: 0 }), RangeError);
    const tb = new TokenBucket({ ratePerSec: 1, burst: 1 });
    assert.throws(() => tb.reserve(-1), RangeError);
    assert.throws(() => tb.tryTake(Number.NaN), RangeError);
  });
});

describe('AimdBatchSizer', () => {
  const fast = { full: true, flushMs: 10, ok: true };

  it('clamps the initial size and uses the defaults', () => {
    assert.equal(new AimdBatchSizer({ initial: 5, min: 50, max: 1000 }).size, 50);
    assert.equal(new AimdBatchSizer({ initial: 5000, min: 50, max: 1000 }).size, 1000);
    const a = new AimdBatchSizer({ initial: 100, min: 50, max: 1000 });
    assert.equal(a.record(fast), 200, 'default step is 10% of max');
    assert.equal(a.record({ ...fast, flushMs: 201 }), 100, 'default target 200 ms, factor 0.5');
    assert.equal(a.record({ ...fast, flushMs: 200 }), 200, 'exactly on target is within target');
  });

  it('increases additively on a full fast batch, up to max', () => {
    const a = new AimdBatchSizer({ initial: 90, min: 10, max: 100, increaseStep: 7 });
    assert.equal(a.record(fast), 97);
    assert.equal(a.record(fast), 100);
    assert.equal(a.record(fast), 100);
  });

  it('leaves the size alone after a partial fast batch', () => {
    const a = new AimdBatchSizer({ initial: 90, min: 10, max: 100 });
    assert.equal(a.record({ full: false, flushMs: 1, ok: true }), 90);
  });

  it('decreases multiplicatively on a slow flush or a failure, down to min', () => {
    const a = new AimdBatchSizer({
      initial: 100,
      min: 20,
      max: 100,
      decreaseFactor: 0.3,
      targetLatencyMs: 50,
    });
    assert.equal(a.record({ full: false, flushMs: 51, ok: true }), 30);
    assert.equal(a.record({ full: true, flushMs: 1, ok: false }), 20);
    assert.equal(a.record({ full: true, flushMs: 1, ok: false }), 20);
  });

  it('rejects invalid options', () => {
    assert.throws(() => new AimdBatchSizer({ initial: 1, min: 0, max: 10 }), RangeError);
    assert.throws(() => new AimdBatchSizer({ initial: 1, min: 5, max: 4 }), RangeError);
    assert.throws(
      () => new AimdBatchSizer({ initial: 1, min: 1, max: 4, decreaseFactor: 1 }),
      RangeError,
    );
    assert.throws(
      () => new AimdBatchSizer({ initial: 1, min: 1, max: 4, increaseStep: 0 }),
      RangeError,
    );
  });
});
