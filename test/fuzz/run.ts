/**
 * `npm run fuzz -- [--time SEC] [--target cdc|config|peer-reply] [--update-corpus] [--seed-corpus]`: the
 * coverage-guided fuzz run. Bundles each target (test/fuzz/targets/*.ts) to CommonJS for jsfuzz,
 * runs jsfuzz on a working copy of the committed corpus (fuzz/corpus/<target>/, plus past crashes
 * in fuzz/regressions/<target>/) for a bounded time, and fails when it finds a crash, which it
 * saves into fuzz/regressions/<target>/ so the property tests replay it from then on.
 *
 * `--update-corpus` copies the inputs jsfuzz found interesting back into fuzz/corpus/<target>/;
 * `--seed-corpus` (re)writes the seed inputs from the shared CDC vectors and example configs.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { ALL_VECTORS } from './cdc-mutations.js';
import { encodeFuzzInput } from './inputs.js';
import { seedConfigs } from './config-mutations.js';
import { FUZZ_DIR, type FuzzTarget } from './corpus.js';
import { seedPeerReplies } from './peer-reply-checks.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WORK = join(ROOT, '.fuzz-work');
const TARGETS: Record<FuzzTarget, string> = {
  cdc: join(ROOT, 'test/fuzz/targets/cdc-parser.ts'),
  config: join(ROOT, 'test/fuzz/targets/config.ts'),
  'peer-reply': join(ROOT, 'test/fuzz/targets/peer-reply.ts'),
};

const { values } = parseArgs({
  options: {
    time: { type: 'string', default: '60' },
    target: { type: 'string', multiple: true },
    'update-corpus': { type: 'boolean' },
    'seed-corpus': { type: 'boolean' },
  },
});

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex').slice(0, 16);

function seedCorpus(): void {
  const cdc = join(FUZZ_DIR, 'corpus', 'cdc');
  const config = join(FUZZ_DIR, 'corpus', 'config');
  mkdirSync(cdc, { recursive: true });
  mkdirSync(config, { recursive: true });
  for (const fields of ALL_VECTORS) {
    const data = encodeFuzzInput(fields);
    writeFileSync(join(cdc, `vector-${sha(data)}`), data);
  }
  for (const text of seedConfigs()) {
    const data = Buffer.from(text);
    writeFileSync(join(config, `seed-${sha(data)}.yaml`), data);
  }
  const peer = join(FUZZ_DIR, 'corpus', 'peer-reply');
  mkdirSync(peer, { recursive: true });
  for (const data of seedPeerReplies()) writeFileSync(join(peer, `seed-${sha(data)}`), data);
  process.stdout.write(`seeded ${cdc}, ${config} and ${peer}\n`);
}

/**
 * Bundles a target to CommonJS (jsfuzz `require`s it and instruments what it loads) and writes a
 * preload script that loads the target's npm packages first: they then come from the require
 * cache, uninstrumented, so coverage (and jsfuzz's per-run cost) covers this project's code only.
 */
