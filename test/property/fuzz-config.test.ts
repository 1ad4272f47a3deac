/**
 * Fuzzing the config loader with fast-check: arbitrary text, YAML-ish token soup, and structured
 * mutations of the example configs. parseConfig returns a resolved config or throws a ConfigError
 * (a ConfigValidationError, with at least one located issue); never anything else, never a hang,
 * and never a secret in the message.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { parseConfig } from '../../src/config/load.js';
import { ConfigValidationError } from '../../src/config/issues.js';
import { ConfigError } from '../../src/errors.js';
import { FUZZ_ENV, mutatedTextArb, mutatedTreeArb, seedConfigs } from '../fuzz/config-mutations.js';
import { readCorpus } from '../fuzz/corpus.js';

const MAX_PARSE_MS = 2_000;
/** Relative tls.*_file paths resolve here: an empty dir, so the fuzzer reads no real file. */
const baseDir = mkdtempSync(join(tmpdir(), 'repl-fuzz-config-'));

function parseChecked(text: string): void {
  const start = performance.now();
  try {
    const config = parseConfig(text, { env: FUZZ_ENV, sourceName: 'fuzz.yaml', baseDir });
    assert.ok(Object.isFrozen(config), 'a resolved config is frozen');
    assert.ok(config.replication.localNodeId.length > 0);
  } catch (error) {
    if (!(error instanceof ConfigError)) {
      throw new Error(`parseConfig threw ${String(error)} (not a ConfigError)`, { cause: error });
    }
    if (error instanceof ConfigValidationError) {
      assert.ok(error.issues.length > 0, 'a validation error lists its issues');
    }
    for (const secret of [FUZZ_ENV['PASSWORD']!, FUZZ_ENV['TOKEN']!]) {
      assert.ok(!error.message.includes(secret), `secret leaked in: ${error.message}`);
    }
  }
  const elapsed = performance.now() - start;
  assert.ok(elapsed < MAX_PARSE_MS, `parse took ${elapsed.toFixed(0)} ms`);
}

const TOKENS = [
  'replication:',
  'local_node_id:',
  'settings:',
  'hot_path:',
  'peers:',
  '- node_id:',
  'redis_url:',
  'cursor:',
  'sqlite_path:',
  'http:',
  'store:',
  'local:',
  ' ',
  '  ',
  '\n',
  '\n  ',
  '\n    ',
  '- ',
  ': ',
  '[',
  ']',
  '{',
  '}',
  ',',
  '&x',
  '*x',
  '<<: *x',
  '!!str',
  '${NODE_ID}',
  '${UNSET}',
  '"',
  "'",
  '#',
  '---',
  '5s',
  '-1',
  'redis://h:1',
  'true',
  '~',
];

describe('fuzz: config loader', () => {
  after(() => rmSync(baseDir, { recursive: true, force: true }));

  it('the seeds themselves load', () => {
    for (const text of seedConfigs()) parseConfig(text, { env: FUZZ_ENV, baseDir });
  });

  it('arbitrary text never throws anything but ConfigError', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400, unit: 'binary' }), (text) => parseChecked(text)),
      { numRuns: 1500 },
    );
  });

  it('YAML token soup never throws anything but ConfigError', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...TOKENS), { maxLength: 60 }), (tokens) =>
        parseChecked(tokens.join('')),
      ),
      { numRuns: 1500 },
    );
  });

  it('text mutations of the example configs never crash', () => {
    fc.assert(
      fc.property(mutatedTextArb, (text) => parseChecked(text)),
      { numRuns: 1500 },
    );
  });

  it('value mutations at real config paths never crash', () => {
    fc.assert(
      fc.property(mutatedTreeArb, (text) => parseChecked(text)),
      { numRuns: 1500 },
    );
  });

  it('billion-laughs aliases are bounded', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 12; i++) {
      lines.push(`a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
    }
    lines.push('replication: *a11');
    parseChecked(lines.join('\n'));
  });

  it('every committed corpus input (and past crash) loads or is rejected cleanly', () => {
    const inputs = readCorpus('config');
    assert.ok(inputs.length > 0);
    for (const { name, data } of inputs) {
      try {
        parseChecked(data.toString('utf8'));
      } catch (error) {
        throw new Error(`corpus input ${name}: ${String(error)}`, { cause: error });
      }
    }
  });
});
