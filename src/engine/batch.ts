/**
 * Turning raw stream entries into a batch to apply: parse, skip our own events, quarantine the
 * corrupt, coalesce per key (SPEC §4). Pure.
 */
import { eventToRecord, parseCdcEntry, type ParseOptions } from '../codec/cdc.js';
import { CorruptEntryError, type CorruptReason } from '../errors.js';
import { compareVersions, type StoredRecord } from '../model/record.js';
import { deadLetterFields } from '../store/dead-letter.js';

/** One stream entry as XREAD / XRANGE return it. */
export interface RawEntry {
  readonly id: string;
  /** Flat `[name, value, …]`. */
  readonly fields: readonly Buffer[];
  /**
   * Set when a value over `max_item_bytes` was left out as it was read (peer-stream.ts): why.
   * Its `fields` then name it `<name>_bytes` with its size; the entry is quarantined `too_large`.
   */
  readonly tooLarge?: string;
}

/** Entries read in one go. */
export interface EntryRead {
  readonly entries: RawEntry[];
  /**
   * The read stopped keeping entries at `hot_path.max_batch_bytes`, short of its count: more
   * follow at once (read them after the last entry given).
   */
  readonly cut: boolean;
}

/** An entry that failed to parse, decompress or verify, or a record held back. */
export interface QuarantinedEntry {
  readonly id: string;
  /** What the dead-letter stream keeps of its fields: {@link deadLetterFields}. */
  readonly fields: readonly Buffer[];
  readonly reason: CorruptReason | 'clock_skew';
  readonly message: string;
}

/** A record dated more than `maxClockSkewMs` ahead of the local clock: held back, not applied. */
export interface HeldBackRecord extends QuarantinedEntry {
  readonly reason: 'clock_skew';
  readonly key: string;
  readonly updatedAt: number;
}

/** A decoded batch, ready to apply. */
export interface DecodedBatch {
  /** One record per key: the LWW maximum of the batch's events for it. */
  readonly records: StoredRecord[];
  readonly quarantined: QuarantinedEntry[];
  /** Records dated too far ahead of the local clock: quarantined too, and repaired once in range. */
  readonly heldBack?: readonly HeldBackRecord[];
  /** Entries read (all kinds). */
  readonly read: number;
  /** Events skipped because they originated here. */
  readonly ownOrigin: number;
  /** Events dropped by per-key coalescing (a later event for the same key won). */
  readonly coalesced: number;
  /** Id of the last entry: the cursor once this batch is applied. */
  readonly lastId: string;
}

/** The clock bound of {@link decodeBatch}: records dated after `now + maxClockSkewMs` wait. */
export interface ClockBound {
  readonly now: number;
  readonly maxClockSkewMs: number;
}

/**
 * Decodes entries read from `peerId`'s stream, parsed with `options`; never throws for a bad entry.
 * With `clock`, a record dated more than `clock.maxClockSkewMs` after `clock.now` is held back
 * (before coalescing, so it never hides an honest event for its key).
 */
export function decodeBatch(
  entries: readonly RawEntry[],
  peerId: string,
  localNodeId: string,
  options: Required<ParseOptions>,
  clock?: ClockBound,
): DecodedBatch {
  const byKey = new Map<string, StoredRecord>();
  const quarantined: QuarantinedEntry[] = [];
  const heldBack: HeldBackRecord[] = [];
  const latest = clock === undefined ? Infinity : clock.now + clock.maxClockSkewMs;
  let ownOrigin = 0;
  let coalesced = 0;
  for (const entry of entries) {
    if (entry.tooLarge !== undefined) {
      quarantined.push({
        id: entry.id,
        fields: deadLetterFields(entry.fields),
        reason: 'too_large',
        message: entry.tooLarge,
      });
      continue;
    }
    let record: StoredRecord;
    try {
      record = eventToRecord(parseCdcEntry(entry.fields, options), entry.id, peerId);
    } catch (err) {
      if (!(err instanceof CorruptEntryError)) throw err;
      quarantined.push({
        id: entry.id,
        fields: deadLetterFields(entry.fields),
        reason: err.reason,
        message: err.message,
      });
      continue;
    }
    if (record.origin === localNodeId) {
      ownOrigin += 1;
      continue;
    }
    if (record.updatedAt > latest) {
      heldBack.push({
        id: entry.id,
        fields: deadLetterFields(entry.fields),
        reason: 'clock_skew',
        message: `dated ${record.updatedAt - clock!.now} ms ahead of the local clock`,
        key: record.key,
        updatedAt: record.updatedAt,
      });
      continue;
    }
    const current = byKey.get(record.key);
    if (current !== undefined) {
      coalesced += 1;
      if (compareVersions(record, current) <= 0) continue;
    }
    byKey.set(record.key, record);
  }
  const last = entries[entries.length - 1];
  return {
    records: [...byKey.values()],
    quarantined,
    heldBack,
    read: entries.length,
    ownOrigin,
    coalesced,
    lastId: last === undefined ? '' : last.id,
  };
}
