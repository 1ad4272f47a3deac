/**
 * Honest records converge exactly as without the hostile peer (issue 19): random histories of
 * writes and deletes on three honest nodes, delivered by the hot path (each peer's real `cdc`
 * stream, decoded and applied as the tailer does: `decodeBatch` with the clock bound, then
 * `LocalStore.apply`) and the cold path (the real `runRepair` over real Redis), interleaved with
 * a fourth, hostile peer whose Redis is written by hand: bodies tampered under kept hashes, edge
 * integers, far-future clocks, oversized records, garbage CDC entries, bogus bucket fields. The
 * honest nodes read the hostile one on both paths, as often as each other. The same honest
 * history is replayed in a world without the hostile peer; after healing, every honest key holds,
 * on every honest node, exactly the record it holds there. The hostile peer's own keys (a
 * legitimate write of its own) are not compared.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient, RESP_TYPES } from '@redis/client';
import fc from 'fast-check';
import { sha256Hex } from '../../src/codec/cdc.js';
import { decodeBatch, type RawEntry } from '../../src/engine/batch.js';
import { runRepair } from '../../src/engine/merkle-repair.js';
import type { PeerLink } from '../../src/engine/peer-link.js';
import type { StoredRecord } from '../../src/model/record.js';
import { storeKeys } from '../../src/store/keys.js';
import { bucketOf } from '../../src/store/merkle-hash.js';
import { SyncStore } from '../../src/store/sync-store.js';
import { startRedis, type RedisServer } from '../helpers/redis-server.js';

const KEYS = ['uk.a', 'uk.b', 'uk.c', 'uk.nhs.patient.1'];
const HONEST = ['node-a', 'node-b', 'node-c'];
const HOSTILE = 'node-x';
const MAX_ITEM_BYTES = 4096;
const SKEW_MS = 1000;

type Hostile =
  | 'tampered'
  | 'edge_clock'
  | 'edge_version'
  | 'future'
  | 'oversized'
  | 'garbage_cdc'
  | 'bogus_bucket'
  | 'own_write';

type Op =
  | { kind: 'put' | 'del'; node: number; key: string; value: number }
  | { kind: 'hot' | 'cold'; from: number; to: number }
  | { kind: 'hostile'; what: Hostile; key: string; junk: Uint8Array }
  | { kind: 'from_hostile'; path: 'hot' | 'cold'; to: number };

const node = fc.integer({ min: 0, max: 2 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constantFrom('put' as const, 'del' as const),
      node,
      key: fc.constantFrom(...KEYS),
      value: fc.integer({ min: 0, max: 3 }),
    }),
    weight: 4,
  },
  {
    arbitrary: fc.record({
      kind: fc.constantFrom('hot' as const, 'cold' as const),
      from: node,
      to: node,
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('hostile' as const),
      what: fc.constantFrom<Hostile>(
        'tampered',
        'edge_clock',
        'edge_version',
        'future',
        'oversized',
        'garbage_cdc',
        'bogus_bucket',
        'own_write',
      ),
      key: fc.constantFrom(...KEYS),
      junk: fc.uint8Array({ minLength: 1, maxLength: 40 }),
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('from_hostile' as const),
      path: fc.constantFrom('hot' as const, 'cold' as const),
      to: node,
    }),
    weight: 2,
  },
);

let server: RedisServer;
let client: ReturnType<typeof createClient>;
let run = 0;

before(async () => {
  server = await startRedis();
  client = createClient({ url: server.url });
  client.on('error', () => undefined);
  await client.connect();
});

after(async () => {
  await client.close();
  await server.stop();
});

/** One world: the honest stores (and, with `hostile`, the hostile peer's), under one clock. */
function world(name: string, withHostile: boolean) {
  let now = 3_000_000;
  const clock = (): number => now;
  const prefix = (id: string): string => `hc${run}:${name}:${id}:`;
  const ids = withHostile ? [...HONEST, HOSTILE] : HONEST;
  const stores = ids.map(
    (nodeId) =>
      new SyncStore(client, {
        nodeId,
        redisPrefix: prefix(nodeId),
        clock,
        store: { maxClockSkewMs: SKEW_MS, maxItemBytes: MAX_ITEM_BYTES },
      }),
  );
  const link = { run: (_op: string, fn: (c: unknown) => unknown) => fn(client) };
  const hot = async (from: number, to: number): Promise<void> => {
    if (from === to) return;
    const reply = await client.sendCommand<[Buffer, Buffer[]][]>(
      ['XRANGE', `${prefix(ids[from]!)}cdc`, '-', '+'],
      { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } },
    );
    const entries: RawEntry[] = reply.map(([id, fields]) => ({
      id: id.toString('latin1'),
      fields,
    }));
    const batch = decodeBatch(
      entries,
      ids[from]!,
      ids[to]!,
      { maxItemBytes: MAX_ITEM_BYTES, lazyContent: false },
      { now, maxClockSkewMs: SKEW_MS },
    );
    if (batch.records.length > 0) await stores[to]!.apply(batch.records);
  };
  const cold = async (from: number, to: number): Promise<void> => {
    if (from === to) return;
    await stores[from]!.refreshMerkle();
    await runRepair(
      stores[to]!,
      {
        peerId: ids[from]!,
        link: link as unknown as PeerLink,
        redisPrefix: prefix(ids[from]!),
        maxItemBytes: MAX_ITEM_BYTES,
      },
      { dryRun: false, budget: 1000, resumeAfter: undefined, maxClockSkewMs: SKEW_MS, now: clock },
    );
  };
  return {
    stores,
    prefix,
    now: () => now,
    tick: () => (now += 1),
    hot,
    cold,
    /** Every honest pair both ways, both paths, twice; the hostile peer read as often. */
    async heal(): Promise<void> {
      for (let round = 0; round < 2; round++) {
        for (let to = 0; to < 3; to++) {
          for (let from = 0; from < ids.length; from++) {
            await hot(from, to);
            await cold(from, to);
          }
        }
      }
    },
  };
}

