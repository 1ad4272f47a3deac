/**
 * A hostile peer (issue 19): its Redis written by hand (raw XADD, raw SET and HSET of records and
 * buckets, docs/PROTOCOL.md), and what this node's user relies on: nothing corrupt, poisoned or
 * dated in the far future is applied, other keys keep replicating, what is refused is counted and
 * kept small in dlq:<peer>, and a record held back for its clock is applied once within the bound.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import { MAX_UPDATED_AT, MAX_VERSION } from '../../src/codec/bounds.js';
import { encodeCdcEntry, sha256Hex } from '../../src/codec/cdc.js';
import type { StoredRecord } from '../../src/model/record.js';
import { APPLIES_IN_FLIGHT } from '../../src/engine/apply-pipeline.js';
import { DEAD_LETTER_ENTRY_BYTES, DEAD_LETTER_MAX_BYTES } from '../../src/store/dead-letter.js';
import { bucketOf } from '../../src/store/merkle-hash.js';
import { SyncStore } from '../../src/store/sync-store.js';
import type { RepairRejection } from '../../src/engine/merkle-repair.js';
import { metric } from './cold-path-support.js';
import { REPO, startDaemon, type Daemon } from '../fixtures/cli/cli-process.js';
import { startMesh, type Mesh, type MeshNode } from '../helpers/mesh.js';
import { eventually, freePort, startRedis, type RedisServer } from '../helpers/redis-server.js';

type Raw = ReturnType<typeof createClient>;

function put(key: string, content: string, updatedAt: number, version = 1): StoredRecord {
  const bytes = Buffer.from(content);
  return {
    key,
    content: bytes,
    contentHash: sha256Hex(bytes),
    contentType: 'binary',
    updatedAt,
    version,
    origin: 'node-a',
    deleted: false,
  };
}

async function dlq(raw: Raw, peer: string): Promise<Map<string, string>[]> {
  const reply = await raw.sendCommand<[string, string[]][]>(['XRANGE', `dlq:${peer}`, '-', '+']);
  return reply.map(([, fields]) => {
    const m = new Map<string, string>();
    for (let i = 0; i + 1 < fields.length; i += 2) m.set(fields[i]!, fields[i + 1]!);
    return m;
  });
}

describe('a hostile peer: hot path', () => {
  let mesh: Mesh;
  let a: MeshNode;
  let b: MeshNode;
  let peerRaw: Raw;
  let localRaw: Raw;
  before(async () => {
    mesh = await startMesh({ nodes: 2, store: { max_item_bytes: '1MiB' } });
    [a, b] = mesh.nodes as [MeshNode, MeshNode];
    peerRaw = createClient({ url: a.redis.url });
    localRaw = createClient({ url: b.redis.url });
    await Promise.all([peerRaw.connect(), localRaw.connect()]);
  });
  after(async () => {
    await Promise.allSettled([peerRaw.close(), localRaw.close()]);
    await mesh.stop();
  });

  it('refuses clocks and versions that leave no room for a later write, and keeps replicating', async () => {
    const edge = 2 ** 53 - 1;
    for (const [key, record] of [
      ['edge.version', put('edge.version', 'v', Date.now(), edge)],
      ['edge.clock', put('edge.clock', 'c', edge)],
    ] as const) {
      await peerRaw.sendCommand(['XADD', 'cdc', '*', ...encodeCdcEntry(record)]);
      void key;
    }
    await a.store.put('edge.honest', { ok: true });
    await eventually(async () => (await b.store.get('edge.honest')) !== undefined, 'honest key');
    assert.equal(await b.store.getRecord('edge.version'), undefined);
    assert.equal(await b.store.getRecord('edge.clock'), undefined);
    const letters = await dlq(localRaw, a.id);
    const reasons = letters
      .filter((l) => l.get('key')?.startsWith('edge.'))
      .map((l) => l.get('_reason'));
    assert.deepEqual(reasons, ['bad_meta', 'bad_meta']);
  });

  it('holds back a record dated beyond max_clock_skew, and a far-future DEL without meta', async () => {
    await b.store.put('skew.live', 'still here');
    await eventually(async () => (await a.store.get('skew.live')) !== undefined, 'a has skew.live');
    const year3000 = Date.UTC(3000, 0, 1);
    await peerRaw.sendCommand([
      'XADD',
      'cdc',
      '*',
      ...encodeCdcEntry(put('skew.future', 'x', year3000)),
    ]);
    // A Rust-style DEL: no meta, its clock is its entry id's milliseconds (year 5138).
    await peerRaw.sendCommand(['XADD', 'cdc', `${10 ** 14}-0`, 'op', 'DEL', 'key', 'skew.live']);
    await peerRaw.sendCommand([
      'XADD',
      'cdc',
      `${10 ** 14}-1`,
      ...encodeCdcEntry(put('skew.after', 'y', Date.now())),
    ]);
    await eventually(
      async () => (await b.store.get('skew.after')) !== undefined,
      'entry after them',
    );
    assert.equal(await b.store.getRecord('skew.future'), undefined, 'year 3000 not applied');
    assert.equal((await b.store.get('skew.live'))?.content.toString(), 'still here');
    assert.equal(
      await metric(b.engine, 'replication_clock_skew_rejected_total', { peer_id: a.id }),
      2,
    );
    const held = (await dlq(localRaw, a.id)).filter((l) => l.get('_reason') === 'clock_skew');
    assert.deepEqual(held.map((l) => l.get('key')).sort(), ['skew.future', 'skew.live']);
  });

  it('keeps an oversized entry in dlq:<peer> by id, size and reason, never whole', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(
        await peerRaw.sendCommand<string>([
          'XADD',
          'cdc',
          '*',
          'op',
          'PUT',
          'key',
          `big.${i}`,
          'hash',
          sha256Hex(big),
          'data',
          big,
        ]),
      );
    }
    await a.store.put('big.honest', 'fine');
    await eventually(async () => (await b.store.get('big.honest')) !== undefined, 'honest key');
    const letters = (await dlq(localRaw, a.id)).filter((l) => l.get('key')?.startsWith('big.'));
    assert.deepEqual(
      letters.map((l) => l.get('_id')),
      ids,
    );
    for (const l of letters) {
      assert.equal(l.get('_reason'), 'too_large');
      assert.equal(l.get('data_bytes'), String(big.length));
      assert.equal(l.get('data'), undefined);
    }
    const bytes = Number(await localRaw.sendCommand(['MEMORY', 'USAGE', `dlq:${a.id}`]));
    assert.ok(bytes < 10 * DEAD_LETTER_ENTRY_BYTES + 64 * 1024, `dlq holds ${bytes} bytes`);
  });
});

/** A figure of /proc/<pid>/status in bytes (VmRSS, VmHWM). */
function procStatus(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  if (line === undefined) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(/(\d+)\s*kB/.exec(line)![1]) * 1024;
}

