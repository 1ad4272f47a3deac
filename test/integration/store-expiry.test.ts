/**
 * Expiry (issue 23) on one real Redis, the clock injected: `put` / `putMany` with `ttlMs` or
 * `expiresAt` store the absolute expiry in the record, its CDC meta and its Merkle leaf; reads
 * (`get`, `scan`, `count`) stop returning the record at `expiresAt` whatever arrived when; a later
 * write without a TTL clears it; an expired record is purged as a tombstone is, and neither it nor
 * an older value of its key comes back afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MAX_UPDATED_AT } from '../../src/codec/bounds.js';
import { eventToRecord, parseCdcEntry } from '../../src/codec/cdc.js';
import { WriteRefusedError } from '../../src/errors.js';
import type { StoredRecord } from '../../src/model/record.js';
import { bucketOf, computeRoot } from '../../src/store/merkle-hash.js';
import type { SyncStore } from '../../src/store/sync-store.js';
import { type SyncStoreOptions } from '../../src/store/sync-store.js';
import { storeFixture, type StoreFixture } from '../helpers/store-fixture.js';

const NOW = 1_735_776_100_000;
let fixture: StoreFixture;
let raw: StoreFixture['raw'];
const newStore = (options: Partial<SyncStoreOptions> = {}): Promise<SyncStore> =>
  fixture.newStore(options);

/** The record without its expiry. */
function noExpiry(record: StoredRecord): StoredRecord {
  const copy: { -readonly [K in keyof StoredRecord]: StoredRecord[K] } = { ...record };
  delete copy.expiresAt;
  return copy;
}

async function keysOf(store: SyncStore, includeDeleted = false): Promise<string[]> {
  const keys: string[] = [];
  for await (const r of store.scan({ includeDeleted })) keys.push(r.key);
  return keys.sort();
}

before(async () => {
  fixture = await storeFixture('e', NOW);
  raw = fixture.raw;
});

after(() => fixture.close());

