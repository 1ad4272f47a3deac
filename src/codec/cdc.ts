/**
 * CDC stream entries, byte-compatible with the Rust sync-engine (SPEC §3): parse a raw field list
 * into a typed event, turn an event into a record, and encode an event as XADD fields.
 * Pure: no I/O. Every rejection is a {@link CorruptEntryError} naming the problem.
 */
import { hash as digest } from 'node:crypto';
import { CorruptEntryError } from '../errors.js';
import type { ContentType, StoredRecord } from '../model/record.js';
import { TOMBSTONE_HASH } from '../model/record.js';
import { isBoundedInt, MAX_UPDATED_AT, MAX_VERSION } from './bounds.js';
import { streamIdMs } from './stream-id.js';
import {
  DEFAULT_MAX_ITEM_BYTES,
  decompressBounded,
  encodeData,
  hasZstdMagic,
  withContent,
} from './zstd.js';

/** The clock and type a CDC entry's `meta` JSON carries; absent fields stay undefined. */
export interface CdcMeta {
  readonly contentType?: ContentType;
  readonly version?: number;
  readonly updatedAt?: number;
  readonly traceParent?: string;
  /** Our own addition: the node that made the write (a Rust peer never sets it). */
  readonly origin?: string;
  /**
   * Our own addition: when a PUT's record expires (ms since the epoch). A Rust peer never sets it:
   * its records do not expire. Ignored on a DEL (a tombstone has no expiry).
   */
  readonly expiresAt?: number;
}

/** A parsed PUT entry. */
export interface CdcPut {
  readonly op: 'PUT';
  readonly key: string;
  /** The sha256 hex the entry carried, verified; undefined when the entry had no hash. */
  readonly hash: string | undefined;
  /** sha256 hex of `content` (verified `hash`, or computed). */
  readonly contentHash: string;
  /** Decompressed content (with {@link ParseOptions.lazyContent}: decompressed on first read). */
  readonly content: Buffer;
  /**
   * Whether `data` was a zstd frame (false for content that begins with the magic but came raw,
   * as the Rust sync-engine writes it: docs/PROTOCOL.md §3).
   */
  readonly compressed: boolean;
  /** The `data` field as it came: the zstd frame when `compressed`, else the content itself. */
  readonly data: Buffer;
  readonly meta: CdcMeta | undefined;
}

/** A parsed DEL entry. */
export interface CdcDel {
  readonly op: 'DEL';
  readonly key: string;
  readonly meta: CdcMeta | undefined;
}

export type CdcEvent = CdcPut | CdcDel;

/** Options for {@link parseCdcEntry}. */
export interface ParseOptions {
  /** Bound on the (decompressed) content size. @default 64 MiB */
  readonly maxItemBytes?: number;
  /**
   * For a consumer that keeps a frame as it is (SyncStore stores it): a zstd frame is only hashed
   * (decompressed into a buffer reused for every entry), and the event's and its record's `content`
   * are accessors that decompress it on first read. Such objects are not plain: spreading one
   * leaves the content out. @default false
   */
  readonly lazyContent?: boolean;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
/** Longest key a record may have, in bytes (the hot path refuses a longer one as `bad_key`). */
export const MAX_KEY_BYTES = 64 * 1024;
const MAX_META_BYTES = 64 * 1024;

/** sha256 hex of `data` (one-shot: no Hash object per call). */
export function sha256Hex(data: Uint8Array | string): string {
  return digest('sha256', data, 'hex');
}

function decodeUtf8(bytes: Uint8Array, what: 'key' | 'meta'): string {
  try {
    return utf8.decode(bytes);
  } catch (cause) {
    throw new CorruptEntryError(
      what === 'key' ? 'bad_key' : 'bad_meta',
      `${what} is not valid UTF-8`,
      {
        cause,
      },
    );
  }
}

/** True when the 4-byte `name` is the bytes `a b c d` (no Buffer.equals call: it is per field). */
function is4(name: Buffer, a: number, b: number, c: number, d: number): boolean {
  return name[0] === a && name[1] === b && name[2] === c && name[3] === d;
}

function opOf(raw: Buffer): 'PUT' | 'DEL' {
  // The spellings our writers and the Rust sync-engine use, compared as bytes (no string per entry).
  if (raw.length === 3) {
    if (raw[0] === 0x50 && raw[1] === 0x55 && raw[2] === 0x54) return 'PUT';
    if (raw[0] === 0x44 && raw[1] === 0x45 && raw[2] === 0x4c) return 'DEL';
  }
  switch (raw.toString('latin1')) {
    case 'PUT':
    case 'put':
      return 'PUT';
    case 'DEL':
    case 'DELETE':
    case 'delete':
    case 'del':
      return 'DEL';
    default:
      throw new CorruptEntryError(
        'unknown_op',
        `unknown op ${JSON.stringify(raw.subarray(0, 32).toString('latin1'))}`,
      );
  }
}

function optionalBoundedInt(value: unknown, field: string, max: number): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isBoundedInt(value, max)) {
    // Beyond the bound a local write on top of the record would leave the safe integers.
    throw new CorruptEntryError('bad_meta', `meta.${field} must be an integer in [0, ${max}]`);
  }
  return value;
}