const MiB = 1024 * 1024;

/**
 * Writes node B's config into `dir`: it replicates node A (`peerUrl`) into `localUrl` by the hot
 * path (its blocking reads short), the cold path only when asked; `hotPath` and `store` lines are
 * added to those sections. Returns its path.
 */
function writeNodeBConfig(
  dir: string,
  peerUrl: string,
  localUrl: string,
  port: number,
  extra: { hotPath?: readonly string[]; store?: readonly string[] } = {},
): string {
  const file = join(dir, 'node-b.yaml');
  const store = extra.store ?? [];
  writeFileSync(
    file,
    [
      'replication:',
      '  local_node_id: "node-b"',
      '  settings:',
      '    hot_path:',
      '      block_timeout: "200ms"',
      ...(extra.hotPath ?? []).map((line) => `      ${line}`),
      '    cold_path:',
      '      enabled: false',
      '  peers:',
      '    - node_id: "node-a"',
      `      redis_url: "${peerUrl}"`,
      '  cursor:',
      `    sqlite_path: "${join(dir, 'cursors.db')}"`,
      'local:',
      `  redis_url: "${localUrl}"`,
      ...(store.length > 0 ? ['store:', ...store.map((line) => `  ${line}`)] : []),
      'http:',
      `  port: ${port}`,
      '',
    ].join('\n'),
  );
  return file;
}

