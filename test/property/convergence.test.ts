import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import fc from 'fast-check';
import { runRepair } from '../../src/engine/merkle-repair.js';
import type { PeerLink } from '../../src/engine/peer-link.js';
import { collectTombstones } from '../../src/engine/tombstone-gc.js';
import { compareVersions, isLive, type StoredRecord } from '../../src/model/record.js';
import { computeRoot } from '../../src/store/merkle-hash.js';
import { SyncStore } from '../../src/store/sync-store.js';
import { startRedis, type RedisServer } from '../helpers/redis-server.js';

const KEYS = ['uk.a', 'uk.b', 'uk.c', 'uk.nhs.patient.1', 'uk.nhs.patient.2'];

/**
 * Node ids (the records' origins) from all of Unicode, with characters at the edges of UTF-8's
 * lengths and of the surrogates often enough that origins where UTF-16 code units and UTF-8 bytes
 * disagree (above U+FFFF against U+E000-U+FFFF) meet in most runs: every node, and the TypeScript
 * order the test checks the winners with, must order them by their UTF-8 bytes (SPEC §8).
 */
const originUnit = fc.oneof(
  { arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }), weight: 1 },
  {
    arbitrary: fc.constantFrom(
      'n',
      'ü',
      '\u0800',
      '\ue000',
      'ﬀ',
      '\uffff',
      '\u{10000}',
      '\u{1F600}',
    ),
    weight: 3,
  },
);
const nodesArb = fc.uniqueArray(fc.string({ unit: originUnit, minLength: 1, maxLength: 3 }), {
  minLength: 3,
  maxLength: 3,
});

type Op =
  | { kind: 'put'; node: number; key: string; value: number; tick: number; ttl: number | null }
  | { kind: 'twin'; node: number; expiry: number | null }
  | { kind: 'del'; node: number; key: string; tick: number }
  | { kind: 'race'; key: string; value: number }
  | { kind: 'sync'; from: number; to: number }
  | {
      kind: 'batch';
      node: number;
      keys: string[];
      del: boolean;
      value: number;
      tick: number;
      ttl: number | null;
    };

/** A TTL for a put: mostly none, else a few ms (so that some expire before the end, some not). */
const ttlArb = fc.option(fc.integer({ min: 1, max: 8 }), { freq: 2 });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('put' as const),
    node: fc.integer({ min: 0, max: 2 }),
    key: fc.constantFrom(...KEYS),
    value: fc.integer({ min: 0, max: 3 }),
    tick: fc.integer({ min: 0, max: 3 }),
    ttl: ttlArb,
  }),
  // The last record a node wrote, again with another expiry (or none): a version equal in all
  // but its expiry, which only the expiry tie-break orders (in Lua as in TypeScript).
  fc.record({
    kind: fc.constant('twin' as const),
    node: fc.integer({ min: 0, max: 2 }),
    expiry: fc.option(fc.integer({ min: 1, max: 6 })),
  }),
  fc.record({
    kind: fc.constant('del' as const),
    node: fc.integer({ min: 0, max: 2 }),
    key: fc.constantFrom(...KEYS),
    tick: fc.integer({ min: 0, max: 3 }),
  }),
  // The same key written on every node in the same millisecond: equal clocks, so the origin decides.
  fc.record({
    kind: fc.constant('race' as const),
    key: fc.constantFrom(...KEYS),
    value: fc.integer({ min: 0, max: 3 }),
  }),
  fc.record({
    kind: fc.constant('sync' as const),
    from: fc.integer({ min: 0, max: 2 }),
    to: fc.integer({ min: 0, max: 2 }),
  }),
  // putMany / deleteMany of a few keys, a key possibly twice (written in order).
  fc.record({
    kind: fc.constant('batch' as const),
    node: fc.integer({ min: 0, max: 2 }),
    keys: fc.array(fc.constantFrom(...KEYS), { minLength: 1, maxLength: 6 }),
    del: fc.boolean(),
    value: fc.integer({ min: 0, max: 3 }),
    tick: fc.integer({ min: 0, max: 3 }),
    ttl: ttlArb,
  }),
);

