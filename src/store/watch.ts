/**
 * `watch`: the change feed of a store as an async iterable (docs/PROTOCOL.md §10). A single store
 * has one feed stream; a partitioned store one per partition, merged here. Memory stays bounded
 * whatever the consumer's pace: each stream is read one page at a time, only once the consumer
 * has taken what was read before, so a slow consumer slows the reading, never fills a buffer; a
 * consumer that falls so far behind that trimming passes its position gets a resync marker.
 */
import { StoreError } from '../errors.js';
import type { RecordVersion, StoredRecord } from '../model/record.js';
import {
  parseChangeSource,
  parseStreamPosition,
  type ChangeSource,
  type FeedChange,
  type FeedStream,
} from './change-feed.js';
import { formatVersionTuple, parseVersionTuple } from './merkle-hash.js';

/** Options of `watch`. */
export interface WatchOptions {
  /** Only changes of keys that start with this. @default '' (every key) */
  readonly prefix?: string;
  /** Ends the iteration (quietly: the loop just ends) when aborted. */
  readonly signal?: AbortSignal;
  /**
   * Where to start: a `position` from a change or marker delivered before (every change after it
   * is delivered), `'now'` (changes applied from now on) or `'start'` (the oldest change the feed
   * still holds). @default 'now'
   */
  readonly from?: string;
  /** Fetch each change's record (one pipeline per page). @default true */
  readonly records?: boolean;
  /** Deliver purged tombstones too (source `purge`). @default false */
  readonly purges?: boolean;
  /**
   * Feed entries (of up to 32 changes) read per round trip, shared by the partitions of a
   * partitioned store (at least one each), and changes per fetch of records. @default 100
   */
  readonly pageSize?: number;
  /** How long to wait before looking again once the feed has nothing new, ms. @default 100 */
  readonly pollMs?: number;
}

/** One change the store applied. */
export interface Change {
  readonly type: 'change';
  readonly key: string;
  /** The version the change wrote (for a purge, the tombstone's, which is gone). */
  readonly version: RecordVersion;
  /** Where it came from: a local write, a peer by the hot path or by a repair, a purge. */
  readonly source: ChangeSource;
  /** When this store applied it, ms since the epoch (the clock of the node that applied it). */
  readonly appliedAt: number;
  /**
   * The record, when fetched (`records`) and still at this version. Undefined when a later change
   * of the key replaced it (that change follows in the feed) or for a purge.
   */
  readonly record?: StoredRecord;
  /** Resume here (`watch({ from: position })`) to get every change after this one. */
  readonly position: string;
}

/**
 * Changes were lost to the consumer: the feed was trimmed past its position (`trimmed`: it fell
 * more than `store.change_feed_maxlen` changes behind) or is not the one the position was taken
 * in (`reset`: the store was flushed or replaced). Changes after the marker follow; what happened
 * before them is to be read from the store itself (`scan`).
 */
export interface ResyncMarker {
  readonly type: 'resync';
  readonly reason: 'trimmed' | 'reset';
  /** Resume here to go on after the marker. */
  readonly position: string;
}

/** What `watch` delivers. */
export type WatchEvent = Change | ResyncMarker;

/** What {@link watchFeeds} reads. */
export interface WatchSource {
  /** The feed streams: one, or one per partition in tree order. */
  readonly streams: readonly FeedStream[];
  /** Records of `keys` (tombstones included); absent keys left out. */
  getRecords(keys: readonly string[]): Promise<StoredRecord[]>;
}

const DEFAULT_PAGE = 100;
const DEFAULT_POLL_MS = 100;

/** @throws {StoreError} unless the store's change feed is on (`store.changeFeed`). */
export function requireChangeFeed(settings: { readonly changeFeed: boolean }): void {
  if (!settings.changeFeed) {
    throw new StoreError('the change feed is off (store.change_feed: false): nothing to watch');
  }
}

/** The current position of `source`'s feed (`now`, or `start`), as `watch` takes it. */
export async function feedPosition(source: WatchSource, at: 'now' | 'start'): Promise<string> {
  const positions = await Promise.all(source.streams.map((s) => s.position(at)));
  return positions.join(',');
}

/** The positions a `from` names, one per stream. */
async function startPositions(source: WatchSource, from: string | undefined): Promise<number[]> {
  if (from === undefined || from === 'now' || from === 'start') {
    return Promise.all(source.streams.map((s) => s.position(from ?? 'now')));
  }
  const parts = from.split(',');
  const positions = parts.map(parseStreamPosition);
  if (parts.length !== source.streams.length || positions.some((p) => p === undefined)) {
    const streams = source.streams.length;
    throw new StoreError(
      `watch: from ${JSON.stringify(from.slice(0, 80))} is not a position of this store's ` +
        `change feed (${streams} ordinal${streams === 1 ? '' : 's, comma-separated'}), nor 'now' or 'start'`,
    );
  }
  return positions as number[];
}

/** One stream being read: its position and the changes read and not yet delivered. */
interface Reader {
  readonly stream: FeedStream;
  buffer: readonly FeedChange[];
  /** How many of {@link buffer} are delivered. */
  taken: number;
  /** The last page was full: more may wait, so read again before delivering past it. */
  more: boolean;
  /** Where the reader's next page starts. */
  next: number;
}