/** With the `u` flag a surrogate pair is one code point, so this matches lone surrogates only. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** True when `text` holds a lone surrogate (it has no utf-8 form, so no store can keep it). */
export function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE.test(text);
}

function optionalString(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string')
    throw new CorruptEntryError('bad_meta', `meta.${field} must be a string`);
  // JSON can spell one ("\ud800"); utf-8 cannot.
  if (hasLoneSurrogate(value))
    throw new CorruptEntryError('bad_meta', `meta.${field} holds a lone surrogate`);
  return value;
}

/**
 * A meta exactly as our writers and the Rust sync-engine spell it: these keys in this order, no
 * spaces, strings without escapes or control characters, integers without leading zeros. One regex
 * reads it instead of JSON.parse and the checks after it (a third of a replicated event's parse
 * time); anything else takes the general path. Both give the same result (a property test holds
 * them to it).
 */
const CANONICAL_META =
  // eslint-disable-next-line no-control-regex -- JSON refuses raw control characters in strings, so must this
  /^\{(?:"content_type":"(json|binary)",)?"version":(0|[1-9][0-9]{0,15}),"updated_at":(0|[1-9][0-9]{0,15})(?:,"trace_parent":"([^"\\\u0000-\u001f]*)")?(?:,"origin":"([^"\\\u0000-\u001f]*)")?(?:,"expires_at":(0|[1-9][0-9]{0,15}))?\}$/;

/** Parses the `meta` JSON; unknown fields are ignored. */
export function parseMeta(raw: Buffer): CdcMeta {
  if (raw.length > MAX_META_BYTES) throw new CorruptEntryError('bad_meta', 'meta is too large');
  const text = decodeUtf8(raw, 'meta');
  const m = CANONICAL_META.exec(text);
  if (m !== null) {
    const version = Number(m[2]);
    const updatedAt = Number(m[3]);
    const expiresAt = m[6] === undefined ? undefined : Number(m[6]);
    if (
      version <= MAX_VERSION &&
      updatedAt <= MAX_UPDATED_AT &&
      (expiresAt === undefined || expiresAt <= MAX_UPDATED_AT)
    ) {
      const meta: {
        contentType?: ContentType;
        version: number;
        updatedAt: number;
        traceParent?: string;
        origin?: string;
        expiresAt?: number;
      } = { version, updatedAt };
      if (m[1] !== undefined) meta.contentType = m[1] as ContentType;
      if (m[4] !== undefined && m[4].length > 0) meta.traceParent = m[4];
      if (m[5] !== undefined && m[5].length > 0) meta.origin = m[5];
      if (expiresAt !== undefined) meta.expiresAt = expiresAt;
      return meta;
    }
  }
  return parseMetaText(text);
}

/** The general path of {@link parseMeta}: any JSON object. Exported for the tests. */
export function parseMetaText(text: string): CdcMeta {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    if (cause instanceof CorruptEntryError) throw cause;
    throw new CorruptEntryError('bad_meta', 'meta is not valid JSON', { cause });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new CorruptEntryError('bad_meta', 'meta is not a JSON object');
  }
  const m = json as Record<string, unknown>;
  const contentType = optionalString(m['content_type'], 'content_type');
  if (contentType !== undefined && contentType !== 'json' && contentType !== 'binary') {
    throw new CorruptEntryError(
      'bad_meta',
      `meta.content_type ${JSON.stringify(contentType)} is not json or binary`,
    );
  }
  const meta: {
    contentType?: ContentType;
    version?: number;
    updatedAt?: number;
    traceParent?: string;
    origin?: string;
    expiresAt?: number;
  } = {};
  if (contentType !== undefined) meta.contentType = contentType;
  const version = optionalBoundedInt(m['version'], 'version', MAX_VERSION);
  if (version !== undefined) meta.version = version;
  const updatedAt = optionalBoundedInt(m['updated_at'], 'updated_at', MAX_UPDATED_AT);
  if (updatedAt !== undefined) meta.updatedAt = updatedAt;
  // An empty traceparent is none (as an empty origin is): a record cannot carry an empty one.
  const traceParent = optionalString(m['trace_parent'], 'trace_parent');
  if (traceParent !== undefined && traceParent.length > 0) meta.traceParent = traceParent;
  const origin = optionalString(m['origin'], 'origin');
  if (origin !== undefined && origin.length > 0) meta.origin = origin;
  // An expiry is a clock: bounded as one (docs/PROTOCOL.md §1).
  const expiresAt = optionalBoundedInt(m['expires_at'], 'expires_at', MAX_UPDATED_AT);
  if (expiresAt !== undefined) meta.expiresAt = expiresAt;
  return meta;
}

