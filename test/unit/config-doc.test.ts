import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { renderConfigDoc } from '../../src/config/index.js';

it('docs/CONFIG.md is generated from the current schema', () => {
  const committed = readFileSync(new URL('../../docs/CONFIG.md', import.meta.url), 'utf8');
  assert.ok(
    committed === renderConfigDoc(),
    'docs/CONFIG.md is out of date with src/config/schema.ts: run `npx tsx scripts/gen-config-doc.ts`',
  );
});
