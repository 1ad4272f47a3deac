/**
 * The cluster peer's hot path without Redis: P in-memory partition streams behind a
 * {@link PartitionSource} that serves them from "shards" the test moves, a LocalStore that fails
 * on command, an injected clock, a real SQLite cursor file. Each test ends by checking the
 * promise: every entry of every partition applied, each partition's cursor (its own row) at its
 * head, nothing committed past an entry that was not applied.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import calculateSlot from 'cluster-key-slot';
import { resolveConfig } from '../../src/config/index.js';
import { ApplyRateLimit } from '../../src/engine/apply-rate-limit.js';
import { ClusterTailer } from '../../src/engine/cluster-tailer.js';
import { CursorStore } from '../../src/engine/cursor-store.js';
import type {
  PartitionReply,
  PartitionRead,
  PartitionSource,
} from '../../src/engine/partition-streams.js';
import { ShardMap } from '../../src/engine/shard-map.js';
import type { StreamInfo } from '../../src/engine/stream-gap.js';
import type { TailerClock } from '../../src/engine/tailer.js';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { partitionLayout } from '../../src/store/partitions.js';
import { MemoryStore, MemoryStream } from '../helpers/memory-peer.js';

const dirs: string[] = [];
const tailers: ClusterTailer[] = [];
afterEach(async () => {
  await Promise.all(tailers.splice(0).map((t) => t.stop()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Partition streams on shards `127.0.0.1:<port>`; a read on a shard that no longer serves one is MOVED. */
class MemoryPartitions implements PartitionSource {
  readonly keys = partitionLayout(16).tags.map((tag) => `{${tag}}:cdc`);
  readonly byKey = new Map(this.keys.map((key) => [key, new MemoryStream()]));
  /** The port serving each stream now. */
  readonly owner = new Map(this.keys.map((key, i) => [key, 7000 + (i % 3)]));
  moved = 0;
  mapReads = 0;

  ready(signal: AbortSignal): Promise<boolean> {
    return Promise.resolve(!signal.aborted);
  }

  streams(): Promise<readonly string[]> {
    return Promise.resolve(this.keys);
  }

  shards(): Promise<ShardMap> {
    this.mapReads += 1;
    const reply = this.keys.map((key) => {
      const slot = calculateSlot(key);
      return [slot, slot, ['127.0.0.1', this.owner.get(key)!, 'id']];
    });
    return Promise.resolve(ShardMap.parse(reply, '127.0.0.1'));
  }

  async read(
    shard: string,
    reads: readonly PartitionRead[],
    count: number,
  ): Promise<PartitionReply[]> {
    const signal = new AbortController().signal;
    return Promise.all(
      reads.map(async (r): Promise<PartitionReply> => {
        if (shard !== `127.0.0.1:${this.owner.get(r.key)}`) {
          this.moved += 1;
          return { kind: 'moved' };
        }
        const { entries, cut } = await this.byKey.get(r.key)!.range(r.cursor, count, signal);
        return { kind: 'entries', entries, cut, bytes: entries.length * 200 };
      }),
    );
  }

  info(shard: string, keys: readonly string[]): Promise<(StreamInfo | undefined)[]> {
    void shard;
    return Promise.all(keys.map((key) => this.byKey.get(key)!.info()));
  }

  close(): void {}
}

function source(): MemoryPartitions {
  return new MemoryPartitions();
}

function fastClock(): TailerClock {
  let now = Date.now();
  return {
    now: () => (now += 50),
    sleep: (_ms, signal) =>
      signal.aborted ? Promise.resolve(false) : new Promise((r) => setTimeout(() => r(true), 1)),
  };
}

function tailerOf(partitions: PartitionSource, store: MemoryStore) {
  const dir = mkdtempSync(join(tmpdir(), 'repl-cluster-tailer-'));
  dirs.push(dir);
  const config = resolveConfig({
    replication: {
      local_node_id: 'node-b',
      settings: { hot_path: { batch_size: 10, min_batch_size: 10, block_timeout: '50ms' } },
      peers: [{ node_id: 'node-a', redis_url: 'redis://127.0.0.1:1' }],
    },
  });
  const cursors = CursorStore.open(join(dir, 'cursors.db'));
  const tailer = new ClusterTailer('node-a', partitions, {
    localNodeId: 'node-b',
    hotPath: () => config.replication.hotPath,
    slo: () => config.replication.slo,
    maxItemBytes: config.store.maxItemBytes,
    store,
    cursors,
    rateLimit: new ApplyRateLimit(() => config.replication.hotPath),
    metrics: createMetrics(),
    logger: createLogger({ level: 'silent' }),
    onGap: () => undefined,
    onConflicts: () => undefined,
    clock: fastClock(),
  });
  tailers.push(tailer);
  return { tailer, cursors };
}

