/**
 * The hot path's pipeline and loop without Redis: an in-memory peer stream, a LocalStore that
 * fails on command, an injected clock, a real SQLite cursor file. Each test ends by checking the
 * promise: every entry of the stream applied, the cursor at the head, nothing committed past an
 * entry that was not applied.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { resolveConfig } from '../../src/config/index.js';
import { ApplyPipeline } from '../../src/engine/apply-pipeline.js';
import { ApplyRateLimit } from '../../src/engine/apply-rate-limit.js';
import type { DecodedBatch } from '../../src/engine/batch.js';
import { CursorStore } from '../../src/engine/cursor-store.js';
import { Tailer, type TailerClock } from '../../src/engine/tailer.js';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { MemoryStore, MemoryStream } from '../helpers/memory-peer.js';

function batch(lastId: string, read = 1): DecodedBatch {
  return { records: [], quarantined: [], read, ownOrigin: 0, coalesced: 0, lastId };
}

/** A pipeline whose applies are settled by the test, one promise per batch. */
function controlledPipeline(committed = '0-0') {
  const applies = new Map<string, { resolve: () => void; reject: (e: Error) => void }>();
  const commits: string[] = [];
  let failCommit = false;
  const pipeline = new ApplyPipeline<void>({
    committed,
    apply: (b) =>
      new Promise<void>((resolve, reject) => applies.set(b.lastId, { resolve, reject })),
    commit: (cursor) => {
      if (failCommit) throw new Error('disk is read-only');
      commits.push(cursor);
    },
    onCommitted: () => undefined,
    onFailed: () => undefined,
  });
  const settle = async (id: string, error?: Error): Promise<void> => {
    // Wait for the pipeline to have started the apply of `id`.
    for (let i = 0; i < 100 && !applies.has(id); i++) await new Promise(setImmediate);
    const apply = applies.get(id);
    assert.ok(apply, `apply of ${id} started`);
    if (error === undefined) apply.resolve();
    else apply.reject(error);
    await new Promise(setImmediate);
  };
  return {
    pipeline,
    commits,
    settle,
    failCommits: (on: boolean) => (failCommit = on),
  };
}

describe('ApplyPipeline', () => {
  it('commits in stream order, each batch only after the one before it', async () => {
    const { pipeline, commits, settle } = controlledPipeline();
    assert.ok(await pipeline.submit({ after: '0-0', firstId: '1-0', batch: batch('1-0') }));
    assert.ok(await pipeline.submit({ after: '1-0', firstId: '2-0', batch: batch('2-0') }));
    await settle('2-0');
    assert.deepEqual(commits, [], 'the second batch waits for the first');
    await settle('1-0');
    assert.deepEqual(commits, ['1-0', '2-0']);
    assert.equal(pipeline.committed, '2-0');
  });

  it('commits nothing past a failed batch, and reads again from the committed cursor', async () => {
    const { pipeline, commits, settle } = controlledPipeline();
    for (const [after, last] of [
      ['0-0', '1-0'],
      ['1-0', '2-0'],
      ['2-0', '3-0'],
    ] as const) {
      assert.ok(await pipeline.submit({ after, firstId: last, batch: batch(last) }));
    }
    await settle('1-0');
    await settle('2-0', new Error('local Redis went away'));
    await settle('3-0'); // applied (harmless under LWW), but must not commit past 2-0
    assert.deepEqual(commits, ['1-0']);
    assert.equal(pipeline.oldestPendingId, '2-0', 'the failed batch is the oldest entry waiting');
    // A batch read from the old position no longer follows on: it is dropped.
    assert.equal(
      await pipeline.submit({ after: '3-0', firstId: '4-0', batch: batch('4-0') }),
      false,
    );
    const next = await pipeline.nextPosition();
    assert.deepEqual(next, { cursor: '1-0', rewound: true });
    assert.ok(await pipeline.submit({ after: '1-0', firstId: '2-0', batch: batch('3-0', 2) }));
    await settle('3-0');
    assert.deepEqual(commits, ['1-0', '3-0']);
  });

  it('treats a cursor that cannot be committed as a failed batch', async () => {
    const { pipeline, commits, settle, failCommits } = controlledPipeline();
    failCommits(true);
    assert.ok(await pipeline.submit({ after: '0-0', firstId: '1-0', batch: batch('1-0') }));
    assert.ok(await pipeline.submit({ after: '1-0', firstId: '2-0', batch: batch('2-0') }));
    await settle('1-0');
    await settle('2-0');
    failCommits(false);
    assert.deepEqual(await pipeline.nextPosition(), { cursor: '0-0', rewound: true });
    assert.equal(pipeline.committed, '0-0');
    assert.deepEqual(commits, []);
  });

  it('waits for a slot when three batches are in flight, and reports a failure met while waiting', async () => {
    const { pipeline, settle } = controlledPipeline();
    for (const [after, last] of [
      ['0-0', '1-0'],
      ['1-0', '2-0'],
      ['2-0', '3-0'],
    ] as const) {
      await pipeline.submit({ after, firstId: last, batch: batch(last) });
    }
    const fourth = pipeline.submit({ after: '3-0', firstId: '4-0', batch: batch('4-0') });
    await settle('1-0', new Error('connection reset'));
    await settle('2-0');
    await settle('3-0');
    assert.equal(await fourth, false, 'the fourth batch no longer follows on');
    assert.equal((await pipeline.nextPosition()).cursor, '0-0');
  });
});