/**
 * Parses one stream entry given as the flat `[name, value, name, value, …]` list XREAD returns.
 * Field order does not matter; unknown fields are ignored; the first of a repeated field counts.
 *
 * @throws {CorruptEntryError} for anything that is not a valid PUT or DEL.
 */
export function parseCdcEntry(fields: readonly Buffer[], options: ParseOptions = {}): CdcEvent {
  const maxItemBytes = options.maxItemBytes ?? DEFAULT_MAX_ITEM_BYTES;
  if (fields.length === 0) throw new CorruptEntryError('empty', 'entry has no fields');
  if (fields.length % 2 !== 0)
    throw new CorruptEntryError('bad_field', 'entry has an odd number of field items');
  let op: Buffer | undefined;
  let key: Buffer | undefined;
  let hash: Buffer | undefined;
  let data: Buffer | undefined;
  let metaRaw: Buffer | undefined;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!;
    const value = fields[i + 1]!;
    // Compared as bytes: this runs for every field of every entry, so no string per name.
    switch (name.length) {
      case 2:
        if (name[0] === 0x6f && name[1] === 0x70) op ??= value; // op
        break;
      case 3:
        if (name[0] === 0x6b && name[1] === 0x65 && name[2] === 0x79) key ??= value; // key
        break;
      case 4:
        if (is4(name, 0x68, 0x61, 0x73, 0x68))
          hash ??= value; // hash
        else if (is4(name, 0x64, 0x61, 0x74, 0x61))
          data ??= value; // data
        else if (is4(name, 0x6d, 0x65, 0x74, 0x61)) metaRaw ??= value; // meta
        break;
    }
  }
  if (op === undefined) throw new CorruptEntryError('missing_op', 'entry has no op field');
  const kind = opOf(op);
  if (key === undefined || key.length === 0)
    throw new CorruptEntryError('missing_key', 'entry has no key');
  if (key.length > MAX_KEY_BYTES) throw new CorruptEntryError('bad_key', 'key is too long');
  const keyText = decodeUtf8(key, 'key');
  const meta = metaRaw === undefined ? undefined : parseMeta(metaRaw);

  if (kind === 'DEL') return { op: 'DEL', key: keyText, meta };

  if (data === undefined)
    throw new CorruptEntryError('missing_data', `PUT ${keyText} has no data field`);
  if (data.length > maxItemBytes) {
    throw new CorruptEntryError(
      'too_large',
      `data is ${data.length} bytes, over the ${maxItemBytes}-byte limit`,
    );
  }
  if (!hasZstdMagic(data)) {
    const contentHash = sha256Hex(data);
    if (hash !== undefined && !sameHex(hash, contentHash)) throw hashMismatch(keyText);
    const hashText = hash === undefined ? undefined : contentHash;
    return {
      op: 'PUT',
      key: keyText,
      hash: hashText,
      contentHash,
      content: data,
      compressed: false,
      data,
      meta,
    };
  }
  return parseFramedPut(keyText, hash, data, meta, maxItemBytes, options.lazyContent === true);
}

/**
 * A PUT whose `data` begins with the zstd magic: a zstd frame (ours always is), unless it is
 * content the Rust sync-engine wrote raw because it begins with the magic itself. The hash tells
 * them apart: when the frame does not decompress (within `maxItemBytes`) or not to the hash, and
 * the raw bytes hash to it, the raw bytes are the content. Without a hash, the frame must hold.
 */