/** `put` options of a TTL (null: none). */
function ttlOptions(ttl: number | null): { ttlMs?: number } {
  return ttl === null ? {} : { ttlMs: ttl };
}

/** A delivery plan per store: a permutation with duplicates, applied in batches. */
const deliveryArb = fc.record({
  order: fc.array(fc.nat(), { minLength: 1, maxLength: 200 }),
  duplicates: fc.array(fc.nat(), { maxLength: 20 }),
  batch: fc.integer({ min: 1, max: 7 }),
});

function plan(
  records: readonly StoredRecord[],
  d: { order: number[]; duplicates: number[] },
): StoredRecord[] {
  // Sort indexes by the generated weights: a permutation fast-check can shrink.
  const weighted = records.map((r, i) => ({
    r,
    w: d.order[i % d.order.length]! + i / records.length,
  }));
  weighted.sort((a, b) => a.w - b.w);
  const out = weighted.map((x) => x.r);
  if (records.length === 0) return out;
  for (const dup of d.duplicates) {
    out.splice(dup % (out.length + 1), 0, records[dup % records.length]!);
  }
  return out;
}

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

describe('LWW convergence', () => {
  it('random histories delivered in random orders with duplicates converge on three stores', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { minLength: 1, maxLength: 40 }),
        fc.tuple(fc.integer({ min: -50, max: 50 }), fc.integer({ min: -50, max: 50 })),
        fc.tuple(deliveryArb, deliveryArb, deliveryArb),
        nodesArb,
        async (ops, [skewB, skewC], deliveries, nodes) => {
          run += 1;
          const clocks = [1_000_000, 1_000_000 + skewB, 1_000_000 + skewC];
          let raceAt: number | undefined;
          const stores = nodes.map(
            (nodeId, i) =>
              new SyncStore(client, {
                nodeId,
                redisPrefix: `conv${run}:${i}:`,
                clock: () => raceAt ?? clocks[i]!,
              }),
          );
          const written: StoredRecord[][] = [[], [], []];
          for (const op of ops) {
            if (op.kind === 'sync') {
              await stores[op.to]!.apply(written[op.from]!);
              continue;
            }
            if (op.kind === 'twin') {
              const last = written[op.node]!.findLast((r) => !r.deleted);
              if (last === undefined) continue;
              const twin: { -readonly [K in keyof StoredRecord]: StoredRecord[K] } = { ...last };
              if (op.expiry === null) delete twin.expiresAt;
              else twin.expiresAt = last.updatedAt + op.expiry;
              written[op.node]!.push(twin);
              continue;
            }
            if (op.kind === 'race') {
              raceAt = Math.max(...clocks);
              for (const [i, store] of stores.entries()) {
                written[i]!.push((await store.put(op.key, { v: op.value })).record);
              }
              raceAt = undefined;
              continue;
            }
            clocks[op.node]! += op.tick;
            const store = stores[op.node]!;
            if (op.kind === 'batch') {
              const results = op.del
                ? await store.deleteMany(op.keys)
                : await store.putMany(
                    op.keys.map((key, j) => ({
                      key,
                      content: { v: op.value, j },
                      ...ttlOptions(op.ttl),
                    })),
                  );
              for (const result of results) {
                assert.ok(result.ok);
                written[op.node]!.push(result.written.record);
              }
              continue;
            }
            const { record } =
              op.kind === 'put'
                ? await store.put(op.key, { v: op.value }, ttlOptions(op.ttl))
                : await store.delete(op.key);
            written[op.node]!.push(record);
          }

          const all = written.flat();
          for (const [i, store] of stores.entries()) {
            const sequence = plan(all, deliveries[i]!);
            const batch = deliveries[i]!.batch;
            for (let s = 0; s < sequence.length; s += batch) {
              await store.apply(sequence.slice(s, s + batch));
            }
          }

          const states = await Promise.all(stores.map((s) => s.getRecords(KEYS)));
          assert.deepEqual(states[1], states[0]);
          assert.deepEqual(states[2], states[0]);
          // Each key holds the greatest version written anywhere.
          for (const key of KEYS) {
            const versions = all.filter((r) => r.key === key);
            const held = states[0]!.find((r) => r.key === key);
            if (versions.length === 0) {
              assert.equal(held, undefined);
              continue;
            }
            const best = versions.reduce((a, b) => (compareVersions(a, b) >= 0 ? a : b));
            assert.deepEqual(held, best);
            // Served by every store exactly while it is live at that store's clock.
            for (const [i, store] of stores.entries()) {
              const served = await store.get(key);
              assert.equal(served !== undefined, isLive(best, clocks[i]!), `${key} on store ${i}`);
            }
          }
          const roots = await Promise.all(stores.map((s) => s.merkleRoot()));
          assert.equal(roots[1], roots[0]);
          assert.equal(roots[2], roots[0]);
          assert.equal(roots[0], computeRoot(states[0]!));
          await client.flushAll();
        },
      ),
      { numRuns: 25 },
    );
  });
});

