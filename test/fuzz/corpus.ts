/**
 * The committed fuzz corpus (fuzz/corpus/<target>/) and past crashes (fuzz/regressions/<target>/):
 * read by the property tests, which replay every input, and by `npm run fuzz`.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The fuzz targets. */
export type FuzzTarget = 'cdc' | 'config' | 'peer-reply';

/** The repository's fuzz/ dir. */
export const FUZZ_DIR = fileURLToPath(new URL('../../fuzz/', import.meta.url));

/** Every corpus and regression input of `target`, by file name. */
export function readCorpus(target: FuzzTarget): { name: string; data: Buffer }[] {
  const out: { name: string; data: Buffer }[] = [];
  for (const kind of ['corpus', 'regressions']) {
    const dir = join(FUZZ_DIR, kind, target);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).sort()) {
      if (name.startsWith('.')) continue;
      out.push({ name: `${kind}/${target}/${name}`, data: readFileSync(join(dir, name)) });
    }
  }
  return out;
}
