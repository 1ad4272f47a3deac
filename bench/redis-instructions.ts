/**
 * Instructions a redis-server executes per record applied by `SyncStore.apply`, counted by
 * valgrind's callgrind: a deterministic figure for comparing two versions of the apply script on
 * a shared machine where wall-clock A/Bs of it swing by ±20%. Not part of `npm run bench` (it
 * needs valgrind, and runs Redis ~50× slower).
 *
 * Usage: node --import tsx bench/redis-instructions.ts [records] [--relay] [--chunk N] [--no-feed]
 *        [--write-many]
 * Prints instructions per record for fresh keys, then for the same records again (duplicates).
 * `--no-feed` turns the change feed off (`store.change_feed: false`). `--write-many` counts local
 * batched writes instead (`putMany` of the same documents, 1,000 an entry list, `write_many`
 * calls of 500): fresh keys, then the same keys again (each a second version).
 * Records are the hot-path benchmark's ~1 KB documents, with their zstd frames as the hot path
 * passes them.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeData } from '../src/codec/zstd.js';
import type { StoredRecord } from '../src/model/record.js';
import { sha256Hex } from '../src/store/input.js';
import { SyncStore } from '../src/store/sync-store.js';
import { freePort } from '../test/helpers/redis-server.js';
import { document } from './hot-path.bench.js';

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const n = Number(args.find((a) => /^\d+$/.test(a)) ?? 10_000);
const relay = args.includes('--relay');
const changeFeed = !args.includes('--no-feed');
const chunk = flag('--chunk');
const writeMany = args.includes('--write-many');
const BATCH = 1000;

function recordOf(i: number): StoredRecord {
  const content = document(i);
  const { data, compressed } = encodeData(content);
  return {
    key: `uk.nhs.patient.${i}`,
    content,
    ...(compressed ? { frame: data } : {}),
    contentHash: sha256Hex(content),
    contentType: 'json',
    deleted: false,
    version: 1,
    updatedAt: 1_700_000_000_000 + i,
    origin: 'node-a',
  };
}

const dir = mkdtempSync(join(tmpdir(), 'redis-instructions-'));
const port = await freePort();
const server = spawn(
  'valgrind',
  [
    '--tool=callgrind',
    '--instr-atstart=no',
    `--callgrind-out-file=${join(dir, 'callgrind.%n')}`,
    'redis-server',
    '--port',
    String(port),
    '--save',
    '',
    '--appendonly',
    'no',
  ],
  { stdio: 'ignore' },
);
const exited = new Promise((resolve) => server.once('exit', resolve));
const control = (...command: string[]): void => {
  execFileSync('callgrind_control', [...command, String(server.pid)], { stdio: 'ignore' });
};

try {
  let store: SyncStore | undefined;
  const deadline = Date.now() + 60_000;
  while (store === undefined) {
    try {
      store = await SyncStore.connect({
        redisUrl: `redis://127.0.0.1:${port}`,
        nodeId: 'node-b',
        store: { relay, changeFeed },
        connectTimeoutMs: 1000,
        ...(chunk !== undefined ? { applyChunkSize: Number(chunk) } : {}),
      });
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  const batches: StoredRecord[][] = [];
  for (let start = 0; start < n; start += BATCH) {
    batches.push(Array.from({ length: Math.min(BATCH, n - start) }, (_, j) => recordOf(start + j)));
  }
  // Loads the scripts outside the count.
  await store.apply([recordOf(n)]);
  // 1,000 keys first, as the wall-clock benchmark writes: merkle:dirty is then past its
  // listpack encoding (where each of its first 512 marks costs a linear search, ~29k
  // instructions an entry over a 1,000-entry batch into an empty one).
  await store.putMany(
    Array.from({ length: 1000 }, (_, i) => ({ key: `warm.${i}`, content: document(i) })),
  );
  for (const pass of ['fresh', 'again']) {
    // Encoded before the count starts (the client's work is not Redis's).
    const entries = batches.map((batch) =>
      batch.map((r) => ({ key: r.key, content: r.content, contentType: 'json' as const })),
    );
    control('-z');
    control('-i', 'on');
    if (writeMany) {
      for (const batch of entries) {
        if (!(await store.putMany(batch)).every((r) => r.ok)) throw new Error('refused');
      }
    } else {
      for (const batch of batches) await store.apply(batch);
    }
    control('-i', 'off');
    control('-d', pass);
  }
  await store.close();
} finally {
  server.kill('SIGTERM');
  await exited;
  try {
    report();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Prints the instruction totals of the `fresh` and `again` dumps. */
function report(): void {
  for (const file of readdirSync(dir).sort()) {
    const text = readFileSync(join(dir, file), 'utf8');
    const trigger = /^desc: Trigger: dump (fresh|again)$/m.exec(text)?.[1];
    const total = /^totals: (\d+)/m.exec(text)?.[1];
    if (trigger !== undefined && total !== undefined) {
      console.log(
        `${trigger}: ${Math.round(Number(total) / n).toLocaleString('en-GB')} instructions per record`,
      );
    }
  }
}
