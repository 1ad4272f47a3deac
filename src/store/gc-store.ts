/**
 * The tombstone collector's keys of a store (docs/PROTOCOL.md §6): per-peer acknowledgements
 * (`gc:acked`), the purge horizon (`gc:horizon`), acknowledged purges, superseding deletes and the
 * store's identity (`store:id`).
 */
import { randomUUID } from 'node:crypto';
import { MAX_UPDATED_AT, MAX_VERSION } from '../codec/bounds.js';
import type { RecordVersion } from '../model/record.js';
import type { StoreKeys } from './keys.js';
import type { GcState, HeldTombstones, TombstoneStore } from '../engine/local-store.js';
import { SCRIPTS } from './lua-script.js';
import { bucketOf } from './merkle-hash.js';
import { feedMaxlen, runWrite } from './write-call.js';
import type { ResolvedStore } from '../config/types.js';
import { AS_BUFFERS, AS_STRINGS, asString, type CommandSender } from './redis-io.js';

/** Tombstones purged per script call. */
const PURGE_BATCH = 500;
/** Held tombstones whose sizes are read to estimate the bytes of all of them. */
const HELD_SAMPLE = 1000;
/** Per tombstone, beyond its record: its bucket field, index member and score, roughly. */
const ENTRY_OVERHEAD_BYTES = 16;

/** What the collector needs of its store. */
export interface GcStoreOptions {
  readonly client: CommandSender;
  readonly keys: StoreKeys;
  readonly nodeId: string;
  readonly settings: Pick<
    ResolvedStore,
    'tombstoneTtlMs' | 'cdcMaxlen' | 'maxClockSkewMs' | 'changeFeed' | 'changeFeedMaxlen'
  >;
  readonly clock: () => number;
}

/** {@link TombstoneStore} on a store's Redis. */
export class GcStore implements TombstoneStore {
  readonly #o: GcStoreOptions;

  constructor(options: GcStoreOptions) {
    this.#o = options;
  }

  async gcState(): Promise<GcState> {
    const { client, keys } = this.#o;
    const [horizon, acked] = await Promise.all([
      client.sendCommand(['GET', keys.gcHorizon], AS_STRINGS),
      client.sendCommand<unknown>(['HGETALL', keys.gcAcked], AS_STRINGS),
    ]);
    const map = new Map<string, number>();
    // A flat array in RESP2, an object or a Map otherwise.
    const pairs: unknown[] = Array.isArray(acked)
      ? acked
      : acked instanceof Map
        ? [...(acked as Map<unknown, unknown>)].flat()
        : Object.entries((acked ?? {}) as Record<string, unknown>).flat();
    for (let i = 0; i + 1 < pairs.length; i += 2) {
      const peer = asString(pairs[i]);
      const at = Number(asString(pairs[i + 1]));
      if (peer !== undefined && Number.isSafeInteger(at)) map.set(peer, at);
    }
    const h = Number(asString(horizon) ?? '0');
    return { horizon: Number.isSafeInteger(h) ? h : 0, acked: map };
  }

  async acknowledge(peerId: string, atMs: number): Promise<void> {
    const { client, keys } = this.#o;
    await client.sendCommand(['HSET', keys.gcAcked, peerId, String(Math.floor(atMs))]);
  }

  async tombstoneArrivals(keys: readonly string[]): Promise<(number | undefined)[]> {
    if (keys.length === 0) return [];
    const reply = await this.#o.client.sendCommand<unknown[]>(
      ['ZMSCORE', this.#o.keys.tombstones, ...keys],
      AS_STRINGS,
    );
    return reply.map((score) => {
      const s = asString(score);
      return s === undefined ? undefined : Number(s);
    });
  }

