/**
 * Every dependency with an install script is decided in package.json's allowScripts (npm 11 warns
 * at `npm ci` about any that is not, as it did for esbuild), and the decided ones exist.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

const read = (file: string): unknown =>
  JSON.parse(readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8'));

const pkg = read('package.json') as { allowScripts?: Record<string, boolean> };
const lock = read('package-lock.json') as {
  packages: Record<string, { hasInstallScript?: boolean }>;
};

describe('install scripts', () => {
  it('every package with an install script is allowed or denied in allowScripts', () => {
    const withScripts = Object.entries(lock.packages)
      .filter(([, entry]) => entry.hasInstallScript === true)
      .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length));
    assert.ok(withScripts.length > 0);
    const decided = pkg.allowScripts ?? {};
    assert.deepEqual(
      withScripts.filter((name) => !(name in decided)),
      [],
      'undecided install scripts',
    );
    for (const name of Object.keys(decided)) {
      assert.ok(withScripts.includes(name), `${name} in allowScripts has no install script`);
    }
  });
});
