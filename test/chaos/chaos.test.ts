/**
 * The chaos suite's fixed seeds, run by CI and `npm test`: a few short randomized scenarios that
 * kill processes for real. The long soak is `npm run test:chaos -- --runs N` (docs/RELIABILITY.md).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatFailure, formatSummary, runScenario } from './runner.js';
import { makeSchedule } from './schedule.js';

/** Seeds picked so that, together, they inject every kind of fault. */
const SEEDS = [1, 5, 42];
const DURATION_MS = 25_000;

describe('chaos: three nodes under a seeded fault schedule', () => {
  it('the fixed seeds inject every kind of fault between them', () => {
    const kinds = new Set(
      SEEDS.flatMap((seed) => makeSchedule(seed, { nodes: 3, durationMs: DURATION_MS })).map(
        (f) => f.kind,
      ),
    );
    assert.deepEqual([...kinds].sort(), [
      'corrupt',
      'cut',
      'engine-kill',
      'engine-restart',
      'latency',
      'partition',
      'redis-restart',
      'redis-wipe',
      'trim',
    ]);
  });

  for (const seed of SEEDS) {
    it(
      `seed ${seed}: converges with no acknowledged write lost`,
      { timeout: 180_000 },
      async (t) => {
        const result = await runScenario(seed, {
          durationMs: DURATION_MS,
          log: (line) => t.diagnostic(line),
        });
        t.diagnostic(formatSummary(result));
        assert.ok(result.ok, formatFailure(result));
      },
    );
  }
});