/** Every change `source` applies, from `options.from` on, until `options.signal` aborts. */
export async function* watchFeeds(
  source: WatchSource,
  options: WatchOptions = {},
): AsyncGenerator<WatchEvent, void, undefined> {
  const { signal } = options;
  const prefix = options.prefix ?? '';
  const pageSize = options.pageSize ?? DEFAULT_PAGE;
  const pollMs = options.pollMs ?? DEFAULT_POLL_MS;
  if (!Number.isSafeInteger(pageSize) || pageSize < 1) {
    throw new StoreError(`watch: pageSize must be a positive integer, not ${pageSize}`);
  }
  const aborted = (): boolean => signal?.aborted === true;
  // A page is shared by the streams: with 256 partitions, one entry (≤ 32 changes) of each.
  const perStream = Math.max(1, Math.ceil(pageSize / source.streams.length));
  // Per stream, the last change delivered (or skipped): a change's position is all of them.
  const delivered = await startPositions(source, options.from);
  const readers: Reader[] = source.streams.map((stream, i) => ({
    stream,
    buffer: [],
    taken: 0,
    more: true,
    next: delivered[i]!,
  }));

  while (!aborted()) {
    // A page of every stream whose changes are all delivered.
    const refill = readers.filter((r) => r.taken === r.buffer.length);
    const pages = await Promise.all(refill.map((r) => r.stream.read(r.next, perStream)));
    const gaps: ResyncMarker['reason'][] = [];
    refill.forEach((reader, i) => {
      const page = pages[i]!;
      if (page.gap !== undefined) {
        gaps.push(page.gap);
        delivered[readers.indexOf(reader)] = page.resumed!;
      }
      reader.buffer = page.changes;
      reader.taken = 0;
      reader.next = page.position;
      reader.more = page.full;
    });
    if (gaps.length > 0) {
      const reason = gaps.includes('reset') ? 'reset' : 'trimmed';
      yield { type: 'resync', reason, position: delivered.join(',') };
    }
    if (readers.every((r) => r.taken === r.buffer.length)) {
      if (readers.some((r) => r.more)) continue;
      if (!(await idle(pollMs, signal))) return;
      continue;
    }
    // Merge by the time each store applied its changes (a stream's own are in order already)
    // until a stream with more to read runs out (then read it first): at most a page, whose
    // records are fetched in one go.
    const batch: { change: FeedChange; positions: readonly number[] }[] = [];
    while (batch.length < pageSize) {
      let next: Reader | undefined;
      for (const r of readers) {
        const head = r.buffer[r.taken];
        if (head !== undefined && (next === undefined || head.at < next.buffer[next.taken]!.at)) {
          next = r;
        }
      }
      if (next === undefined) break;
      const change = next.buffer[next.taken++]!;
      delivered[readers.indexOf(next)] = change.ordinal;
      if (wanted(change, prefix, options.purges === true)) {
        batch.push({ change, positions: delivered.slice() });
      }
      if (next.taken === next.buffer.length && next.more) break;
    }
    const records =
      options.records === false
        ? new Map<string, StoredRecord>()
        : await recordsOf(
            source,
            batch.map((b) => b.change),
          );
    for (const { change, positions } of batch) {
      yield toChange(change, records.get(change.key), positions);
      if (aborted()) return;
    }
  }
}

function wanted(change: FeedChange, prefix: string, purges: boolean): boolean {
  return change.key.startsWith(prefix) && (purges || change.source !== 'purge');
}

/** The current records of the entries' keys (purges left out), by key. */
async function recordsOf(
  source: WatchSource,
  changes: readonly FeedChange[],
): Promise<Map<string, StoredRecord>> {
  const keys = [...new Set(changes.filter((c) => c.source !== 'purge').map((c) => c.key))];
  const map = new Map<string, StoredRecord>();
  if (keys.length === 0) return map;
  for (const record of await source.getRecords(keys)) map.set(record.key, record);
  return map;
}

/**
 * The change of `entry`. Its position is joined when read: with 256 partitions it is 256 stream
 * positions, which a consumer that does not keep it should not pay for on every change.
 */
function toChange(
  entry: FeedChange,
  record: StoredRecord | undefined,
  positions: readonly number[],
): Change {
  const version = parseVersionTuple(entry.key, entry.tuple);
  if (version === undefined) {
    throw new StoreError(`the change feed's change ${entry.ordinal} holds no version tuple`);
  }
  const source = parseChangeSource(entry.source);
  // The record is this change's only while no later change replaced it.
  const current =
    record !== undefined && source.kind !== 'purge' && formatVersionTuple(record) === entry.tuple;
  const change = {
    type: 'change',
    key: entry.key,
    version,
    source,
    appliedAt: entry.at,
    ...(current ? { record } : {}),
  } as const;
  let joined: string | undefined;
  return Object.defineProperty(change, 'position', {
    enumerable: true,
    get: () => (joined ??= positions.join(',')),
  }) as Change;
}

/** Waits `ms` or until `signal` aborts; false when it aborted. */
function idle(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted === true) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve(signal?.aborted !== true);
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