function parseFramedPut(
  key: string,
  hash: Buffer | undefined,
  data: Buffer,
  meta: CdcMeta | undefined,
  maxItemBytes: number,
  lazy: boolean,
): CdcPut {
  let content: Buffer | undefined;
  let contentHash: string;
  try {
    if (lazy) contentHash = withContent(data, maxItemBytes, sha256Hex);
    else {
      content = decompressBounded(data, maxItemBytes);
      contentHash = sha256Hex(content);
    }
  } catch (error) {
    const raw = error instanceof CorruptEntryError ? rawPut(key, hash, data, meta) : undefined;
    if (raw === undefined) throw error;
    return raw;
  }
  if (hash !== undefined && !sameHex(hash, contentHash)) {
    const raw = rawPut(key, hash, data, meta);
    if (raw === undefined) throw hashMismatch(key);
    return raw;
  }
  const hashText = hash === undefined ? undefined : contentHash;
  if (content === undefined)
    return new LazyPut(key, hashText, contentHash, data, meta, maxItemBytes);
  return { op: 'PUT', key, hash: hashText, contentHash, content, compressed: true, data, meta };
}

/**
 * The PUT of `data` taken as raw content, when `hash` is its sha256; else undefined. Never a frame
 * (no `compressed`, so its record has none): a store that keeps frames stores it raw, and one that
 * relays it wraps it in a real frame.
 */
function rawPut(
  key: string,
  hash: Buffer | undefined,
  data: Buffer,
  meta: CdcMeta | undefined,
): CdcPut | undefined {
  if (hash === undefined) return undefined;
  const contentHash = sha256Hex(data);
  if (!sameHex(hash, contentHash)) return undefined;
  return {
    op: 'PUT',
    key,
    hash: contentHash,
    contentHash,
    content: data,
    compressed: false,
    data,
    meta,
  };
}

function hashMismatch(key: string): CorruptEntryError {
  return new CorruptEntryError('hash_mismatch', `hash of ${key} does not match its content`);
}

/** Whether the hex digits `given` (either case) spell `hex` (lowercase). */
function sameHex(given: Buffer, hex: string): boolean {
  if (given.length !== hex.length) return false;
  // Lowercase, as every writer we know sends it: one native compare instead of a loop per digit.
  if (given.toString('latin1') === hex) return true;
  for (let i = 0; i < given.length; i++) {
    const c = given[i]!;
    // ASCII A-Z to a-z; any other byte stays, and a non-digit never equals a digit of `hex`.
    if ((c >= 0x41 && c <= 0x5a ? c + 0x20 : c) !== hex.charCodeAt(i)) return false;
  }
  return true;
}