async function bundle(target: FuzzTarget): Promise<{ script: string; preload: string }> {
  mkdirSync(WORK, { recursive: true });
  writeFileSync(join(WORK, 'package.json'), '{ "type": "commonjs" }\n');
  const outfile = join(WORK, `${target}.js`);
  const result = await build({
    metafile: true,
    entryPoints: [TARGETS[target]],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    packages: 'external',
    logLevel: 'warning',
    // The sources are ESM: give them an import.meta.url that points at the bundle.
    banner: { js: "const __import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
    define: { 'import.meta.url': '__import_meta_url' },
  });
  const packages = new Set<string>();
  for (const output of Object.values(result.metafile.outputs)) {
    for (const imported of output.imports) {
      if (imported.external && !imported.path.startsWith('node:')) packages.add(imported.path);
    }
  }
  const preload = join(WORK, `${target}.preload.js`);
  writeFileSync(
    preload,
    [...packages].map((p) => `require(${JSON.stringify(p)});`).join('\n') + '\n',
  );
  return { script: outfile, preload };
}

interface FuzzRun {
  readonly target: FuzzTarget;
  readonly crashed: boolean;
  /** jsfuzz stopped early without a crash: the harness, not the target, failed. */
  readonly broken?: boolean;
  readonly lastStatus: string;
  readonly newInputs: number;
}

async function fuzz(target: FuzzTarget, seconds: number): Promise<FuzzRun> {
  const { script, preload } = await bundle(target);
  const corpus = join(WORK, 'corpus', target);
  rmSync(corpus, { recursive: true, force: true });
  mkdirSync(corpus, { recursive: true });
  const committed = new Set<string>();
  for (const kind of ['corpus', 'regressions']) {
    const dir = join(FUZZ_DIR, kind, target);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir)) {
      cpSync(join(dir, name), join(corpus, name));
      committed.add(sha(readFileSync(join(dir, name))));
    }
  }
  const artifact = join(WORK, `crash-${target}`);
  rmSync(artifact, { force: true });
  const jsfuzz = join(ROOT, 'node_modules/jsfuzz/build/src/index.js');
  const child = spawn(
    process.execPath,
    [
      jsfuzz,
      relative(WORK, script),
      corpus,
      '--exact-artifact-path',
      artifact,
      '--rss-limit-mb',
      '1536',
      '--timeout',
      '60',
    ],
    {
      cwd: WORK,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: `--require ${preload}` },
    },
  );
  let lastStatus = '';
  let output = '';
  const onData = (chunk: Buffer): void => {
    const text = chunk.toString();
    output = (output + text).slice(-20_000);
    for (const line of text.split('\n')) if (line.startsWith('#')) lastStatus = line.trim();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    // jsfuzz has no time limit of its own: end it and its worker (the whole process group).
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch {
      // Already gone.
    }
  }, seconds * 1000);
  const code = await exited;
  clearTimeout(timer);
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    // The group is gone.
  }
  const crashed = existsSync(artifact);
  if (!crashed && !timedOut) {
    // jsfuzz stopped by itself without a crash input: the harness is broken, not the target.
    process.stdout.write(`\n${target}: jsfuzz exited early (${code})\n${output.slice(-4000)}\n`);
    return { target, crashed: false, broken: true, lastStatus, newInputs: 0 };
  }
  if (crashed) {
    const data = readFileSync(artifact);
    const dir = join(FUZZ_DIR, 'regressions', target);
    mkdirSync(dir, { recursive: true });
    const saved = join(dir, `crash-${sha(data)}`);
    copyFileSync(artifact, saved);
    process.stdout.write(
      `\n${target}: CRASH (jsfuzz exit ${code}), input saved to ${saved}\n${output.slice(-4000)}\n`,
    );
  }
  let newInputs = 0;
  for (const name of readdirSync(corpus)) {
    const data = readFileSync(join(corpus, name));
    if (committed.has(sha(data))) continue;
    newInputs++;
    if (values['update-corpus'] === true) {
      writeFileSync(join(FUZZ_DIR, 'corpus', target, `found-${sha(data)}`), data);
    }
  }
  return { target, crashed, lastStatus, newInputs };
}

if (values['seed-corpus'] === true) seedCorpus();
const seconds = Number(values.time);
if (!Number.isFinite(seconds) || seconds <= 0) {
  process.stderr.write(`--time must be a positive number of seconds, got ${values.time}\n`);
  process.exit(2);
}
const targets = (values.target ?? ['cdc', 'config', 'peer-reply']) as FuzzTarget[];
const runs: FuzzRun[] = [];
for (const target of targets) {
  if (!(target in TARGETS)) {
    process.stderr.write(`unknown target ${target}; targets: ${Object.keys(TARGETS).join(', ')}\n`);
    process.exit(2);
  }
  process.stdout.write(`fuzzing ${target} for ${seconds} s…\n`);
  const run = await fuzz(target, seconds);
  runs.push(run);
  process.stdout.write(
    `${target}: ${run.crashed ? 'CRASH' : run.broken === true ? 'HARNESS FAILED' : 'no crash'}; last status: ${run.lastStatus}; new corpus inputs: ${run.newInputs}${values['update-corpus'] === true ? ' (saved)' : ''}\n`,
  );
}
process.exit(runs.some((r) => r.crashed || r.broken === true) ? 1 : 0);
