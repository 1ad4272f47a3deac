/**
 * How a record is laid out in Redis (docs/PROTOCOL.md §2): one string, a JSON header line
 * and the content bytes. Both ways; the Lua write script builds the same header.
 */
import type { ContentType, StoredRecord } from '../model/record.js';

const NEWLINE = 0x0a;

/**
 * The header line of a record, without its newline: `{"ts":…,"v":…,"d":0|1,"h":"…","o":…,"t":"…"}`,
 * plus `,"tp":…` before the brace when there is a traceparent. Keys in this order, no spaces.
 */
export function recordHeader(record: StoredRecord): string {
  const tp = record.traceParent === undefined ? '' : `,"tp":${JSON.stringify(record.traceParent)}`;
  return record.deleted
    ? `{"ts":${record.updatedAt},"v":${record.version},"d":1,"h":"","o":${JSON.stringify(record.origin)},"t":"binary"${tp}}`
    : `{"ts":${record.updatedAt},"v":${record.version},"d":0,"h":"${record.contentHash}","o":${JSON.stringify(record.origin)},"t":"${record.contentType}"${tp}}`;
}

/** The value of a record's key: header, newline, content (none for a tombstone). */
export function encodeRecordValue(record: StoredRecord): Buffer {
  const header = `${recordHeader(record)}\n`;
  if (record.deleted || record.content.length === 0) return Buffer.from(header, 'utf8');
  const length = Buffer.byteLength(header, 'utf8');
  const value = Buffer.allocUnsafe(length + record.content.length);
  value.write(header, 0, 'utf8');
  record.content.copy(value, length);
  return value;
}

function isSafeNonNegative(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * The record stored as `value` (a GET reply) under `key`; undefined when there is none, or when
 * the value is not a record (which only a foreign writer could cause).
 */
export function parseRecordValue(key: string, value: unknown): StoredRecord | undefined {
  if (!Buffer.isBuffer(value)) return undefined;
  const end = value.indexOf(NEWLINE);
  if (end < 0) return undefined;
  let header: unknown;
  try {
    header = JSON.parse(value.toString('utf8', 0, end));
  } catch {
    return undefined;
  }
  if (typeof header !== 'object' || header === null) return undefined;
  const { ts, v, d, h, o, t, tp } = header as Record<string, unknown>;
  if (!isSafeNonNegative(ts) || !isSafeNonNegative(v) || typeof o !== 'string') return undefined;
  const deleted = d === 1;
  const contentType: ContentType = t === 'json' ? 'json' : 'binary';
  return {
    key,
    content: deleted ? Buffer.alloc(0) : value.subarray(end + 1),
    contentHash: deleted || typeof h !== 'string' ? '' : h,
    contentType,
    version: v,
    updatedAt: ts,
    origin: o,
    deleted,
    ...(typeof tp === 'string' && tp !== '' ? { traceParent: tp } : {}),
  };
}