/** A PUT of a zstd frame parsed with `lazyContent`: its content is decompressed when first read. */
class LazyPut implements CdcPut {
  readonly op = 'PUT';
  readonly compressed = true;
  readonly #maxItemBytes: number;
  #content: Buffer | undefined;
  constructor(
    readonly key: string,
    readonly hash: string | undefined,
    readonly contentHash: string,
    readonly data: Buffer,
    readonly meta: CdcMeta | undefined,
    maxItemBytes: number,
  ) {
    this.#maxItemBytes = maxItemBytes;
  }
  get content(): Buffer {
    // It decompressed within the bound when it was hashed, so it does again.
    return (this.#content ??= decompressBounded(this.data, this.#maxItemBytes));
  }
}

function looksLikeJson(content: Buffer): boolean {
  if (content.length === 0) return false;
  try {
    JSON.parse(utf8.decode(content));
    return true;
  } catch {
    return false;
  }
}

/**
 * The record an event stands for (SPEC §2): missing `origin` is the peer's node id; a missing clock
 * (every Rust DEL, a PUT without meta) takes the entry id's milliseconds as `updatedAt` and version 0,
 * so every node reading the entry assigns it the same clock; a PUT without `expires_at` (every
 * Rust PUT) does not expire, and a DEL never carries one.
 *
 * @throws {CorruptEntryError} `bad_id` when that clock is needed and the id's milliseconds are
 *   beyond {@link MAX_UPDATED_AT}.
 */
export function eventToRecord(event: CdcEvent, entryId: string, peerId: string): StoredRecord {
  const meta = event.meta;
  const updatedAt = meta?.updatedAt ?? idClock(entryId);
  const version = meta?.version ?? 0;
  const origin = meta?.origin ?? peerId;
  const traceParent = meta?.traceParent;
  if (event.op === 'DEL') {
    return {
      key: event.key,
      content: EMPTY,
      contentHash: TOMBSTONE_HASH,
      contentType: meta?.contentType ?? 'binary',
      updatedAt,
      version,
      origin,
      deleted: true,
      ...(traceParent !== undefined ? { traceParent } : {}),
    };
  }
  const contentType = meta?.contentType ?? (looksLikeJson(event.content) ? 'json' : 'binary');
  const expiresAt = meta?.expiresAt;
  if (event instanceof LazyPut) {
    return new LazyRecord(event, contentType, updatedAt, version, origin, traceParent, expiresAt);
  }
  // Optional fields assigned, not spread in: this runs for every replicated event.
  const record: { -readonly [K in keyof StoredRecord]: StoredRecord[K] } = {
    key: event.key,
    content: event.content,
    contentHash: event.contentHash,
    contentType,
    updatedAt,
    version,
    origin,
    deleted: false,
  };
  if (event.compressed) record.frame = event.data;
  if (traceParent !== undefined) record.traceParent = traceParent;
  if (expiresAt !== undefined) record.expiresAt = expiresAt;
  return record;
}

const EMPTY = Buffer.alloc(0);

/**
 * The clock of an entry without one in its meta: its id's milliseconds, which an explicit XADD id
 * can push past {@link MAX_UPDATED_AT} (no room for a later write, or no exact number: no valid
 * record, so the entry is quarantined rather than failing every apply of its batch).
 *
 * @throws {CorruptEntryError} `bad_id`
 */
function idClock(entryId: string): number {
  const ms = streamIdMs(entryId);
  if (!Number.isSafeInteger(ms) || ms > MAX_UPDATED_AT) {
    throw new CorruptEntryError(
      'bad_id',
      `entry ${entryId} has no clock in its meta, and its id's milliseconds pass ${MAX_UPDATED_AT}`,
    );
  }
  return ms;
}

/** The record of a {@link LazyPut}: its content is read through from the event. */
class LazyRecord implements StoredRecord {
  readonly key: string;
  readonly contentHash: string;
  readonly deleted = false;
  readonly frame: Buffer;
  // Declared, not a field: a record without a traceparent has no such property (as plain ones).
  declare readonly traceParent?: string;
  declare readonly expiresAt?: number;
  readonly #event: LazyPut;
  constructor(
    event: LazyPut,
    readonly contentType: ContentType,
    readonly updatedAt: number,
    readonly version: number,
    readonly origin: string,
    traceParent: string | undefined,
    expiresAt: number | undefined,
  ) {
    this.key = event.key;
    this.contentHash = event.contentHash;
    this.frame = event.data;
    if (traceParent !== undefined) (this as { traceParent?: string }).traceParent = traceParent;
    if (expiresAt !== undefined) (this as { expiresAt?: number }).expiresAt = expiresAt;
    this.#event = event;
  }
  get content(): Buffer {
    return this.#event.content;
  }
}

/**
 * JSON text of a record's `meta` field, keys in the Rust sync-engine's order plus our `origin` and,
 * for a put that expires, our `expires_at` last.
 */
export function encodeMeta(record: StoredRecord): string {
  if (record.deleted) {
    return `{"version":${record.version},"updated_at":${record.updatedAt},"origin":${JSON.stringify(record.origin)}}`;
  }
  const trace =
    record.traceParent !== undefined ? `,"trace_parent":${JSON.stringify(record.traceParent)}` : '';
  const expiry = record.expiresAt !== undefined ? `,"expires_at":${record.expiresAt}` : '';
  return (
    `{"content_type":${JSON.stringify(record.contentType)},"version":${record.version},` +
    `"updated_at":${record.updatedAt}${trace},"origin":${JSON.stringify(record.origin)}${expiry}}`
  );
}

/**
 * The XADD field list of a record, as SyncStore writes it: `op PUT key hash data meta` or
 * `op DEL key meta`.
 */
export function encodeCdcEntry(record: StoredRecord): Buffer[] {
  if (record.deleted) {
    return [
      Buffer.from('op'),
      Buffer.from('DEL'),
      Buffer.from('key'),
      Buffer.from(record.key, 'utf8'),
      Buffer.from('meta'),
      Buffer.from(encodeMeta(record), 'utf8'),
    ];
  }
  return [
    Buffer.from('op'),
    Buffer.from('PUT'),
    Buffer.from('key'),
    Buffer.from(record.key, 'utf8'),
    Buffer.from('hash'),
    Buffer.from(record.contentHash, 'latin1'),
    Buffer.from('data'),
    record.frame ?? encodeData(record.content).data,
    Buffer.from('meta'),
    Buffer.from(encodeMeta(record), 'utf8'),
  ];
}
