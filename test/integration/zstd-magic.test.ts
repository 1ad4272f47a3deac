/**
 * Contents that begin with the zstd magic `28 B5 2F FD` (a `.zst` file, any binary that starts so):
 * written raw, every reader would take them for a frame. We write them as a frame whatever their
 * size, and read the Rust sync-engine's raw ones by their hash (docs/PROTOCOL.md §3), on the
 * store, the hot path and the cold path.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createClient, RESP_TYPES } from '@redis/client';
import { compress } from 'zstd-napi';
import { parseCdcEntry, sha256Hex } from '../../src/codec/cdc.js';
import { ZSTD_MAGIC } from '../../src/codec/zstd.js';
import type { StoredRecord } from '../../src/model/record.js';
import { SyncStore } from '../../src/store/sync-store.js';
import { snapshot, startMesh, type Mesh, type MeshNode } from '../helpers/mesh.js';
import { eventually, startRedis, type RedisServer } from '../helpers/redis-server.js';
import { converged } from './cold-path-support.js';

/** A `.zst` file: a real zstd frame, of a document that is not the file. */
const ZST_FILE = compress(
  Buffer.from(JSON.stringify({ notes: Array.from({ length: 20 }, (_, i) => `visit ${i}`) })),
);

/** Contents by key suffix: the magic alone, 10 bytes, 100 KB of random bytes, a `.zst` file. */
const CONTENTS: Readonly<Record<string, Buffer>> = {
  bare: Buffer.from(ZSTD_MAGIC),
  small: Buffer.concat([ZSTD_MAGIC, Buffer.from([0, 1, 2, 3, 4, 5])]),
  large: Buffer.concat([ZSTD_MAGIC, randomBytes(100 * 1024 - 4)]),
  'file.zst': ZST_FILE,
};

type RawClient = ReturnType<typeof rawClient>;

function rawClient(url: string) {
  return createClient({ url }).withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
}

/** Every entry of a stream, as `[id, fields]`. */
async function entries(client: RawClient, stream: string): Promise<[string, Buffer[]][]> {
  const reply = await client.sendCommand<[Buffer, Buffer[]][]>(['XRANGE', stream, '-', '+']);
  return reply.map(([id, fields]) => [id.toString(), fields]);
}

/** The fields of the entry of `key` in `stream` (the last one, when there are several). */
async function entryOf(client: RawClient, stream: string, key: string): Promise<Buffer[]> {
  const found = (await entries(client, stream)).filter(([, fields]) => {
    const at = fields.findIndex((f, i) => i % 2 === 0 && f.toString() === 'key');
    return fields[at + 1]?.toString() === key;
  });
  assert.ok(found.length > 0, `an entry of ${key} in ${stream}`);
  return found.at(-1)![1];
}

/** What a peer reads of an entry we wrote, eagerly and lazily: the content, from a real frame. */
function assertReadsBack(fields: Buffer[], content: Buffer, what: string): void {
  for (const lazyContent of [false, true]) {
    const event = parseCdcEntry(fields, { lazyContent });
    assert.equal(event.op, 'PUT', what);
    if (event.op !== 'PUT') return;
    assert.ok(event.compressed, `${what}: written as a zstd frame (lazy ${lazyContent})`);
    assert.ok(event.content.equals(content), `${what}: the content (lazy ${lazyContent})`);
    assert.equal(event.hash, sha256Hex(content), what);
  }
}

/** An entry as the Rust sync-engine writes such content: raw, its hash that of the raw bytes. */
function rustEntry(key: string, content: Buffer, updatedAt: number): Buffer[] {
  const meta = `{"content_type":"binary","version":1,"updated_at":${updatedAt}}`;
  return ['op', 'PUT', 'key', key, 'hash', sha256Hex(content), 'data', content, 'meta', meta].map(
    (v) => (Buffer.isBuffer(v) ? v : Buffer.from(v)),
  );
}

describe('SyncStore: contents that begin with the zstd magic', () => {
  let server: RedisServer;
  let raw: RawClient;
  let store: SyncStore;
  let relay: SyncStore;
  before(async () => {
    server = await startRedis();
    raw = rawClient(server.url);
    await raw.connect();
    store = await SyncStore.connect({ redisUrl: server.url, nodeId: 'node-a', redisPrefix: 'w:' });
    relay = await SyncStore.connect({
      redisUrl: server.url,
      nodeId: 'node-r',
      redisPrefix: 'r:',
      store: { relay: true },
    });
  });
  after(async () => {
    raw.destroy();
    await Promise.allSettled([store.close(), relay.close()]);
    await server.stop();
  });

  it('put/get round-trips them, small and large, and their CDC entry holds them as a frame', async () => {
    for (const [suffix, content] of Object.entries(CONTENTS)) {
      const key = `put.${suffix}`;
      const { streamId } = await store.put(key, content);
      assert.ok((await store.get(key))?.content.equals(content), `${key} reads back`);
      const [entry] = (await entries(raw, store.keys.cdc)).filter(([id]) => id === streamId);
      assert.ok(entry !== undefined, `${key}: its CDC entry`);
      assertReadsBack(entry[1], content, key);
    }
  });

  it('relays an applied record of them, given without a frame, as a frame', async () => {
    const records: StoredRecord[] = Object.entries(CONTENTS).map(([suffix, content]) => ({
      key: `apply.${suffix}`,
      content,
      contentHash: sha256Hex(content),
      contentType: 'binary',
      version: 1,
      updatedAt: Date.now(),
      origin: 'node-x',
      deleted: false,
    }));
    const results = await relay.apply(records);
    assert.deepEqual(
      results.map((r) => r.outcome),
      records.map(() => 'applied'),
    );
    for (const record of records) {
      assert.ok((await relay.get(record.key))?.content.equals(record.content), record.key);
      assertReadsBack(await entryOf(raw, relay.keys.cdc, record.key), record.content, record.key);
    }
  });
});