describe('expiry', () => {
  it('get, scan and count stop serving a record at its expiresAt; a later put without a TTL clears it', async () => {
    let now = NOW;
    const store = await newStore({ clock: () => now });
    const { record } = await store.put('session.1', { user: 'ada' }, { ttlMs: 1000 });
    assert.equal(record.expiresAt, NOW + 1000);
    await store.put('session.2', 'x', { expiresAt: NOW + 5000 });
    await store.put('doc.1', 'forever');
    assert.equal((await store.get('session.1'))?.expiresAt, NOW + 1000);
    assert.deepEqual(await keysOf(store), ['doc.1', 'session.1', 'session.2']);
    assert.equal(await store.count(), 3);
    assert.equal(await store.count({ prefix: 'session.' }), 2);

    now = NOW + 999;
    assert.ok((await store.get('session.1')) !== undefined, 'served until its expiry');
    now = NOW + 1000;
    assert.equal(await store.get('session.1'), undefined, 'not served from its expiry on');
    assert.deepEqual(await keysOf(store), ['doc.1', 'session.2']);
    assert.equal(await store.count(), 2);
    assert.equal(await store.count({ prefix: 'session.' }), 1);
    // Kept as what it is (an expired record) until it is collected.
    assert.equal((await store.getRecord('session.1'))?.expiresAt, NOW + 1000);
    assert.deepEqual(await keysOf(store, true), ['doc.1', 'session.1', 'session.2']);
    assert.equal(await store.count({ includeDeleted: true }), 3);

    // A write is a write: the next one, without a TTL, replaces the record and its expiry.
    const renewed = await store.put('session.1', { user: 'ada', again: true });
    assert.equal(renewed.record.expiresAt, undefined);
    assert.equal(renewed.record.version, 2);
    now = NOW + 10_000_000;
    assert.equal((await store.get('session.1'))?.version, 2);
    assert.equal(await store.get('session.2'), undefined);
    assert.equal(await raw.zScore(store.keys.tombstones, 'session.1'), null, 'no longer indexed');
  });

  it('carries the expiry in the record, its CDC meta and its Merkle leaf; putMany too', async () => {
    const store = await newStore();
    const results = await store.putMany([
      { key: 'm.1', content: 'a', ttlMs: 60_000 },
      { key: 'm.2', content: 'b', expiresAt: NOW + 30_000 },
      { key: 'm.3', content: 'c' },
    ]);
    assert.deepEqual(
      results.map((r) => r.ok && r.written.record.expiresAt),
      [NOW + 60_000, NOW + 30_000, undefined],
    );
    const one = await store.put('p.1', 'd', { ttlMs: 60_000 });
    const entries = (await raw.xRange(store.keys.cdc, '-', '+')) as unknown as {
      id: Buffer;
      message: Record<string, Buffer>;
    }[];
    const metas = entries.map((e) => String(e.message['meta']));
    assert.match(metas[0]!, /,"origin":"node-a","expires_at":1735776160000\}$/);
    assert.match(metas[1]!, /,"expires_at":1735776130000\}$/);
    assert.doesNotMatch(metas[2]!, /expires_at/);
    // A peer reading the entries gets the same records.
    for (const [i, key] of ['m.1', 'm.2', 'm.3', 'p.1'].entries()) {
      const fields = Object.entries(entries[i]!.message).flatMap(([k, v]) => [Buffer.from(k), v]);
      const parsed = eventToRecord(parseCdcEntry(fields), String(entries[i]!.id), 'node-a');
      const stored = await store.getRecord(key);
      assert.equal(parsed.expiresAt, stored?.expiresAt, key);
    }
    assert.equal(one.record.expiresAt, NOW + 60_000);
    // The leaf holds the expiry: the same record without it makes another tree.
    const leaves = await store.merkleLeaves(bucketOf('p.1'));
    assert.equal(leaves.find((l) => l.key === 'p.1')?.expiresAt, NOW + 60_000);
    const records = await store.getRecords(['m.1', 'm.2', 'm.3', 'p.1']);
    assert.equal(await store.merkleRoot(), computeRoot(records));
    const withoutExpiry = records.map(noExpiry);
    assert.notEqual(computeRoot(withoutExpiry), computeRoot(records));

    // An applied record keeps its expiry, in a store that had none of it.
    const other = await newStore({ nodeId: 'node-b' });
    await other.apply(records);
    assert.deepEqual(await other.getRecords(records.map((r) => r.key)), records);
    assert.equal(await other.merkleRoot(), await store.merkleRoot());
  });

  it('refuses a ttlMs or expiresAt that is not a positive integer, in the past or past the bound', async () => {
    const store = await newStore();
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ ttlMs: 0 }, /ttlMs must be a positive integer/],
      [{ ttlMs: -5 }, /ttlMs must be a positive integer/],
      [{ ttlMs: 1.5 }, /ttlMs must be a positive integer/],
      [{ ttlMs: '1000' }, /ttlMs must be a positive integer/],
      [{ ttlMs: MAX_UPDATED_AT }, /puts the expiry past/],
      [{ expiresAt: NOW }, /is not in the future/],
      [{ expiresAt: NOW - 1 }, /is not in the future/],
      [{ expiresAt: NOW + 0.5 }, /expiresAt must be an integer/],
      [{ expiresAt: MAX_UPDATED_AT + 1 }, /expiresAt must be an integer/],
      [{ ttlMs: 10, expiresAt: NOW + 10 }, /not both/],
    ];
    for (const [options, message] of bad) {
      await assert.rejects(
        store.put('k', 'v', options),
        (error: unknown) =>
          error instanceof WriteRefusedError &&
          error.reason === 'invalid' &&
          message.test(error.message),
        JSON.stringify(options),
      );
    }
    const results = await store.putMany([
      { key: 'ok', content: 'v', ttlMs: 10 },
      { key: 'bad', content: 'v', ttlMs: -1 },
    ]);
    assert.equal(results[0]?.ok, true);
    assert.equal(results[1]?.ok, false);
    assert.equal(await store.getRecord('k'), undefined);
    assert.equal(await store.getRecord('bad'), undefined);
  });

  it('purges an expired record like a tombstone, never before it expires, and nothing brings it back', async () => {
    const ttl = 10_000;
    let now = 1_000_000;
    const store = await newStore({
      clock: () => now,
      store: { tombstoneTtlMs: ttl, maxClockSkewMs: 0 },
    });
    await store.put('gone', 'old');
    const old = (await store.getRecord('gone'))!;
    const { record: expiring } = await store.put('gone', 'new', { ttlMs: 100 });
    await store.put('later', 'v', { ttlMs: 5 * ttl });
    await store.put('kept', 'v');

    // The TTL passes since the writes: 'later' has not expired yet, so it is kept.
    now += ttl + 200;
    assert.deepEqual(await store.purgeTombstones(), { purged: 1 });
    assert.equal(await store.getRecord('gone'), undefined);
    assert.ok((await store.get('later')) !== undefined);
    assert.deepEqual(
      (await store.getRecords(['gone', 'later', 'kept'])).map((r) => r.key),
      ['later', 'kept'],
    );
    assert.equal(await store.merkleRoot(), computeRoot(await store.getRecords(['later', 'kept'])));

    // A peer that has not purged sends the expired record: stale, as its tombstone would be.
    assert.equal((await store.apply([expiring]))[0]?.outcome, 'stale');
    // A peer that never saw the expiring write sends the old value: refused, as after a delete.
    assert.equal((await store.apply([old]))[0]?.outcome, 'purged');
    assert.equal(await store.get('gone'), undefined);
    assert.equal(await store.getRecord('gone'), undefined);

    now += 5 * ttl;
    assert.deepEqual(await store.purgeTombstones(), { purged: 1 });
    assert.deepEqual(
      (await store.getRecords(['gone', 'later', 'kept'])).map((r) => r.key),
      ['kept'],
    );
  });

  it('orders two versions equal but for their expiry the same way in Lua as in TypeScript', async () => {
    const store = await newStore();
    const { record } = await store.put('twin', 'v', { ttlMs: 1000 });
    const later = { ...record, expiresAt: NOW + 2000 };
    const none = noExpiry(record);
    // Greater: no expiry, then the later expiry. Delivered in any order, the greatest stays.
    const other = await newStore({ nodeId: 'node-b' });
    for (const order of [
      [record, later, none],
      [none, later, record],
      [later, record, none],
    ]) {
      await other.apply(order);
      assert.deepEqual(await other.getRecord('twin'), none);
    }
    const third = await newStore({ nodeId: 'node-c' });
    await third.apply([later, record]);
    assert.equal((await third.getRecord('twin'))?.expiresAt, NOW + 2000);
    assert.notEqual((await third.apply([record]))[0]?.outcome, 'applied');
    assert.equal((await third.getRecord('twin'))?.expiresAt, NOW + 2000);
  });
});