  /** The purge cutoff of `now` and `horizon`; undefined when nothing can be purged. */
  #cutoff(now: number, horizon: number): number | undefined {
    const cutoff = Math.floor(Math.min(now - this.#o.settings.tombstoneTtlMs, horizon));
    return Number.isSafeInteger(cutoff) && cutoff > 0 ? cutoff : undefined;
  }

  /** True when {@link purgeTombstones} with these arguments would purge something here. */
  async hasPurgeable(now: number, horizon: number): Promise<boolean> {
    const cutoff = this.#cutoff(now, horizon);
    if (cutoff === undefined) return false;
    const { client, keys } = this.#o;
    const count = await client.sendCommand(['ZCOUNT', keys.tombstones, '-inf', `(${cutoff}`]);
    return Number(count) > 0;
  }

  /**
   * Raises this store's purge horizon to the cutoff of `now` and `horizon` and purges nothing
   * (the purge script with no keys): for a horizon that stands for other stores' purges (the
   * store-wide one of a partitioned store, docs/PROTOCOL.md §9).
   */
  async raiseHorizon(now: number, horizon: number): Promise<void> {
    const cutoff = this.#cutoff(now, horizon);
    if (cutoff === undefined) return;
    const { client, keys } = this.#o;
    await SCRIPTS.purge.run(
      client,
      [keys.tombstones, keys.dirty, keys.gcHorizon, keys.changes, keys.changesSeq],
      [String(cutoff), feedMaxlen(this.#o.settings), String(Math.floor(this.#o.clock()))],
    );
  }

  async purgeTombstones(now: number, horizon: number): Promise<{ purged: number }> {
    const { client, keys } = this.#o;
    const cutoff = this.#cutoff(now, horizon);
    let purged = 0;
    if (cutoff === undefined) return { purged };
    for (;;) {
      const reply = await client.sendCommand<unknown[]>(
        ['ZRANGEBYSCORE', keys.tombstones, '-inf', `(${cutoff}`, 'LIMIT', '0', String(PURGE_BATCH)],
        AS_BUFFERS,
      );
      const names = reply.map((k) => asString(k)!);
      if (names.length === 0) return { purged };
      const redisKeys = [
        keys.tombstones,
        keys.dirty,
        keys.gcHorizon,
        keys.changes,
        keys.changesSeq,
      ];
      const args = [
        String(cutoff),
        feedMaxlen(this.#o.settings),
        String(Math.floor(this.#o.clock())),
      ];
      for (const key of names) {
        const bucket = bucketOf(key);
        redisKeys.push(keys.item(key), keys.bucket(bucket));
        args.push(key, bucket);
      }
      purged += Number(await SCRIPTS.purge.run(client, redisKeys, args));
    }
  }

  async countTombstones(from: number, to: number): Promise<number> {
    if (!(to > from)) return 0;
    const min = Number.isFinite(from) ? String(Math.floor(from)) : '-inf';
    return Number(
      await this.#o.client.sendCommand([
        'ZCOUNT',
        this.#o.keys.tombstones,
        min,
        `(${Math.floor(to)}`,
      ]),
    );
  }

  async heldTombstones(from: number, to: number): Promise<HeldTombstones> {
    const { client, keys } = this.#o;
    if (!(to > from)) return { count: 0, bytes: 0 };
    const min = Number.isFinite(from) ? String(Math.floor(from)) : '-inf';
    const max = `(${Math.floor(to)}`;
    const [count, sample] = await Promise.all([
      client.sendCommand(['ZCOUNT', keys.tombstones, min, max]),
      client.sendCommand<unknown[]>(
        ['ZRANGEBYSCORE', keys.tombstones, min, max, 'LIMIT', '0', String(HELD_SAMPLE)],
        AS_BUFFERS,
      ),
    ]);
    const n = Number(count);
    const names = sample.map((k) => asString(k)!);
    if (n === 0 || names.length === 0) return { count: n, bytes: 0 };
    const sizes = await Promise.all(
      names.map((key) => client.sendCommand(['STRLEN', keys.item(key)])),
    );
    let bytes = 0;
    names.forEach((key, i) => {
      const keyBytes = Buffer.byteLength(key);
      // The item (its name and header line), the bucket field and its tuple (about the header's
      // size), the index member.
      bytes +=
        Buffer.byteLength(keys.item(key)) +
        2 * Number(sizes[i]) +
        2 * keyBytes +
        ENTRY_OVERHEAD_BYTES;
    });
    return { count: n, bytes: Math.round((bytes / names.length) * n) };
  }

  async supersede(key: string, stale: RecordVersion, peerId?: string): Promise<boolean> {
    const { client, keys, nodeId } = this.#o;
    if (stale.updatedAt > MAX_UPDATED_AT || stale.version + 1 > MAX_VERSION) return false;
    const [, , streamId] = await runWrite(client, keys, this.#o.settings, {
      key,
      nodeId,
      now: this.#o.clock(),
      deleted: true,
      data: Buffer.alloc(0),
      compressed: false,
      contentHash: '',
      contentType: 'binary',
      supersede: stale,
      source: peerId === undefined ? 'supersede' : `supersede:${peerId}`,
    });
    return streamId !== '';
  }

  async identity(): Promise<{ id: string; created: boolean }> {
    const id = randomUUID();
    const previous = asString(
      await this.#o.client.sendCommand(['SET', this.#o.keys.storeId, id, 'NX', 'GET'], AS_STRINGS),
    );
    return previous === undefined ? { id, created: true } : { id: previous, created: false };
  }
}