const dirs: string[] = [];
const tailers: Tailer[] = [];
afterEach(async () => {
  await Promise.all(tailers.splice(0).map((t) => t.stop()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A clock whose sleeps end at once (a tick later), and whose time moves 500 ms per reading. */
function fastClock(): TailerClock {
  let now = Date.now();
  return {
    now: () => (now += 500),
    sleep: (_ms, signal) =>
      signal.aborted ? Promise.resolve(false) : new Promise((r) => setTimeout(() => r(true), 1)),
  };
}

interface TailerOptions {
  readonly batchSize?: number;
  readonly peerId?: string;
  readonly hotPath?: Record<string, unknown>;
  readonly rateLimit?: ApplyRateLimit;
  readonly clock?: TailerClock;
  /** Receives every log line (JSON). */
  readonly logLines?: string[];
}

function tailerOf(stream: MemoryStream, store: MemoryStore, options: TailerOptions = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'repl-tailer-'));
  dirs.push(dir);
  const config = resolveConfig({
    replication: {
      local_node_id: 'node-b',
      settings: {
        hot_path: {
          batch_size: options.batchSize ?? 10,
          min_batch_size: 10,
          block_timeout: '50ms',
        },
      },
      peers: [{ node_id: 'node-a', redis_url: 'redis://127.0.0.1:1' }],
    },
  });
  const cursors = CursorStore.open(join(dir, 'cursors.db'));
  const peerId = options.peerId ?? 'node-a';
  const tailer = new Tailer(peerId, stream, {
    localNodeId: 'node-b',
    hotPath: () => config.replication.hotPath,
    slo: () => config.replication.slo,
    maxItemBytes: config.store.maxItemBytes,
    store,
    cursors,
    rateLimit: options.rateLimit ?? new ApplyRateLimit(() => config.replication.hotPath),
    metrics: createMetrics(),
    logger:
      options.logLines === undefined
        ? createLogger({ level: 'silent' })
        : createLogger({ destination: { write: (line: string) => options.logLines!.push(line) } }),
    onGap: () => undefined,
    onConflicts: () => undefined,
    clock: options.clock ?? fastClock(),
  });
  tailers.push(tailer);
  return { tailer, cursors };
}

async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Keys `k.0`..`k.n-1` written once each to `stream`. */
function fill(stream: MemoryStream, n: number, prefix = 'k'): string[] {
  return Array.from({ length: n }, (_, i) => {
    stream.put(`${prefix}.${i}`, `v${i}`);
    return `${prefix}.${i}`;
  });
}

function assertAllApplied(store: MemoryStore, keys: readonly string[]): void {
  const missing = keys.filter((k) => !store.records.has(k));
  assert.deepEqual(
    missing.length,
    0,
    `${missing.length} keys skipped: ${missing.slice(0, 5).join(', ')}`,
  );
}

describe('Tailer loop', () => {
  it('applies every entry of a catch-up whose applies fail at random, with stream checks draining', async () => {
    const stream = new MemoryStream();
    const keys = fill(stream, 3000);
    const store = new MemoryStore();
    // About one apply in four fails; the clock makes a stream check due every few reads.
    let seed = 7;
    store.failWhen = () => ((seed = (seed * 48271) % 2147483647) & 3) === 0;
    const { tailer, cursors } = tailerOf(stream, store);
    tailer.start();
    await until(() => tailer.committedCursor === stream.lastId, 'the cursor at the head');
    assert.ok(store.applies > 300, `${store.applies} applies`);
    assertAllApplied(store, keys);
    assert.equal(cursors.get('node-a')?.streamId, stream.lastId);
  });

  it('reads on after a read cut short by its byte budget, from the last entry it delivered', async () => {
    const stream = new MemoryStream();
    const store = new MemoryStore();
    // Every read keeps 3 of the 10 it asked for and says so (as max_batch_bytes does).
    stream.cutAfter = 3;
    const keys = fill(stream, 200);
    const { tailer, cursors } = tailerOf(stream, store);
    tailer.start();
    await until(() => tailer.committedCursor === stream.lastId, 'the cursor at the head');
    assertAllApplied(store, keys);
    assert.ok(store.applies >= 200 / 3, `${store.applies} applies`);
    assert.equal(cursors.get('node-a')?.streamId, stream.lastId);
  });

  it('reads again after failed reads, and delivers what arrives live', async () => {
    const stream = new MemoryStream();
    const store = new MemoryStore();
    const { tailer } = tailerOf(stream, store);
    const first = fill(stream, 25, 'a');
    stream.failReads = 3;
    tailer.start();
    await until(() => tailer.committedCursor === stream.lastId, 'the backlog applied');
    const live = fill(stream, 5, 'b');
    await until(() => tailer.committedCursor === stream.lastId, 'the live entries applied');
    assertAllApplied(store, [...first, ...live]);
    assert.equal(tailer.state.kind, 'live');
  });

  it('counts what waits as lag while paused and while applies fail, from the committed cursor', async () => {
    const stream = new MemoryStream();
    const store = new MemoryStore();
    const { tailer } = tailerOf(stream, store);
    fill(stream, 5, 'a');
    tailer.start();
    await until(() => tailer.committedCursor === stream.lastId, 'caught up');
    await until(() => tailer.status().lagEvents === 0, 'no lag once caught up');
    tailer.pause();
    await until(() => tailer.state.kind === 'paused', 'paused');
    stream.ms -= 60_000; // entries a minute old by the time they are counted
    const waiting = fill(stream, 12, 'p');
    await until(() => tailer.status().lagEvents === 12, '12 entries counted while paused');
    assert.ok(tailer.status().lagMs >= 60_000, `lag ${tailer.status().lagMs} ms`);
    // Resumed with every apply failing: the entries are read, never applied; they stay lag.
    store.failWhen = () => true;
    tailer.resume();
    await until(() => store.applies >= 3, 'applies attempted');
    assert.equal(tailer.status().lagEvents, 12);
    assert.ok(tailer.status().lagMs > 0);
    store.failWhen = () => false;
    await until(() => tailer.committedCursor === stream.lastId, 'applied once the store recovers');
    await until(() => tailer.status().lagEvents === 0, 'lag back to 0');
    assert.equal(tailer.status().lagMs, 0);
    assertAllApplied(store, waiting);
  });

  it('takes a resync at a safe point: the stream is read again from its start, nothing skipped', async () => {
    const stream = new MemoryStream();
    const store = new MemoryStore();
    const { tailer, cursors } = tailerOf(stream, store);
    const keys = fill(stream, 200);
    tailer.start();
    await until(() => tailer.committedCursor === stream.lastId, 'caught up');
    store.records.clear(); // what a resync is for: the local store lost what it had
    await tailer.resync();
    await until(() => tailer.committedCursor === stream.lastId, 'caught up again');
    assertAllApplied(store, keys);
    assert.equal(cursors.get('node-a')?.streamId, stream.lastId);
  });

  it('stops promptly while a batch waits on backpressure, committing nothing of it', async () => {
    const stream = new MemoryStream();
    const store = new MemoryStore();
    store.accepting = false;
    const { tailer, cursors } = tailerOf(stream, store);
    fill(stream, 5);
    tailer.start();
    await until(() => tailer.status().backpressured, 'the batch waits on backpressure');
    await tailer.stop();
    assert.equal(tailer.state.kind, 'stopped');
    assert.equal(cursors.get('node-a'), undefined, 'no cursor committed');
    assert.equal(store.records.size, 0);
  });

  it('keeps the apply rate of all peers together within rate_limit_per_sec (one bucket per node)', async () => {
    const hotPath = { rate_limit_enabled: true, rate_limit_per_sec: 400, rate_limit_burst: 20 };
    const config = resolveConfig({
      replication: {
        local_node_id: 'node-b',
        settings: { hot_path: hotPath },
        peers: [{ node_id: 'node-a', redis_url: 'redis://127.0.0.1:1' }],
      },
    });
    const shared = new ApplyRateLimit(() => config.replication.hotPath);
    const realClock: TailerClock = { now: () => Date.now(), sleep: (ms, s) => sleepFor(ms, s) };
    const store = new MemoryStore();
    const streams = [new MemoryStream(), new MemoryStream()];
    streams.forEach((s, i) => fill(s, 600, `p${i}`));
    const started = Date.now();
    for (const [i, stream] of streams.entries()) {
      const { tailer } = tailerOf(stream, store, {
        peerId: `node-${i === 0 ? 'a' : 'c'}`,
        hotPath,
        rateLimit: shared,
        clock: realClock,
      });
      tailer.start();
    }
    // Whatever the machine's speed, what was applied by any moment is at most the burst plus the
    // rate times the time since the start (and a batch per peer in flight): with a bucket per
    // peer, twice that.
    let samples = 0;
    while (store.records.size < 1200) {
      const seconds = (Date.now() - started) / 1000;
      const bound = 20 + 400 * seconds + 2 * 10;
      assert.ok(store.records.size <= bound, `${store.records.size} applied after ${seconds} s`);
      samples += 1;
      await sleepFor(20);
    }
    assert.ok(samples > 10, `${samples} samples taken`);
  });
  it('logs a run of failed applies once when it starts and once when it ends, not per batch', async () => {
    const stream = new MemoryStream();
    const keys = fill(stream, 400);
    const store = new MemoryStore();
    store.failWhen = (call) => call <= 30;
    const lines: string[] = [];
    const { tailer } = tailerOf(stream, store, {
      logLines: lines,
      clock: { now: () => Date.now(), sleep: (_ms, signal) => sleepFor(1, signal) },
    });
    tailer.start();
    await until(() => tailer.committedCursor === stream.lastId, 'the cursor at the head');
    assertAllApplied(store, keys);
    const msgs = lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
    const failed = msgs.filter((m) => m.startsWith('batch apply failed'));
    assert.equal(failed.length, 1, msgs.join('\n'));
    assert.equal(msgs.filter((m) => m.startsWith('batches apply again: back after')).length, 1);
  });
});

function sleepFor(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const timer = setTimeout(() => resolve(true), ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}
