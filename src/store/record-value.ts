/**
 * How a record is laid out in Redis (docs/PROTOCOL.md §2): one string, a JSON header line and the
 * content bytes, or the content's zstd frame when it came compressed. Both ways; the Lua write
 * script builds the same header.
 */
import { isBoundedInt, MAX_UPDATED_AT, MAX_VERSION } from '../codec/bounds.js';
import { sha256Hex } from '../codec/cdc.js';
import { decompressBounded, DEFAULT_MAX_ITEM_BYTES } from '../codec/zstd.js';
import { CorruptEntryError } from '../errors.js';
import type { ContentType, StoredRecord } from '../model/record.js';

const NEWLINE = 0x0a;

/** The bytes stored after a live record's header: its zstd frame when it has one, else its content. */
export function storedBody(record: StoredRecord): Buffer {
  return record.frame ?? record.content;
}

/**
 * The header line of a record, without its newline:
 * `{"ts":…,"v":…,"d":0|1,"h":"…","o":…,"t":"…"}`, plus `,"e":…` when a live record expires,
 * `,"z":1` when the body is a zstd frame and `,"tp":…` when there is a traceparent, in that order,
 * before the brace. No spaces.
 */
export function recordHeader(record: StoredRecord): string {
  const tp = record.traceParent === undefined ? '' : `,"tp":${JSON.stringify(record.traceParent)}`;
  if (record.deleted) {
    return `{"ts":${record.updatedAt},"v":${record.version},"d":1,"h":"","o":${JSON.stringify(record.origin)},"t":"binary"${tp}}`;
  }
  const e = record.expiresAt === undefined ? '' : `,"e":${record.expiresAt}`;
  const z = record.frame === undefined ? '' : ',"z":1';
  return `{"ts":${record.updatedAt},"v":${record.version},"d":0,"h":"${record.contentHash}","o":${JSON.stringify(record.origin)},"t":"${record.contentType}"${e}${z}${tp}}`;
}

/**
 * The value of each record's key (header, newline, body; no body for a tombstone), as views of
 * one buffer: a batch's values then cost one allocation, not one (or a pool share) per record.
 */
export function encodeRecordValues(records: readonly StoredRecord[]): Buffer[] {
  const { arena, ends } = encodeRecordArena(records);
  const values: Buffer[] = new Array<Buffer>(records.length);
  let start = 0;
  for (let i = 0; i < records.length; i++) {
    const end = ends.readUInt32BE(4 * i);
    values[i] = arena.subarray(start, end);
    start = end;
  }
  return values;
}

/**
 * The records' values (as {@link encodeRecordValues}) back to back in one buffer, then the
 * `trailing` strings (UTF-8) back to back, and where each ends in it: a 32-bit big-endian offset
 * per record, then one per trailing string. Sent as two arguments instead of one per record and
 * string, a batch costs the client one socket write instead of two per record (and no string of
 * hundreds of pieces for the socket to flatten).
 */
export function encodeRecordArena(
  records: readonly StoredRecord[],
  trailing: readonly string[] = [],
): {
  arena: Buffer;
  ends: Buffer;
} {
  const headers: string[] = new Array<string>(records.length);
  let bound = 0;
  for (let i = 0; i < records.length; i++) {
    const record = records[i]!;
    const header = `${recordHeader(record)}\n`;
    headers[i] = header;
    // A UTF-16 code unit takes at most 3 bytes of UTF-8.
    bound += header.length * 3 + (record.deleted ? 0 : storedBody(record).length);
  }
  for (const text of trailing) bound += text.length * 3;
  const arena = Buffer.allocUnsafeSlow(bound);
  const ends = Buffer.allocUnsafe(4 * (records.length + trailing.length));
  let at = 0;
  for (let i = 0; i < records.length; i++) {
    const record = records[i]!;
    at += arena.write(headers[i]!, at, 'utf8');
    if (!record.deleted) at += storedBody(record).copy(arena, at);
    ends.writeUInt32BE(at, 4 * i);
  }
  for (let i = 0; i < trailing.length; i++) {
    at += arena.write(trailing[i]!, at, 'utf8');
    ends.writeUInt32BE(at, 4 * (records.length + i));
  }
  return { arena: arena.subarray(0, at), ends };
}

/**
 * The record stored as `value` (a GET reply) under `key`; undefined when there is none, or when
 * the value is not a record (which only a foreign writer could cause: a header that is not one,
 * or a frame that does not decompress within `maxItemBytes`).
 */
export function parseRecordValue(
  key: string,
  value: unknown,
  maxItemBytes: number = DEFAULT_MAX_ITEM_BYTES,
): StoredRecord | undefined {
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
  const { ts, v, d, h, o, t, e, z, tp } = header as Record<string, unknown>;
  // Clocks beyond the bounds leave no room for a later write (docs/PROTOCOL.md §1): no record.
  if (!isBoundedInt(ts, MAX_UPDATED_AT) || !isBoundedInt(v, MAX_VERSION) || typeof o !== 'string')
    return undefined;
  const deleted = d === 1;
  if (e !== undefined && (deleted || !isBoundedInt(e, MAX_UPDATED_AT))) return undefined;
  const contentType: ContentType = t === 'json' ? 'json' : 'binary';
  const body = deleted ? Buffer.alloc(0) : value.subarray(end + 1);
  let content = body;
  // The flag says which form the body is, never its first bytes: a raw content may begin with the
  // zstd magic (one a Rust peer sent raw is stored so).
  const compressed = !deleted && z === 1;
  if (compressed) {
    try {
      content = decompressBounded(body, maxItemBytes);
    } catch (error) {
      if (error instanceof CorruptEntryError) return undefined;
      throw error;
    }
  }
  return {
    key,
    content,
    contentHash: deleted || typeof h !== 'string' ? '' : h,
    contentType,
    version: v,
    updatedAt: ts,
    origin: o,
    deleted,
    ...(typeof tp === 'string' && tp !== '' ? { traceParent: tp } : {}),
    ...(compressed ? { frame: body } : {}),
    ...(e !== undefined ? { expiresAt: e } : {}),
  };
}

/**
 * A value read from a peer, judged: its record when it is one whose content hashes to the hash
 * its header names (a frame decompressed bounded by `maxItemBytes`, a raw body no larger), else
 * why not. Absent values
 * are `bad_record` too: the caller asked for a key it had measured.
 */
export function verifyRecordValue(
  key: string,
  value: unknown,
  maxItemBytes: number,
): { record: StoredRecord } | { reason: 'hash_mismatch' | 'bad_record' | 'too_large' } {
  const record = parseRecordValue(key, value, maxItemBytes);
  if (record === undefined) return { reason: 'bad_record' };
  if (record.deleted) return { record };
  // A raw body is bounded like a decompressed one (the hot path refuses it the same way).
  if (record.content.length > maxItemBytes) return { reason: 'too_large' };
  if (!/^[0-9a-f]{64}$/.test(record.contentHash)) return { reason: 'bad_record' };
  if (sha256Hex(record.content) !== record.contentHash) return { reason: 'hash_mismatch' };
  return { record };
}
