/**
 * Gap detection on a peer's CDC stream (SPEC §4): trimmed past our cursor, or deleted and
 * re-created / flushed. Pure: decides from `XINFO STREAM` figures and what we remember.
 */
import {
  compareStreamIds,
  nextStreamId,
  previousStreamId,
  STREAM_START,
} from '../codec/stream-id.js';

/** The `XINFO STREAM` figures gap detection uses (Redis ≥ 7 gives all of them). */
export interface StreamInfo {
  readonly length: number;
  readonly lastGeneratedId: string;
  /** Redis ≥ 7; undefined on older servers. */
  readonly maxDeletedEntryId?: string;
  /** Redis ≥ 7; undefined on older servers. */
  readonly entriesAdded?: number;
  readonly firstEntryId?: string;
  readonly lastEntryId?: string;
}

/** What we know about the stream from earlier reads. */
export interface StreamMemory {
  /** The last `entries-added` seen; a smaller value later means the stream was re-created. */
  readonly entriesAdded: number | null;
  /** A `max-deleted-entry-id` already reported as a gap, so it is reported once. */
  readonly acknowledgedDeletedId?: string;
}

export type GapKind = 'trimmed' | 'recreated';

export type GapVerdict =
  | { readonly gap: false }
  | {
      readonly gap: true;
      readonly kind: GapKind;
      /** Where to read from now. */
      readonly resetTo: string;
      readonly detail: string;
    };

const NO_GAP: GapVerdict = { gap: false };

/**
 * Decides whether entries after `cursor` may have been lost. `info` undefined means the stream
 * does not exist.
 */
export function detectGap(
  cursor: string,
  info: StreamInfo | undefined,
  memory: StreamMemory,
): GapVerdict {
  const fresh = compareStreamIds(cursor, STREAM_START) === 0;
  if (info === undefined) {
    if (fresh) return NO_GAP;
    return {
      gap: true,
      kind: 'recreated',
      resetTo: STREAM_START,
      detail: `stream is gone (cursor ${cursor})`,
    };
  }
  if (compareStreamIds(cursor, info.lastGeneratedId) > 0) {
    return {
      gap: true,
      kind: 'recreated',
      resetTo: STREAM_START,
      detail: `cursor ${cursor} is past the stream's last id ${info.lastGeneratedId}`,
    };
  }
  if (
    info.entriesAdded !== undefined &&
    memory.entriesAdded !== null &&
    info.entriesAdded < memory.entriesAdded
  ) {
    return {
      gap: true,
      kind: 'recreated',
      resetTo: STREAM_START,
      detail: `entries-added fell from ${memory.entriesAdded} to ${info.entriesAdded}`,
    };
  }
  // A stream that never lost an entry still holds every entry it ever had, ours included: if its
  // first entry comes after our cursor (or it has none), our cursor was never in this stream.
  if (
    !fresh &&
    info.entriesAdded !== undefined &&
    info.entriesAdded === info.length &&
    (info.firstEntryId === undefined || compareStreamIds(info.firstEntryId, cursor) > 0)
  ) {
    return {
      gap: true,
      kind: 'recreated',
      resetTo: STREAM_START,
      detail: `cursor ${cursor} is not in the stream, which never lost an entry (first ${info.firstEntryId ?? 'none'})`,
    };
  }
  // Trimming removes the oldest entries. Entries were lost to us when the oldest surviving entry is
  // not the one right after our cursor, and some entries were deleted at all.
  const deletedSome = info.entriesAdded === undefined ? !fresh : info.entriesAdded > info.length;
  if (deletedSome && compareStreamIds(cursor, info.lastGeneratedId) < 0) {
    if (info.firstEntryId === undefined) {
      return {
        gap: true,
        kind: 'trimmed',
        resetTo: info.lastGeneratedId,
        detail: `every entry after cursor ${cursor} was trimmed (last id ${info.lastGeneratedId})`,
      };
    }
    const after = nextStreamId(cursor);
    if (after !== undefined && compareStreamIds(after, info.firstEntryId) < 0) {
      return {
        gap: true,
        kind: 'trimmed',
        resetTo: previousStreamId(info.firstEntryId) ?? STREAM_START,
        detail: `entries between cursor ${cursor} and the first entry ${info.firstEntryId} were trimmed`,
      };
    }
  }
  // XDEL of entries after the cursor (Redis ≥ 7 records the highest deleted id).
  const deleted = info.maxDeletedEntryId;
  const acknowledged = memory.acknowledgedDeletedId;
  if (
    deleted !== undefined &&
    compareStreamIds(deleted, cursor) > 0 &&
    (acknowledged === undefined || compareStreamIds(deleted, acknowledged) > 0)
  ) {
    return {
      gap: true,
      kind: 'trimmed',
      resetTo: cursor,
      detail: `entries up to ${deleted} were deleted past cursor ${cursor}`,
    };
  }
  return NO_GAP;
}

function field(reply: unknown, name: string): unknown {
  if (reply instanceof Map) return reply.get(name) ?? reply.get(Buffer.from(name));
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) {
      if (String(reply[i]) === name) return reply[i + 1];
    }
    return undefined;
  }
  if (typeof reply === 'object' && reply !== null) return (reply as Record<string, unknown>)[name];
  return undefined;
}

function entryId(entry: unknown): string | undefined {
  if (!Array.isArray(entry) || entry.length === 0) return undefined;
  const id: unknown = entry[0];
  if (typeof id === 'string') return id;
  return Buffer.isBuffer(id) ? id.toString('latin1') : undefined;
}

/** Reads the figures out of an `XINFO STREAM` reply (RESP2 array or RESP3 map). */
export function parseStreamInfo(reply: unknown): StreamInfo {
  const num = (name: string): number | undefined => {
    const v = field(reply, name);
    return v === undefined || v === null ? undefined : Number(v);
  };
  const str = (name: string): string | undefined => {
    const v = field(reply, name);
    if (typeof v === 'string') return v;
    return Buffer.isBuffer(v) ? v.toString('latin1') : undefined;
  };
  const firstEntryId = entryId(field(reply, 'first-entry'));
  const lastEntryId = entryId(field(reply, 'last-entry'));
  const maxDeletedEntryId = str('max-deleted-entry-id');
  const entriesAdded = num('entries-added');
  return {
    length: num('length') ?? 0,
    lastGeneratedId: str('last-generated-id') ?? STREAM_START,
    ...(maxDeletedEntryId !== undefined ? { maxDeletedEntryId } : {}),
    ...(entriesAdded !== undefined ? { entriesAdded } : {}),
    ...(firstEntryId !== undefined ? { firstEntryId } : {}),
    ...(lastEntryId !== undefined ? { lastEntryId } : {}),
  };
}

/**
 * Estimated entries after `cursor`: exact when caught up, else interpolated by time between the
 * first and last entries (the seed's "estimated events behind").
 */
export function estimateLagEvents(cursor: string, info: StreamInfo): number {
  const last = info.lastEntryId ?? info.lastGeneratedId;
  if (info.length === 0 || compareStreamIds(cursor, last) >= 0) return 0;
  const first = info.firstEntryId;
  if (first === undefined || compareStreamIds(cursor, first) < 0) return info.length;
  const firstMs = Number(first.split('-')[0]);
  const lastMs = Number(last.split('-')[0]);
  const cursorMs = Number(cursor.split('-')[0]);
  if (lastMs <= firstMs) return Math.max(1, Math.round(info.length / 2));
  const fraction = (lastMs - cursorMs) / (lastMs - firstMs);
  return Math.max(1, Math.min(info.length, Math.round(info.length * fraction)));
}
