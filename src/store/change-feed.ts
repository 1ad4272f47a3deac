/**
 * The change feed (docs/PROTOCOL.md §10): every change a store applied (local writes, replicated
 * records, purged tombstones) is appended, in the same script call, to the capped stream
 * `changes`, so the stream holds them exactly in the order the store applied them. This module
 * reads one such stream in pages, at the reader's pace.
 *
 * Every change has an ordinal: 1 for the first ever appended, then 2, 3, … with no hole (the
 * counter `changes:seq` holds the last). An entry holds up to 32 changes and its id is `<n>-0`,
 * n the ordinal of its last. A position is an ordinal, the last change read: reading on from it
 * takes the entries with ids above it, and when the first change found is not the next ordinal,
 * trimming took the ones between (a resync marker), never a silent gap.
 */
import { StoreError } from '../errors.js';
import { AS_STRINGS, asString, type CommandSender } from './redis-io.js';
import type { ApplySource } from '../engine/local-store.js';

/** Where a change came from, as its feed entry names it. */
export type ChangeSource =
  /** A local write (`put`, `delete`). */
  | { readonly kind: 'local' }
  /** A record replicated from `peer` by the hot path (its CDC stream). */
  | { readonly kind: 'hot'; readonly peer: string }
  /** A record replicated from `peer` by a Merkle repair (the cold path). */
  | { readonly kind: 'repair'; readonly peer: string }
  /**
   * A tombstone this node wrote over a stale peer's record of a key purged here (a repair's
   * superseding delete, docs/PROTOCOL.md §6); `peer` is the stale peer.
   */
  | { readonly kind: 'supersede'; readonly peer?: string }
  /** A tombstone purged (docs/PROTOCOL.md §6): the key has no record here any more. */
  | { readonly kind: 'purge' }
  /** Records applied by a caller of `apply` that named no source. */
  | { readonly kind: 'apply' };

/** The source argument of the apply script for `source`. */
export function applySourceName(source: ApplySource | undefined): string {
  return source === undefined ? 'apply' : `${source.path}:${source.peerId}`;
}

/** A feed entry's source field, parsed (an unknown one reads as `apply`). */
export function parseChangeSource(field: string): ChangeSource {
  const colon = field.indexOf(':');
  const kind = colon < 0 ? field : field.slice(0, colon);
  const peer = colon < 0 ? undefined : field.slice(colon + 1);
  switch (kind) {
    case 'local':
      return { kind: 'local' };
    case 'purge':
      return { kind: 'purge' };
    case 'hot':
    case 'repair':
      if (peer !== undefined) return { kind, peer };
      break;
    case 'supersede':
      return peer === undefined ? { kind } : { kind, peer };
  }
  return { kind: 'apply' };
}

/** One change read from a feed stream. */
export interface FeedChange {
  /** Its ordinal in the stream. */
  readonly ordinal: number;
  readonly key: string;
  /** The version tuple the change wrote (docs/PROTOCOL.md §4); for a purge, the one removed. */
  readonly tuple: string;
  readonly source: string;
  /** The writing script's clock (ms): when this store applied it. */
  readonly at: number;
}

/** One page of a feed stream. */
export interface FeedPage {
  /** The changes after the position (after {@link resumed}, after a gap), oldest first. */
  readonly changes: readonly FeedChange[];
  /**
   * Set when changes after the position are gone: `trimmed` (the reader fell more than
   * `store.change_feed_maxlen` changes behind), `reset` (the stream holds fewer changes than the
   * position counts: the store was flushed or replaced).
   */
  readonly gap?: 'trimmed' | 'reset';
  /** After a gap: the position the page's changes follow (the ordinal before the oldest kept). */
  readonly resumed?: number;
  /** Where the reader stands after the page. */
  readonly position: number;
  /** True when the page took as many entries as asked: more may be waiting. */
  readonly full: boolean;
}

