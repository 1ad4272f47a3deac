/**
 * `npm run test:chaos -- [--seed N]… [--runs N] [--first-seed N] [--duration SEC] [--no-wipe]
 * [--keep] [--json FILE]`: runs chaos scenarios one after another, prints a line per run and the seed,
 * schedule and violations of every failure, then totals. Exits 1 if any run failed.
 *
 * `--seed N` replays one seed (repeatable); `--runs N` runs N seeds from `--first-seed` (default:
 * a random one, printed). `--json FILE` appends one JSON line per run (for docs/RELIABILITY.md).
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
    json: { type: 'string' },
    keep: { type: 'boolean' },
    help: { type: 'boolean' },
  },
});

if (values.help === true) {
  process.stdout.write(
    'usage: npm run test:chaos -- [--seed N]... [--runs N] [--first-seed N] [--duration SEC] [--no-wipe] [--keep] [--json FILE]\n',
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
  process.stdout.write(`seeds ${seeds[0]}..${seeds[seeds.length - 1]}\n`);
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
        ok: result.ok,
        injected: result.injected,
        writes: result.writes,
        events: result.events,
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
