import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import fc from 'fast-check';
import { compareVersions, type StoredRecord } from '../../src/model/record.js';
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
  | { kind: 'put'; node: number; key: string; value: number; tick: number }
  | { kind: 'del'; node: number; key: string; tick: number }
  | { kind: 'race'; key: string; value: number }
  | { kind: 'sync'; from: number; to: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('put' as const),
    node: fc.integer({ min: 0, max: 2 }),
    key: fc.constantFrom(...KEYS),
    value: fc.integer({ min: 0, max: 3 }),
    tick: fc.integer({ min: 0, max: 3 }),
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
);

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
            const { record } =
              op.kind === 'put'
                ? await store.put(op.key, { v: op.value })
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