/** A position as text: its ordinal in decimal. */
export function parseStreamPosition(text: string): number | undefined {
  if (!/^\d{1,16}$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Reads one feed stream (one store, or one partition of a partitioned store). */
export class FeedStream {
  constructor(
    private readonly client: CommandSender,
    /** The stream's key (`<prefix>changes`). */
    readonly key: string,
    /** Its counter's key (`<prefix>changes:seq`). */
    readonly seqKey: string,
  ) {}

  /** The ordinal of the last change appended (`now`), or the one before the oldest kept (`start`). */
  async position(at: 'now' | 'start'): Promise<number> {
    if (at === 'start') {
      const first = (await this.#range('-', 1))[0];
      if (first !== undefined) return first.first - 1;
    }
    return this.#seq();
  }

  /**
   * Up to `count` entries after `after`, oldest first, and the counter in the same pipeline: an
   * empty page with a counter below `after` is a stream that restarted (`reset`).
   */
  async read(after: number, count: number): Promise<FeedPage> {
    const [entries, seq] = await Promise.all([this.#range(`(${after}-0`, count), this.#seq()]);
    const full = entries.length >= count;
    const head = entries[0];
    if (head === undefined) {
      if (seq >= after) return { changes: [], position: after, full };
      const resumed = await this.position('start');
      return { changes: [], gap: 'reset', resumed, position: resumed, full: true };
    }
    const gap = head.first > after + 1 ? 'trimmed' : undefined;
    const from = gap === undefined ? after : head.first - 1;
    const changes: FeedChange[] = [];
    for (const entry of entries) {
      entry.changes.forEach((change, j) => {
        const ordinal = entry.first + j;
        if (ordinal > from) changes.push({ ...change, ordinal });
      });
    }
    const position = entries[entries.length - 1]!.last;
    return gap === undefined
      ? { changes, position, full }
      : { changes, gap, resumed: from, position, full };
  }

  async #seq(): Promise<number> {
    const reply = asString(await this.#send(['GET', this.seqKey]));
    const n = Number(reply ?? '0');
    return Number.isSafeInteger(n) ? n : 0;
  }

  async #range(start: string, count: number): Promise<FeedEntry[]> {
    const reply = (await this.#send(['XRANGE', this.key, start, '+', 'COUNT', String(count)])) as
      unknown[] | null;
    return (reply ?? []).map((item) => {
      const entry = parseEntry(item);
      if (entry === undefined)
        throw new StoreError(`${this.key}: a change feed entry is malformed`);
      return entry;
    });
  }

  async #send(args: readonly string[]): Promise<unknown> {
    try {
      return await this.client.sendCommand(args, AS_STRINGS);
    } catch (cause) {
      throw new StoreError(`cannot read the change feed ${this.key}`, { cause });
    }
  }
}

/** One stream entry: its changes, the first's and the last's ordinals. */
interface FeedEntry {
  readonly first: number;
  readonly last: number;
  readonly changes: readonly Omit<FeedChange, 'ordinal'>[];
}

/** One `XRANGE` item, `[id, [t, ms, s, source, key, tuple, …]]`; undefined when it is not one. */
function parseEntry(item: unknown): FeedEntry | undefined {
  if (!Array.isArray(item) || !Array.isArray(item[1])) return undefined;
  const last = Number(/^(\d+)-0$/.exec(asString(item[0]) ?? '')?.[1]);
  const fields = item[1] as unknown[];
  const at = Number(asString(fields[1]));
  const source = asString(fields[3]);
  const count = (fields.length - 4) / 2;
  if (
    !Number.isSafeInteger(last) ||
    asString(fields[0]) !== 't' ||
    asString(fields[2]) !== 's' ||
    source === undefined ||
    !Number.isSafeInteger(count) ||
    count < 1
  ) {
    return undefined;
  }
  const changes: Omit<FeedChange, 'ordinal'>[] = [];
  for (let i = 4; i < fields.length; i += 2) {
    const key = asString(fields[i]);
    const tuple = asString(fields[i + 1]);
    if (key === undefined || tuple === undefined) return undefined;
    changes.push({ key, tuple, source, at });
  }
  return { first: last - count + 1, last, changes };
}