/**
 * Deletes stay deleted (issue 20): random histories of writes and deletes on three nodes, with
 * repairs between them (the real cold path, `runRepair`, over real Redis), acknowledged purges,
 * partitions, and one node away for longer than the TTL (still taking writes) that returns late.
 * After healing, every node converges, no acknowledged write is lost, and no delete is undone.
 */
type GcOp =
  | { kind: 'put' | 'del'; node: number; key: string; value: number; ttl: number | null }
  | { kind: 'tick'; ms: number }
  | { kind: 'repair'; to: number; from: number; refreshPeer: boolean }
  | { kind: 'purge'; node: number }
  | { kind: 'partition'; a: number; b: number };

const TTL_MS = 100;
const GC_NODES = ['node-a', 'node-b', 'node-c'];

const gcOpArb: fc.Arbitrary<GcOp> = fc.oneof(
  fc.record({
    kind: fc.constantFrom('put' as const, 'del' as const),
    node: fc.integer({ min: 0, max: 2 }),
    key: fc.constantFrom(...KEYS),
    value: fc.integer({ min: 0, max: 3 }),
    // Some puts expire: before the end (collected as tombstones), or not.
    ttl: fc.option(fc.integer({ min: 1, max: 3 * TTL_MS }), { freq: 3 }),
  }),
  fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 60 }) }),
  {
    arbitrary: fc.record({
      kind: fc.constant('repair' as const),
      to: fc.integer({ min: 0, max: 2 }),
      from: fc.integer({ min: 0, max: 2 }),
      refreshPeer: fc.boolean(),
    }),
    weight: 3,
  },
  fc.record({ kind: fc.constant('purge' as const), node: fc.integer({ min: 0, max: 2 }) }),
  fc.record({
    kind: fc.constant('partition' as const),
    a: fc.integer({ min: 0, max: 2 }),
    b: fc.integer({ min: 0, max: 2 }),
  }),
);