async function until(check: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** `n` keys written over the partitions, round robin; the keys. */
function fill(partitions: MemoryPartitions, n: number, prefix: string): string[] {
  const keys: string[] = [];
  for (let i = 0; i < n; i++) {
    const key = `${prefix}.${i}`;
    partitions.byKey.get(partitions.keys[i % partitions.keys.length]!)!.put(key, `v${i}`);
    keys.push(key);
  }
  return keys;
}

/** Every key applied, and every partition's own cursor row at its stream's head. */
function assertCaughtUp(
  partitions: MemoryPartitions,
  store: MemoryStore,
  cursors: CursorStore,
  keys: readonly string[],
): void {
  const missing = keys.filter((k) => !store.records.has(k));
  assert.equal(missing.length, 0, `${missing.length} keys skipped: ${missing.slice(0, 5).join()}`);
  for (const [key, stream] of partitions.byKey) {
    assert.equal(cursors.get('node-a', key)?.streamId, stream.lastId, `the cursor of ${key}`);
  }
}

function atHeads(partitions: MemoryPartitions, cursors: CursorStore): boolean {
  return [...partitions.byKey].every(
    ([key, stream]) => cursors.get('node-a', key)?.streamId === stream.lastId,
  );
}

describe('ClusterTailer', () => {
  it('applies every entry of 16 partitions whose applies fail at random, each to its own cursor', async () => {
    const partitions = source();
    const keys = fill(partitions, 1600, 'k');
    const store = new MemoryStore();
    let seed = 11;
    store.failWhen = () => ((seed = (seed * 48271) % 2147483647) & 3) === 0;
    const { tailer, cursors } = tailerOf(partitions, store);
    tailer.start();
    await until(() => atHeads(partitions, cursors), 'every cursor at its head');
    assert.ok(store.applies > 160, `${store.applies} applies`);
    assertCaughtUp(partitions, store, cursors, keys);
    assert.equal(cursors.get('node-a'), undefined, 'no single-stream row for a cluster peer');
    const status = tailer.status();
    assert.equal(status.partitions?.count, 16);
    assert.equal(status.lagEvents, 0);
  });

  it('reads a partition moved to another shard there, from its own cursor: nothing skipped', async () => {
    const partitions = source();
    const store = new MemoryStore();
    const { tailer, cursors } = tailerOf(partitions, store);
    tailer.start();
    const first = fill(partitions, 320, 'before');
    await until(() => atHeads(partitions, cursors), 'the first writes applied');
    const mapReads = partitions.mapReads;
    // A reshard: five partitions' slots now live on another master.
    for (const key of partitions.keys.slice(0, 5)) {
      partitions.owner.set(key, partitions.owner.get(key) === 7000 ? 7001 : 7000);
    }
    const second = fill(partitions, 320, 'after');
    await until(() => atHeads(partitions, cursors), 'the writes after the move applied');
    assert.ok(partitions.moved > 0, 'some reads were answered MOVED');
    assert.ok(partitions.mapReads > mapReads, 'the shard map was read again');
    assertCaughtUp(partitions, store, cursors, [...first, ...second]);
  });

  it('takes a resync: every partition read again from its start, a pause reads nothing', async () => {
    const partitions = source();
    const store = new MemoryStore();
    const { tailer, cursors } = tailerOf(partitions, store);
    tailer.start();
    const keys = fill(partitions, 160, 'k');
    await until(() => atHeads(partitions, cursors), 'the writes applied');
    tailer.pause();
    await until(() => tailer.state.kind === 'paused', 'paused');
    const applies = store.applies;
    fill(partitions, 32, 'paused');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(store.applies, applies, 'nothing applied while paused');
    assert.ok(tailer.status().lagEvents > 0, 'what waits shows as lag');
    tailer.resume();
    await until(() => atHeads(partitions, cursors), 'the paused writes applied after resume');
    store.records.clear();
    await tailer.resync();
    await until(
      () => store.records.size === keys.length + 32 && atHeads(partitions, cursors),
      'everything applied again, every cursor at its head',
    );
    assertCaughtUp(partitions, store, cursors, keys);
  });
});