/** A record's value as stored by hand: header line, then the body (docs/PROTOCOL.md §2). */
function rawRecord(ts: number | string, v: number | string, hash: string, body: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(`{"ts":${ts},"v":${v},"d":0,"h":"${hash}","o":"${HOSTILE}","t":"binary"}\n`),
    body,
  ]);
}

/** Writes the hostile peer's Redis by hand: a record, its leaf and dirty mark, and a CDC entry. */
async function hostileWrite(prefix: string, op: Extract<Op, { kind: 'hostile' }>, now: number) {
  const keys = storeKeys(prefix);
  const send = (args: (string | Buffer)[]): Promise<unknown> => client.sendCommand(args);
  const plant = async (
    ts: number | string,
    v: number | string,
    hash: string,
    body: Buffer,
  ): Promise<void> => {
    await send(['SET', keys.item(op.key), rawRecord(ts, v, hash, body)]);
    await send(['HSET', keys.bucket(bucketOf(op.key)), op.key, `${ts}|${v}|0|${hash}|${HOSTILE}`]);
    await send(['HSET', keys.dirty, op.key, bucketOf(op.key)]);
    const meta = JSON.stringify({ updated_at: Number(ts), version: Number(v), origin: HOSTILE });
    await send([
      'XADD',
      keys.cdc,
      '*',
      'op',
      'PUT',
      'key',
      op.key,
      'hash',
      hash,
      'data',
      body,
      'meta',
      meta,
    ]);
  };
  const original = Buffer.from(`honest-looking ${op.key}`);
  switch (op.what) {
    case 'tampered': // newest clock, the hash of one body and another body
      return plant(now + 1, 99, sha256Hex(original), Buffer.from('tampered'));
    case 'edge_clock':
      return plant(2 ** 53 - 1, 1, sha256Hex(original), original);
    case 'edge_version':
      return plant(now + 1, 2 ** 53 - 1, sha256Hex(original), original);
    case 'future': // a valid record, a day ahead: held back, never in range within the test
      return plant(now + 86_400_000, 1, sha256Hex(original), original);
    case 'oversized': {
      const big = Buffer.alloc(MAX_ITEM_BYTES * 2, 7);
      return plant(now + 1, 99, sha256Hex(big), big);
    }
    case 'garbage_cdc': {
      const junk = Buffer.from(op.junk);
      await send(['XADD', keys.cdc, '*', 'op', 'PUT', 'key', op.key, 'data', junk, 'meta', junk]);
      await send(['XADD', keys.cdc, '*', 'junk', junk]);
      return;
    }
    case 'bogus_bucket': {
      const bucket = keys.bucket(bucketOf(op.key));
      // A key of another bucket, a malformed tuple, an edge clock: none of them is compared.
      await send(['HSET', bucket, `${op.key}.elsewhere`, `${now + 1}|1|0|${'e'.repeat(64)}|x`]);
      await send(['HSET', bucket, Buffer.from(op.junk).toString('latin1'), Buffer.from(op.junk)]);
      await send(['HSET', keys.dirty, op.key, Buffer.from(op.junk).toString('latin1')]);
      return;
    }
    case 'own_write':
      return undefined; // done through its store by the caller
  }
}

/** What a record is, for comparing two worlds: everything but where it is stored. */
function summary(r: StoredRecord | undefined): string {
  if (r === undefined) return 'absent';
  return JSON.stringify([
    r.updatedAt,
    r.version,
    r.deleted,
    r.contentHash,
    r.origin,
    r.content.toString('base64'),
  ]);
}

describe('convergence with a hostile peer', () => {
  it('honest records converge exactly as without the hostile peer, on both paths', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 40 }), async (ops) => {
        run += 1;
        const hostile = world('h', true);
        const clean = world('c', false);
        for (const op of ops) {
          switch (op.kind) {
            case 'put':
            case 'del':
              for (const w of [hostile, clean]) {
                w.tick();
                const store = w.stores[op.node]!;
                if (op.kind === 'put') await store.put(op.key, { v: op.value });
                else await store.delete(op.key);
              }
              break;
            case 'hot':
            case 'cold':
              for (const w of [hostile, clean]) await w[op.kind](op.from, op.to);
              break;
            case 'hostile':
              if (op.what === 'own_write') {
                await hostile.stores[3]!.put(`x.${op.key}`, { junk: op.junk.length });
              } else {
                await hostileWrite(hostile.prefix(HOSTILE), op, hostile.now());
              }
              break;
            case 'from_hostile':
              await hostile[op.path](3, op.to);
              break;
          }
        }
        await hostile.heal();
        await clean.heal();
        for (const key of KEYS) {
          const expected = summary(await clean.stores[0]!.getRecord(key));
          for (let i = 0; i < 3; i++) {
            assert.equal(
              summary(await clean.stores[i]!.getRecord(key)),
              expected,
              `clean ${i} ${key}`,
            );
            assert.equal(
              summary(await hostile.stores[i]!.getRecord(key)),
              expected,
              `${HONEST[i]} holds ${key} as without the hostile peer`,
            );
          }
        }
      }),
      { numRuns: 60 },
    );
  });
});