describe('deletes stay deleted', () => {
  it('random histories with deletes, purges, partitions and a node returning late converge without loss or resurrection', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(gcOpArb, { maxLength: 25 }),
        fc.array(gcOpArb, { minLength: 1, maxLength: 25 }),
        fc.array(gcOpArb, { maxLength: 15 }),
        async (before, whileAway, afterReturn) => {
          run += 1;
          let now = 2_000_000;
          const prefix = (i: number): string => `gc${run}:${i}:`;
          const stores = GC_NODES.map(
            (nodeId, i) =>
              new SyncStore(client, {
                nodeId,
                redisPrefix: prefix(i),
                clock: () => now,
                store: { tombstoneTtlMs: TTL_MS, maxClockSkewMs: 10 },
              }),
          );
          const link = { run: (_op: string, fn: (c: unknown) => unknown) => fn(client) };
          const repair = async (to: number, from: number, refreshPeer: boolean): Promise<void> => {
            if (refreshPeer) await stores[from]!.refreshMerkle();
            await runRepair(
              stores[to]!,
              {
                peerId: GC_NODES[from]!,
                link: link as unknown as PeerLink,
                redisPrefix: prefix(from),
                maxItemBytes: 1 << 20,
              },
              {
                dryRun: false,
                budget: 1000,
                resumeAfter: undefined,
                maxClockSkewMs: 10,
                now: () => now,
              },
            );
          };
          const purge = (i: number): Promise<unknown> =>
            collectTombstones(
              stores[i]!.tombstones,
              GC_NODES.filter((_, j) => j !== i),
              now,
              TTL_MS,
            );
          const cut = new Set<string>();
          const pair = (a: number, b: number): string => `${Math.min(a, b)}-${Math.max(a, b)}`;
          const written: StoredRecord[] = [];
          const repairAll = async (): Promise<void> => {
            for (let to = 0; to < 3; to++) {
              for (let from = 0; from < 3; from++) if (to !== from) await repair(to, from, true);
            }
          };
          const runOp = async (op: GcOp, away: boolean): Promise<void> => {
            switch (op.kind) {
              case 'put':
              case 'del': {
                const store = stores[op.node]!;
                const { record } =
                  op.kind === 'put'
                    ? await store.put(op.key, { v: op.value }, ttlOptions(op.ttl))
                    : await store.delete(op.key);
                written.push(record);
                now += 1;
                break;
              }
              case 'tick':
                now += op.ms;
                break;
              case 'repair':
                if (op.to === op.from || cut.has(pair(op.to, op.from))) break;
                if (away && (op.to === 2 || op.from === 2)) break;
                await repair(op.to, op.from, op.refreshPeer);
                break;
              case 'purge':
                await purge(op.node);
                break;
              case 'partition':
                if (op.a === op.b) break;
                if (cut.has(pair(op.a, op.b))) cut.delete(pair(op.a, op.b));
                else cut.add(pair(op.a, op.b));
                break;
            }
          };
          for (const op of before) await runOp(op, false);
          // C leaves holding what the mesh held, and is away (no repair with it either way, still
          // taking writes) for longer than the TTL, while A and B delete, purge and repair.
          await repairAll();
          for (const op of whileAway) await runOp(op, true);
          now += 2 * TTL_MS;
          // The TTL passes while C is away; A and B repair with each other again and purge.
          for (const op of whileAway) if (op.kind === 'repair') await runOp(op, true);
          await purge(0);
          await purge(1);
          for (const op of afterReturn) await runOp(op, false);
          // Heal: every link back, rounds of repairs both ways and purges, time passing.
          for (let round = 0; round < 6; round++) {
            await repairAll();
            now += TTL_MS;
            for (let i = 0; i < 3; i++) await purge(i);
          }
          const states = await Promise.all(stores.map((s) => s.getRecords(KEYS)));
          assert.deepEqual(states[1], states[0]);
          assert.deepEqual(states[2], states[0]);
          const roots = await Promise.all(stores.map((s) => s.merkleRoot()));
          assert.equal(roots[1], roots[0]);
          assert.equal(roots[2], roots[0]);
          for (const key of KEYS) {
            const versions = written.filter((r) => r.key === key);
            const held = states[0]!.find((r) => r.key === key);
            if (versions.length === 0) {
              assert.equal(held, undefined, `${key}: a record nobody wrote`);
              continue;
            }
            const best = versions.reduce((a, b) => (compareVersions(a, b) >= 0 ? a : b));
            if (!isLive(best, now)) {
              // Deleted or expired: that record, or nothing once every node purged it; never an
              // older one, and served nowhere.
              if (held !== undefined) assert.deepEqual(held, best, `${key} was resurrected`);
              for (const store of stores) assert.equal(await store.get(key), undefined, key);
            } else {
              assert.deepEqual(held, best, `${key}: the acknowledged write was lost`);
            }
          }
          await client.flushAll();
        },
      ),
      { numRuns: 40 },
    );
  });
});
