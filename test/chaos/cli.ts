/**
 * `npm run test:chaos -- [--seed N]… [--runs N] [--first-seed N] [--duration SEC] [--no-wipe]
 * [--hot-path-only] [--keep] [--json FILE]`: runs chaos scenarios one after another, prints a line
 * per run and the seed, schedule and violations of every failure, then totals. Exits 1 if any run
 * failed.
 *
 * `--seed N` replays one seed (repeatable); `--runs N` runs N seeds from `--first-seed` (default:
 * a random one, printed). With the cold path on (the default), every engine runs with
 * `store.tombstone_ttl: 2s` and `store.max_clock_skew: 200ms` and the schedule may hold
 * `away-past-ttl` (a node's engine and Redis down for 3-6 s, past the TTL, while the others delete
 * and purge). `--hot-path-only` turns the cold path off on every node, leaves out the faults only a
 * repair can fix (trim, redis-wipe, corrupt, away-past-ttl), keeps the default TTL, and fails a run
 * in which a repair changed anything (docs/RELIABILITY.md). `--json FILE` appends one JSON line
 * per run, with its mode (for docs/RELIABILITY.md).
 */
import { appendFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { formatFailure, formatSummary, runScenario, type ScenarioResult } from './runner.js';
import { FAULT_KINDS } from './schedule.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', multiple: true },
    runs: { type: 'string' },
    'first-seed': { type: 'string' },
    duration: { type: 'string' },
    'no-wipe': { type: 'boolean' },
    'hot-path-only': { type: 'boolean' },
    json: { type: 'string' },
    keep: { type: 'boolean' },
    help: { type: 'boolean' },
  },
});

if (values.help === true) {
  process.stdout.write(
    [
      'usage: npm run test:chaos -- [--seed N]... [--runs N] [--first-seed N] [--duration SEC]',
      '                             [--no-wipe] [--hot-path-only] [--keep] [--json FILE]',
      '',
      '  --seed N          replay seed N (repeatable)',
      '  --runs N          run N seeds from --first-seed (default: a random one, printed)',
      '  --duration SEC    length of the fault phase (default 30)',
      '  --no-wipe         leave out Redis restarts without their data',
      '  --hot-path-only   cold path off on every node; no trim, wipe, corrupt or away-past-ttl',
      '                    faults; a run fails if a stream gap is reported or a repair changes',
      '                    anything',
      '  --keep            keep the temp dir (engine logs) of passing runs too',
      '  --json FILE       append one JSON line per run (mode included)',
      '',
      'Without --hot-path-only every engine runs with store.tombstone_ttl 2s and',
      'store.max_clock_skew 200ms (tombstones are purged during the run, once every peer holds',
      "them), and the faults include away-past-ttl: a node's engine and Redis (data kept) down",
      'for 3-6 s while the others write, delete, purge and trim their streams; its Redis returns',
      'before its engine. A deleted key may then be absent, never live (docs/RELIABILITY.md).',
      '',
    ].join('\n'),
  );
  process.exit(0);
}

function int(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) {
    process.stderr.write(`--${name} must be a non-negative integer, got ${text}\n`);
    process.exit(2);
  }
  return n;
}

const runs = int(values.runs, 'runs');
const durationSec = int(values.duration, 'duration') ?? 30;
let seeds: number[];
if (values.seed !== undefined && values.seed.length > 0) {
  seeds = values.seed.map((s) => int(s, 'seed')!);
} else {
  const first = int(values['first-seed'], 'first-seed') ?? Math.floor(Math.random() * 1_000_000);
  seeds = Array.from({ length: runs ?? 1 }, (_, i) => first + i);
  process.stdout.write(
    `seeds ${seeds[0]}..${seeds[seeds.length - 1]}${values['hot-path-only'] === true ? ' (hot path only)' : ''}\n`,
  );
}

const results: ScenarioResult[] = [];
let interrupted = false;
process.on('SIGINT', () => {
  interrupted = true;
  process.stdout.write('interrupted: finishing the current run\n');
});

for (const seed of seeds) {
  if (interrupted) break;
  const result = await runScenario(seed, {
    durationMs: durationSec * 1000,
    ...(values['no-wipe'] === true ? { noWipe: true } : {}),
    ...(values['hot-path-only'] === true ? { hotPathOnly: true } : {}),
    ...(values.keep === true ? { keep: true } : {}),
    log: (line) => process.stdout.write(`${line}\n`),
  });
  results.push(result);
  process.stdout.write(`${formatSummary(result)}\n`);
  if (!result.ok) process.stdout.write(`${formatFailure(result)}\n`);
  if (values.json !== undefined) {
    appendFileSync(
      values.json,
      `${JSON.stringify({
        seed: result.seed,
        mode: result.mode,
        durationMs: durationSec * 1000,
        ok: result.ok,
        injected: result.injected,
        writes: result.writes,
        events: result.events,
        localConnsKilled: result.localConnsKilled,
        purgedInFaultPhase: result.purgedInFaultPhase,
        phaseStartedAt: result.phaseStartedAt,
        convergeMs: result.convergeMs,
        totalMs: result.totalMs,
        violations: result.violations,
      })}\n`,
    );
  }
}

const failed = results.filter((r) => !r.ok);
const totals = Object.fromEntries(
  FAULT_KINDS.map((k) => [k, results.reduce((sum, r) => sum + r.injected[k], 0)]),
);
const writes = results.reduce((sum, r) => sum + r.writes.total, 0);
process.stdout.write(
  [
    '',
    `runs: ${results.length}, failed: ${failed.length}${failed.length > 0 ? ` (seeds ${failed.map((r) => r.seed).join(', ')})` : ''}`,
    `faults injected: ${Object.entries(totals)
      .map(([k, n]) => `${k}=${n}`)
      .join(' ')}`,
    `writes: ${writes}`,
    '',
  ].join('\n'),
);
process.exit(failed.length > 0 ? 1 : 0);
