/**
 * How a record is laid out in its Redis hash (docs/PROTOCOL.md §Records), both ways.
 */
import type { ContentType, StoredRecord } from '../model/record.js';
import { asString } from './redis-io.js';

/** The record hash's fields, in the order {@link parseRecordFields} expects them from HMGET. */
export const RECORD_FIELDS = ['c', 'h', 't', 'ts', 'v', 'o', 'd', 'tp'] as const;

/**
 * A record from the HMGET of {@link RECORD_FIELDS}; undefined when the record does not exist
 * (or its clock fields are unreadable, which only a foreign writer could cause).
 */
export function parseRecordFields(
  key: string,
  values: readonly unknown[],
): StoredRecord | undefined {
  const [c, h, t, ts, v, o, d, tp] = values;
  const updatedAt = Number(asString(ts));
  const version = Number(asString(v));
  if (!Number.isSafeInteger(updatedAt) || !Number.isSafeInteger(version)) return undefined;
  const deleted = asString(d) === '1';
  const contentType: ContentType = asString(t) === 'json' ? 'json' : 'binary';
  const traceParent = asString(tp);
  const content = Buffer.isBuffer(c) ? c : Buffer.from(asString(c) ?? '', 'utf8');
  const record: StoredRecord = {
    key,
    content: deleted ? Buffer.alloc(0) : content,
    contentHash: deleted ? '' : (asString(h) ?? ''),
    contentType,
    version,
    updatedAt,
    origin: asString(o) ?? '',
    deleted,
    ...(traceParent !== undefined && traceParent !== '' ? { traceParent } : {}),
  };
  return record;
}
