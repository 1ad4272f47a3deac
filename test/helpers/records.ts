/**
 * Comparing records by what they hold: a record's `frame` (its content as a zstd frame, when it
 * came or is stored compressed) is a representation, so it is checked against the content and
 * then left out.
 */
import assert from 'node:assert/strict';
import { decompressBounded } from '../../src/codec/zstd.js';
import type { StoredRecord } from '../../src/model/record.js';

/** The record without its frame, after asserting that the frame decompresses to the content. */
export function withoutFrame<T extends StoredRecord | undefined>(record: T): T {
  if (record === undefined || record.frame === undefined) return record;
  const { frame, ...rest } = record;
  assert.ok(
    decompressBounded(frame, record.content.length).equals(record.content),
    `the frame of ${JSON.stringify(record.key)} does not decompress to its content`,
  );
  return rest as T;
}

/** {@link withoutFrame} of each record. */
export function withoutFrames<T extends StoredRecord | undefined>(records: readonly T[]): T[] {
  return records.map(withoutFrame);
}