describe('a hostile peer: hot path memory (a daemon, RSS from /proc)', { timeout: 300_000 }, () => {
  const maxItemBytes = 1 * MiB;
  const maxBatchBytes = 4 * MiB;
  let dir: string;
  let peer: RedisServer;
  let local: RedisServer;
  let peerRaw: Raw;
  let localRaw: Raw;
  let writer: SyncStore;
  let daemon: ChildProcess;
  let output = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hostile-memory-'));
    [peer, local] = await Promise.all([startRedis(), startRedis()]);
    peerRaw = createClient({ url: peer.url });
    localRaw = createClient({ url: local.url });
    await Promise.all([peerRaw.connect(), localRaw.connect()]);
    writer = await SyncStore.connect({ redisUrl: peer.url, nodeId: 'node-a' });
    const port = await freePort();
    const file = writeNodeBConfig(dir, peer.url, local.url, port, {
      hotPath: [`max_batch_bytes: ${maxBatchBytes}`],
      store: [`max_item_bytes: ${maxItemBytes}`],
    });
    // As an operator starts it: from dist/ (npm run build first).
    daemon = spawn(
      process.execPath,
      ['bin/replication-engine.js', 'run', '-c', file, '--log-level', 'warn'],
      { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    daemon.stdout!.on('data', (c: Buffer) => (output = (output + c.toString('utf8')).slice(-8000)));
    daemon.stderr!.on('data', (c: Buffer) => (output = (output + c.toString('utf8')).slice(-8000)));
    await eventually(
      async () => {
        if (daemon.exitCode !== null) throw new Error(`the daemon exited: ${output}`);
        return (await fetch(`http://127.0.0.1:${port}/ready`)).status === 200;
      },
      'daemon ready',
      30_000,
    );
  });

  after(async () => {
    if (daemon !== undefined && daemon.exitCode === null) {
      const exited = new Promise((resolve) => daemon.once('exit', resolve));
      process.kill(daemon.pid!, 'SIGKILL');
      await exited;
    }
    await writer?.close().catch(() => undefined);
    await Promise.allSettled([peerRaw?.close(), localRaw?.close()]);
    await Promise.all([peer?.stop(), local?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  /** Waits until node B holds `key` (read from its Redis: `item:<key>`). */
  async function replicated(key: string, timeoutMs = 120_000): Promise<void> {
    await eventually(
      async () => Number(await localRaw.sendCommand(['EXISTS', `item:${key}`])) === 1,
      `${key} replicated (daemon output: ${output.slice(-2000)})`,
      timeoutMs,
    );
  }

  it('keeps RSS within the documented budget against ten 30 MB entries and one of 70 MB, quarantines them by id and size, and replicates the rest', async (t) => {
    await writer.put('warm.up', { ok: true });
    await replicated('warm.up');
    const pid = daemon.pid!;
    // The peak after start (VmHWM): the budget is counted from there.
    const baseline = procStatus(pid, 'VmHWM');
    const budget = (APPLIES_IN_FLIGHT + 2) * maxBatchBytes + 6 * maxItemBytes;

    const bigIds: string[] = [];
    const sizes: number[] = [];
    const hostile = async (bytes: number, i: number): Promise<void> => {
      const data = Buffer.alloc(bytes, i);
      bigIds.push(
        await peerRaw.sendCommand<string>([
          'XADD',
          'cdc',
          '*',
          'op',
          'PUT',
          'key',
          `huge.${i}`,
          'hash',
          sha256Hex(data),
          'data',
          data,
        ]),
      );
      sizes.push(bytes);
    };
    for (let i = 0; i < 10; i++) {
      await writer.put(`small.${i}`, { i });
      await hostile(30 * MiB, i);
    }
    await writer.put('small.before-70', { ok: true });
    await hostile(70 * MiB, 10);
    await writer.put('small.last', { ok: true });

    await replicated('small.last');
    for (let i = 0; i < 10; i++) await replicated(`small.${i}`, 1000);
    await replicated('small.before-70', 1000);
    const peak = procStatus(pid, 'VmHWM');
    const grew = peak - baseline;
    t.diagnostic(
      `engine RSS peak ${(baseline / MiB).toFixed(1)} MiB after start, ${(peak / MiB).toFixed(1)} MiB after 370 MB of hostile entries (budget +${(budget / MiB).toFixed(1)} MiB)`,
    );
    assert.ok(
      grew <= budget,
      `engine peak RSS grew by ${(grew / MiB).toFixed(1)} MiB (${(baseline / MiB).toFixed(1)} → ${(peak / MiB).toFixed(1)} MiB), over the budget of ${(budget / MiB).toFixed(1)} MiB`,
    );

    // Quarantined by id, size and reason; never applied, never copied whole.
    for (let i = 0; i <= 10; i++) {
      assert.equal(Number(await localRaw.sendCommand(['EXISTS', `item:huge.${i}`])), 0);
    }
    const letters = (await dlq(localRaw, 'node-a')).filter((l) =>
      l.get('key')?.startsWith('huge.'),
    );
    assert.deepEqual(
      letters.map((l) => l.get('_id')),
      bigIds,
    );
    for (const [i, l] of letters.entries()) {
      assert.equal(l.get('_reason'), 'too_large');
      assert.equal(l.get('data_bytes'), String(sizes[i]));
      assert.equal(l.get('data'), undefined);
    }
    const dlqBytes = Number(await localRaw.sendCommand(['MEMORY', 'USAGE', 'dlq:node-a']));
    assert.ok(dlqBytes <= DEAD_LETTER_MAX_BYTES, `dlq holds ${dlqBytes} bytes`);
    assert.ok(dlqBytes < 11 * DEAD_LETTER_ENTRY_BYTES + 64 * 1024, `dlq holds ${dlqBytes} bytes`);
  });
});

describe('a hostile peer: cold path and local writes', () => {
  let mesh: Mesh;
  let a: MeshNode;
  let b: MeshNode;
  let peerRaw: Raw;
  before(async () => {
    mesh = await startMesh({ nodes: 2, store: { max_clock_skew: '3s' } });
    [a, b] = mesh.nodes as [MeshNode, MeshNode];
    peerRaw = createClient({ url: a.redis.url });
    await peerRaw.connect();
  });
  after(async () => {
    await peerRaw.close().catch(() => undefined);
    await mesh.stop();
  });

  it('never applies a body that does not hash to its header, and counts it', async () => {
    // Records, leaves and dirty marks on the peer with no CDC entry (an apply, not a put): the
    // hot path cannot bring the honest content first, as it could while a pause took effect.
    const now = Date.now();
    await a.store.apply([put('body.honest', 'honest', now), put('body.corrupt', 'original', now)]);
    const item = await peerRaw.sendCommand<string>(['GET', 'item:body.corrupt']);
    const header = item.slice(0, item.indexOf('\n') + 1);
    await peerRaw.sendCommand(['SET', 'item:body.corrupt', `${header}tampered content`]);
    const report = await b.engine.repair(a.id);
    assert.equal(report.rejected.hash_mismatch, 1);
    assert.equal((await b.store.get('body.honest'))?.content.toString(), 'honest');
    assert.equal(await b.store.getRecord('body.corrupt'), undefined);
    assert.equal(
      await metric(b.engine, 'replication_repair_rejected_total', {
        peer_id: a.id,
        reason: 'hash_mismatch',
      }),
      1,
    );
  });

  it('refuses a peer leaf beyond the bounds', async () => {
    const key = 'leaf.edge';
    await peerRaw.sendCommand([
      'HSET',
      `merkle:bucket:${bucketOf(key)}`,
      key,
      `${2 ** 53 - 1}|1|0|${'a'.repeat(64)}|node-a`,
    ]);
    await peerRaw.sendCommand(['HSET', 'merkle:dirty', key, bucketOf(key)]);
    const report = await b.engine.repair(a.id);
    assert.equal(report.rejected.bad_leaf, 1);
    assert.equal(await b.store.getRecord(key), undefined);
  });

  it('holds back a record dated ahead of the bound on both paths, then applies it once in range (cold path off)', async () => {
    // The peer's own clock runs 6 s ahead: its write is a real record, tree and stream included.
    const ahead = new SyncStore(
      (a.store as unknown as { client: ConstructorParameters<typeof SyncStore>[0] }).client,
      { nodeId: a.id, clock: () => Date.now() + 6000 },
    );
    const { record } = await ahead.put('held.key', 'from the future');
    await eventually(
      async () =>
        (await metric(b.engine, 'replication_clock_skew_rejected_total', { peer_id: a.id })) >= 1,
      'held back by the hot path',
    );
    assert.equal(await b.store.getRecord('held.key'), undefined);
    // Cold path scheduling is off in the mesh: the hold-back alone requests the repair.
    await eventually(
      async () => (await b.store.get('held.key'))?.updatedAt === record.updatedAt,
      'applied once within the bound',
      15_000,
    );
  });

  it('refuses a local write on top of a far-future or exhausted clock, writing nothing', async () => {
    const far = Date.now() + 3_600_000;
    await b.store.apply([
      put('local.future', 'f', far),
      put('local.max', 'm', Date.now(), MAX_VERSION),
    ]);
    await assert.rejects(b.store.put('local.future', 'next'), /CLOCK_SKEW|max_clock_skew/);
    await assert.rejects(b.store.delete('local.max'), /bound/);
    assert.equal((await b.store.getRecord('local.future'))?.updatedAt, far);
    assert.equal((await b.store.getRecord('local.max'))?.version, MAX_VERSION);
    await assert.rejects(
      b.store.apply([put('local.over', 'o', MAX_UPDATED_AT + 1)]),
      /updatedAt must be an integer/,
    );
  });
});

/** The daemon's resident memory now and at its peak, in bytes (`/proc/<pid>/status`). */
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

/** Keys named `${prefix}${i}` that fall in `bucket`, the first `n` of them. */
function keysInBucket(bucket: string, prefix: string, n: number): string[] {
  const keys: string[] = [];
  for (let i = 0; keys.length < n; i++)
    if (bucketOf(`${prefix}${i}`) === bucket) keys.push(`${prefix}${i}`);
  return keys;
}

/** HSETs `count` fields `${prefix}<i>` = `tuple` into `hash`, in one script run on the peer. */
async function fillHash(
  raw: Raw,
  hash: string,
  prefix: string,
  count: number,
  tuple: string,
): Promise<void> {
  await raw.sendCommand([
    'EVAL',
    "for i = 1, tonumber(ARGV[2]) do redis.call('HSET', KEYS[1], ARGV[1] .. i, ARGV[3]) end",
    '1',
    hash,
    prefix,
    String(count),
    tuple,
  ]);
}

/** The admin API's answer to a repair: its report in snake_case (docs/CLI.md). */
interface RepairAnswer {
  readonly rejected: Partial<Record<RepairRejection, number>>;
  readonly oversized_buckets: { bucket: string; fields: number }[];
  readonly applied: number;
  readonly peer_round_trips: number;
  readonly acknowledged: boolean;
}

/**
 * Node B as a daemon replicating node A's Redis by the cold path alone (cold_path.enabled false,
 * the peer paused: repairs run when asked, through the admin API), both Redis written by hand.
 */
interface ColdPathDaemon {
  readonly peer: RedisServer;
  readonly peerRaw: Raw;
  readonly localRaw: Raw;
  readonly peerStore: SyncStore;
  readonly localStore: SyncStore;
  readonly daemon: Daemon;
  readonly port: number;
  readonly repair: () => Promise<RepairAnswer>;
  readonly stop: () => Promise<void>;
}

async function startColdPathDaemon(): Promise<ColdPathDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'hostile-cold-'));
  const [peer, local] = await Promise.all([startRedis(), startRedis()]);
  const peerRaw: Raw = createClient({ url: peer.url });
  const localRaw: Raw = createClient({ url: local.url });
  await Promise.all([peerRaw.connect(), localRaw.connect()]);
  const port = await freePort();
  const file = writeNodeBConfig(dir, peer.url, local.url, port);
  const daemon = startDaemon(['-c', file]);
  await daemon.waitForLog((l) => l['msg'] === 'running', 'node-b running');
  // Only the cold path brings the peer's records: the hot path would bring the honest ones first.
  const paused = await fetch(`http://127.0.0.1:${port}/peers/node-a/pause`, { method: 'POST' });
  assert.equal(paused.status, 200);
  return {
    peer,
    peerRaw,
    localRaw,
    peerStore: new SyncStore(peerRaw, { nodeId: 'node-a' }),
    localStore: new SyncStore(localRaw, { nodeId: 'node-b' }),
    daemon,
    port,
    repair: async () => {
      const res = await fetch(`http://127.0.0.1:${port}/peers/node-a/repair`, { method: 'POST' });
      assert.equal(res.status, 200, await res.clone().text());
      return (await res.json()) as RepairAnswer;
    },
    stop: async () => {
      if (daemon.child.exitCode === null) daemon.child.kill('SIGKILL');
      await daemon.exited;
      await Promise.allSettled([peerRaw.close(), localRaw.close()]);
      await Promise.allSettled([peer.stop(), local.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('a hostile peer: huge Merkle buckets (a daemon)', { timeout: 240_000 }, () => {
  let peerRaw: Raw;
  let localRaw: Raw;
  let peerStore: SyncStore;
  let localStore: SyncStore;
  let daemon: Daemon;
  let port: number;
  let node: ColdPathDaemon | undefined;
  const repair = (): Promise<RepairAnswer> => node!.repair();
  before(async () => {
    node = await startColdPathDaemon();
    ({ peerRaw, localRaw, peerStore, localStore, daemon, port } = node);
  });
  after(async () => {
    await node?.stop();
  });

  it('reports a bucket of 1M fields unread, repairs the other buckets, and stays within its memory bound', async (t) => {
    const honest = Array.from({ length: 50 }, (_, i) => `huge.honest.${i}`);
    for (const key of honest) await peerStore.put(key, `value of ${key}`);
    await peerStore.merkleRoot(); // the peer's owner hashed its tree
    const huge = bucketOf('huge.anchor');
    assert.ok(!honest.some((k) => bucketOf(k) === huge), 'the honest keys are in other buckets');
    const tuple = `${Date.now()}|1|0|${'ab'.repeat(32)}|node-a`;
    await fillHash(peerRaw, `merkle:bucket:${huge}`, 'huge.', 1_000_000, tuple);
    await peerRaw.sendCommand(['HSET', 'merkle:dirty', 'huge.anchor', huge]);

    const before = memoryOf(daemon.child.pid!);
    const report = await repair();
    const after = memoryOf(daemon.child.pid!);
    // docs/RELIABILITY.md, "Trust model": a repair adds at most ~100 MB whatever the peer serves
    // (the old HGETALL of this bucket took the daemon from ~80 MB to ~900 MB).
    const grew = after.peak - before.rss;
    t.diagnostic(`daemon RSS ${mib(before.rss)} before the repair, peak ${mib(after.peak)} after`);
    assert.ok(
      grew < 100 * 1024 * 1024,
      `daemon RSS ${mib(before.rss)} before, peak ${mib(after.peak)} after (peak before ${mib(before.peak)})`,
    );
    assert.equal(report.rejected.oversized_bucket, 1);
    assert.deepEqual(report.oversized_buckets, [{ bucket: huge, fields: 1_000_000 }]);
    assert.equal(report.applied, honest.length);
    for (const key of honest) {
      assert.equal((await localStore.get(key))?.content.toString(), `value of ${key}`, key);
    }
    assert.equal(
      Number(
        await fetchMetric(port, 'replication_repair_rejected_total', {
          peer_id: 'node-a',
          reason: 'oversized_bucket',
        }),
      ),
      1,
    );
    // Warned about once, not at every repair that meets it again.
    const again = await repair();
    assert.equal(again.rejected.oversized_bucket, 1);
    assert.equal(again.acknowledged, false, 'a bucket left uncompared never acknowledges');
    const warnings = daemon.logs.filter(
      (l) => typeof l['msg'] === 'string' && l['msg'].includes('buckets of more than'),
    );
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    await peerRaw.sendCommand(['DEL', `merkle:bucket:${huge}`]);
  });

  it('reads a bucket of many pages exactly once per field: its honest keys converge, its garbage is refused', async () => {
    const bucket = bucketOf('paged.anchor');
    const honest = keysInBucket(bucket, 'paged.honest.', 3);
    for (const key of honest) await peerStore.put(key, `paged ${key}`);
    await peerStore.merkleRoot();
    // 20,000 fields of keys that are not in this bucket (the hash is no listpack: HSCAN pages it).
    const tuple = `${Date.now()}|1|0|${'cd'.repeat(32)}|node-a`;
    await fillHash(peerRaw, `merkle:bucket:${bucket}`, 'paged.garbage.', 20_000, tuple);
    await peerRaw.sendCommand(['HSET', 'merkle:dirty', 'paged.anchor', bucket]);
    const report = await repair();
    assert.equal(report.rejected.bad_leaf, 20_000);
    assert.equal(report.rejected.oversized_bucket, undefined);
    assert.ok(
      report.peer_round_trips > 10,
      `${report.peer_round_trips} round trips: read in pages`,
    );
    for (const key of honest) {
      assert.equal((await localStore.get(key))?.content.toString(), `paged ${key}`, key);
    }
    // Dead letters are capped per repair (the count above stays exact).
    const letters = await localRaw.sendCommand<number>(['XLEN', 'dlq:node-a']);
    assert.ok(letters <= 2 * 256 + 10, `${letters} dead letters`);
  });
});

describe(
  'a hostile peer: oversized strings on the query connection (a daemon)',
  { timeout: 300_000 },
  () => {
    /** What each hostile value weighs: node-redis received such a reply whole (and more). */
    const HUGE = 50 * MiB;
    /**
     * What one read of the query connection may add to the daemon's peak RSS, whatever the peer
     * stores (docs/RELIABILITY.md, "Trust model"): a 16 MiB reply bound, and the repair's own work.
     */
    const BUDGET = 32 * MiB;
    let node: ColdPathDaemon | undefined;
    before(async () => {
      node = await startColdPathDaemon();
    });
    after(async () => {
      await node?.stop();
    });
    const oversized = (command: string): Promise<number> =>
      fetchMetric(node!.port, 'replication_peer_oversized_replies_total', {
        peer_id: 'node-a',
        command,
      });
    /** Runs `fn`, then checks the daemon's peak RSS grew by at most {@link BUDGET} over its RSS before. */
    const withinBudget = async (
      t: { diagnostic(message: string): void },
      what: string,
      fn: () => Promise<void>,
    ): Promise<void> => {
      const pid = node!.daemon.child.pid!;
      const before = memoryOf(pid);
      await fn();
      const after = memoryOf(pid);
      const grew = after.peak - before.rss;
      t.diagnostic(`${what}: daemon RSS ${mib(before.rss)} before, peak ${mib(after.peak)} after`);
      assert.ok(
        grew <= BUDGET,
        `${what}: daemon peak RSS grew by ${mib(grew)} (${mib(before.rss)} → ${mib(after.peak)}; peak before ${mib(before.peak)}), over ${mib(BUDGET)}`,
      );
    };
    const haveLocally = async (keys: readonly string[]): Promise<void> => {
      for (const key of keys) {
        assert.equal((await node!.localStore.get(key))?.content.toString(), `value of ${key}`, key);
      }
    };

    it('reads the lag of a stream whose first entry is 50 MB without receiving the entry', async (t) => {
      const { peerRaw, peerStore, port } = node!;
      const xinfos = (): Promise<number> =>
        fetchMetric(port, 'replication_peer_operation_duration_seconds_count', {
          peer_id: 'node-a',
          operation: 'xinfo',
        });
      await withinBudget(t, 'XINFO of a 50 MB first entry', async () => {
        const data = Buffer.alloc(HUGE, 1);
        const first = ['op', 'PUT', 'key', 'stream.huge', 'hash', sha256Hex(data), 'data', data];
        await peerRaw.sendCommand(['XADD', 'cdc', '*', ...first]);
        await peerStore.put('stream.after', 'value of stream.after');
        // The paused tailer reads XINFO every 2 s: its lag counts both entries, read after each.
        await eventually(
          async () =>
            (await fetchMetric(port, 'replication_lag_events', { peer_id: 'node-a' })) === 2,
          'lag of 2 entries measured',
          30_000,
        );
        const seen = await xinfos();
        await eventually(
          async () => (await xinfos()) >= seen + 3,
          'three more XINFO reads',
          30_000,
        );
      });
      // The entries XINFO shows are the stream's own: never counted as the peer misbehaving.
      assert.equal(await oversized('xinfo'), 0);
    });

    it('refuses a bucket field name of 50 MB as a leaf, and repairs the rest of its bucket', async (t) => {
      const { peerRaw, peerStore, repair } = node!;
      const bucket = bucketOf('field.anchor');
      const honest = keysInBucket(bucket, 'field.honest.', 3);
      for (const key of honest) await peerStore.put(key, `value of ${key}`);
      await peerStore.merkleRoot();
      const tuple = `${Date.now()}|1|0|${'ab'.repeat(32)}|node-a`;
      await peerRaw.sendCommand([
        'HSET',
        `merkle:bucket:${bucket}`,
        Buffer.alloc(HUGE, 0x66),
        tuple,
      ]);
      await peerRaw.sendCommand(['HSET', 'merkle:dirty', 'field.anchor', bucket]);
      let report: RepairAnswer | undefined;
      await withinBudget(t, 'HSCAN of a 50 MB field name', async () => {
        report = await repair();
      });
      assert.equal(report!.rejected.bad_leaf, 1);
      await haveLocally(honest);
      assert.ok((await oversized('hscan')) >= 1, 'counted as the peer misbehaving');
    });

    it('reads a node hash of 50 MB as divergent, and repairs what is below it', async (t) => {
      const { peerRaw, peerStore, repair } = node!;
      const honest = Array.from({ length: 20 }, (_, i) => `hash.honest.${i}`);
      for (const key of honest) await peerStore.put(key, `value of ${key}`);
      await peerStore.merkleRoot();
      // The root and the node above the first key's bucket: 50 MB each instead of 64 hex digits.
      const path = bucketOf(honest[0]!).slice(0, 1);
      await peerRaw.sendCommand(['HSET', 'merkle:nodes', 'root', Buffer.alloc(HUGE, 0x61)]);
      await peerRaw.sendCommand(['HSET', 'merkle:nodes', path, Buffer.alloc(HUGE, 0x62)]);
      await withinBudget(t, 'HGET and HMGET of 50 MB node hashes', async () => {
        await repair();
      });
      await haveLocally(honest);
      assert.ok((await oversized('hget')) >= 1, 'the root counted as the peer misbehaving');
      assert.ok((await oversized('hmget')) >= 1, 'the node counted as the peer misbehaving');
    });

    it('skips a dirty mark and a dirty key name of 50 MB, and repairs the keys marked dirty', async (t) => {
      const { peerRaw, peerStore, repair } = node!;
      const honest = Array.from({ length: 20 }, (_, i) => `dirty.honest.${i}`);
      // Written after the peer last hashed its tree: only their dirty marks name their buckets.
      for (const key of honest) await peerStore.put(key, `value of ${key}`);
      await peerRaw.sendCommand(['HSET', 'merkle:dirty', 'dirty.huge', Buffer.alloc(HUGE, 0x30)]);
      await peerRaw.sendCommand(['HSET', 'merkle:dirty', Buffer.alloc(HUGE, 0x64), '0000']);
      await withinBudget(t, 'HRANDFIELD of 50 MB marks', async () => {
        await repair();
      });
      await haveLocally(honest);
      assert.ok((await oversized('hrandfield')) >= 1, 'counted as the peer misbehaving');
    });

    it('reads a round of pages of 60 KiB field names within the round budget, every field once (last: it leaves garbage)', async (t) => {
      const { peerRaw, repair } = node!;
      // 20 divergent buckets of 100 fields each named by 60 KiB (within the key bound, so kept):
      // 6 MB a page, 120 MB for the round, which pipelines them all (2,000 fields by HLEN).
      const buckets = Array.from({ length: 20 }, (_, i) => bucketOf(`round.anchor.${i}`));
      const tuple = `${Date.now()}|1|0|${'ef'.repeat(32)}|node-a`;
      for (const [i, bucket] of buckets.entries()) {
        await peerRaw.sendCommand([
          'EVAL',
          "local long = string.rep('r', 60000) for i = 1, 100 do redis.call('HSET', KEYS[1], long .. i, ARGV[1]) end",
          '1',
          `merkle:bucket:${bucket}`,
          tuple,
        ]);
        await peerRaw.sendCommand(['HSET', 'merkle:dirty', `round.anchor.${i}`, bucket]);
      }
      const pid = node!.daemon.child.pid!;
      const before = memoryOf(pid);
      const report = await repair();
      // Not asserted: what a round keeps is bounded, but the strings of pages already taken are
      // garbage the collector frees when it runs (docs/RELIABILITY.md, "A peer can still").
      t.diagnostic(
        `a round of 120 MB of pages: daemon RSS ${mib(before.rss)} before, peak ${mib(memoryOf(pid).peak)} after, ${report.peer_round_trips} round trips`,
      );
      // The round's first pages did not all fit its budget: those left over were read on their own.
      assert.ok(report.peer_round_trips >= 10, `${report.peer_round_trips} round trips`);
      // Not one of them belongs to its bucket: each is read, once, and refused.
      assert.equal(report.rejected.bad_leaf, 2000);
      assert.equal(report.rejected.oversized_bucket, undefined);
    });
  },
);

function mib(bytes: number): string {
  return `${Math.round(bytes / 1024 / 1024)} MiB`;
}

async function fetchMetric(
  port: number,
  name: string,
  labels: Readonly<Record<string, string>>,
): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (want.every((w) => line.includes(w))) return Number(line.split(' ').at(-1));
  }
  return 0;
}