describe('hot path: contents that begin with the zstd magic', () => {
  let mesh: Mesh;
  let a: MeshNode;
  let b: MeshNode;
  let raw: RawClient;
  let rawB: RawClient;
  before(async () => {
    mesh = await startMesh({ nodes: 2 });
    [a, b] = mesh.nodes as [MeshNode, MeshNode];
    raw = rawClient(a.redis.url);
    rawB = rawClient(b.redis.url);
    await Promise.all([raw.connect(), rawB.connect()]);
  });
  after(async () => {
    raw.destroy();
    rawB.destroy();
    await mesh.stop();
  });

  const deadLetters = async (): Promise<number> =>
    Number(await rawB.sendCommand(['XLEN', `dlq:${a.id}`]));

  it('replicates them from our writer, none dead-lettered', async () => {
    const keys = Object.keys(CONTENTS).map((suffix) => `hot.${suffix}`);
    for (const [suffix, content] of Object.entries(CONTENTS)) {
      await a.store.put(`hot.${suffix}`, content);
    }
    await eventually(
      async () => (await b.store.getRecords(keys)).length === keys.length,
      'every content on node b',
    );
    for (const [suffix, content] of Object.entries(CONTENTS)) {
      assert.ok((await b.store.get(`hot.${suffix}`))?.content.equals(content), suffix);
    }
    assert.deepEqual(await snapshot(b.store, keys), await snapshot(a.store, keys));
    assert.equal(await deadLetters(), 0);
  });

  it('applies them as the Rust sync-engine writes them (raw), and the cold path carries them on', async () => {
    const keys = Object.keys(CONTENTS).map((suffix) => `rust.${suffix}`);
    // Written into node a's stream alone, as a Rust peer would: node a holds no such record.
    const now = Date.now();
    for (const [suffix, content] of Object.entries(CONTENTS)) {
      await raw.sendCommand(['XADD', 'cdc', '*', ...rustEntry(`rust.${suffix}`, content, now)]);
    }
    await eventually(
      async () => (await b.store.getRecords(keys)).length === keys.length,
      'every raw entry applied on node b',
    );
    for (const [suffix, content] of Object.entries(CONTENTS)) {
      const record = await b.store.get(`rust.${suffix}`);
      // Kept as a frame, the raw bytes would read back decompressed, or not at all.
      assert.ok(record?.content.equals(content), `rust.${suffix} on node b`);
      assert.equal(record?.origin, a.id);
    }
    assert.equal(await deadLetters(), 0);

    assert.equal((await a.store.getRecords(keys)).length, 0);
    await a.engine.repair(b.id);
    for (const [suffix, content] of Object.entries(CONTENTS)) {
      assert.ok((await a.store.get(`rust.${suffix}`))?.content.equals(content), suffix);
    }
    const all = [...keys, ...Object.keys(CONTENTS).map((suffix) => `hot.${suffix}`)];
    const state = await converged([a.store, b.store], all);
    assert.ok(state.records, 'identical records');
    assert.ok(state.roots, 'identical Merkle roots');
  });
});

describe('cold path: contents that begin with the zstd magic', () => {
  let mesh: Mesh;
  let a: MeshNode;
  let b: MeshNode;
  let rawA: RawClient;
  let rawB: RawClient;
  before(async () => {
    mesh = await startMesh({
      nodes: 2,
      settings: { hot_path: { enabled: false } },
      store: { relay: true },
    });
    [a, b] = mesh.nodes as [MeshNode, MeshNode];
    rawA = rawClient(a.redis.url);
    rawB = rawClient(b.redis.url);
    await Promise.all([rawA.connect(), rawB.connect()]);
  });
  after(async () => {
    rawA.destroy();
    rawB.destroy();
    await mesh.stop();
  });

  it('repairs them byte for byte as the peer stores them, and relays them as frames', async () => {
    const keys = Object.keys(CONTENTS).map((suffix) => `cold.${suffix}`);
    for (const [suffix, content] of Object.entries(CONTENTS)) {
      await a.store.put(`cold.${suffix}`, content);
    }
    const report = await b.engine.repair(a.id);
    assert.equal(report.applied, keys.length);
    for (const [suffix, content] of Object.entries(CONTENTS)) {
      const key = `cold.${suffix}`;
      assert.ok((await b.store.get(key))?.content.equals(content), `${key} on node b`);
      const [onA, onB] = await Promise.all([
        rawA.sendCommand<Buffer>(['GET', a.store.keys.item(key)]),
        rawB.sendCommand<Buffer>(['GET', b.store.keys.item(key)]),
      ]);
      assert.ok(onB.equals(onA), `${key}: the same bytes on both nodes`);
      // What a peer of node b tails: the record it relayed.
      assertReadsBack(await entryOf(rawB, b.store.keys.cdc, key), content, `${key} relayed`);
    }
    const state = await converged([a.store, b.store], keys);
    assert.ok(state.records && state.roots, 'converged');
  });
});
