/**
 * Validation and normalisation of what applications and the engine hand to the store, so bad input
 * fails early with a clear {@link StoreError} instead of reaching a Lua script.
 */
import { isBoundedInt, MAX_UPDATED_AT, MAX_VERSION } from '../codec/bounds.js';
import { hasLoneSurrogate } from '../codec/cdc.js';
import { StoreError } from '../errors.js';
import type { ContentType, StoredRecord } from '../model/record.js';

/** What `SyncStore.put` accepts as content. */
export type PutContent =
  Buffer | Uint8Array | string | Record<string, unknown> | readonly unknown[];

/** 1 at the char codes of lowercase hex digits. */
const HEX_DIGIT = new Uint8Array(128);
for (const c of '0123456789abcdef') HEX_DIGIT[c.charCodeAt(0)] = 1;

/** True for 64 lowercase hex digits (a table loop: a third of the regex's time, per record). */
function isHex64(text: string): boolean {
  if (text.length !== 64) return false;
  for (let i = 0; i < 64; i++) if (HEX_DIGIT[text.charCodeAt(i)] !== 1) return false;
  return true;
}

export { sha256Hex } from '../codec/cdc.js';

/** Checks a record key: a non-empty, well-formed (no lone surrogate) string. @throws {StoreError} */
export function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new StoreError(`key must be a string, got ${typeof key}`);
  if (key.length === 0) throw new StoreError('key must not be empty');
  if (hasLoneSurrogate(key)) {
    throw new StoreError(`key ${JSON.stringify(key)} is not well-formed unicode (lone surrogate)`);
  }
}

function checkContentType(contentType: unknown): asserts contentType is ContentType | undefined {
  if (contentType !== undefined && contentType !== 'json' && contentType !== 'binary') {
    throw new StoreError(
      `contentType must be 'json' or 'binary', got ${JSON.stringify(contentType)}`,
    );
  }
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * The bytes and content type of `put` content: a Buffer or Uint8Array is stored as is (`binary`
 * unless `contentType` says otherwise); a string as utf-8 (`json` when it parses as JSON, `binary`
 * otherwise, unless `contentType` says); a plain object or array as its JSON text (`json`).
 *
 * @throws {StoreError} for any other value, or a content larger than `maxBytes`.
 */
export function normalizeContent(
  content: unknown,
  contentType: unknown,
  maxBytes: number,
): { bytes: Buffer; contentType: ContentType } {
  checkContentType(contentType);
  let result: { bytes: Buffer; contentType: ContentType };
  if (Buffer.isBuffer(content)) {
    result = { bytes: content, contentType: contentType ?? 'binary' };
  } else if (content instanceof Uint8Array) {
    const bytes = Buffer.from(content.buffer, content.byteOffset, content.byteLength);
    result = { bytes, contentType: contentType ?? 'binary' };
  } else if (typeof content === 'string') {
    result = {
      bytes: Buffer.from(content, 'utf8'),
      contentType: contentType ?? jsonOrBinary(content),
    };
  } else if (
    content !== null &&
    typeof content === 'object' &&
    (Array.isArray(content) || isPlainObject(content))
  ) {
    let text: string;
    try {
      text = JSON.stringify(content);
    } catch (cause) {
      throw new StoreError('content object cannot be serialised as JSON', { cause });
    }
    result = { bytes: Buffer.from(text, 'utf8'), contentType: contentType ?? 'json' };
  } else {
    const what =
      content === null
        ? 'null'
        : typeof content === 'object'
          ? 'a non-plain object'
          : typeof content;
    throw new StoreError(
      `content must be a Buffer, a string, or a plain object or array (JSON), got ${what}`,
    );
  }
  if (result.bytes.length > maxBytes) {
    throw new StoreError(
      `content of ${result.bytes.length} bytes exceeds max_item_bytes (${maxBytes})`,
    );
  }
  return result;
}

function jsonOrBinary(text: string): ContentType {
  try {
    JSON.parse(text);
    return 'json';
  } catch {
    return 'binary';
  }
}

/** Checks a W3C traceparent option: absent, or a non-empty string. @throws {StoreError} */
export function checkTraceParent(tp: unknown): asserts tp is string | undefined {
  if (tp !== undefined && (typeof tp !== 'string' || tp.length === 0)) {
    throw new StoreError('traceParent must be a non-empty string when given');
  }
  if (tp !== undefined && hasLoneSurrogate(tp)) {
    throw new StoreError('traceParent is not well-formed unicode (lone surrogate)');
  }
}

/**
 * The absolute expiry of a put from its options (docs/API.md, "Expiry"): `ttlMs` (a positive
 * integer of milliseconds from `now`, this node's clock) or `expiresAt` (an integer ms epoch after
 * `now`), not both; undefined for neither. Computed once, here at the writer: the record carries
 * the absolute time, so every node expires it at the same instant.
 * @throws {StoreError} for anything else (negative, zero, fractional, in the past, past the clock
 *   bound of docs/PROTOCOL.md §1), naming the option.
 */
export function expiryOf(
  options: { readonly ttlMs?: unknown; readonly expiresAt?: unknown },
  now: number,
): number | undefined {
  const { ttlMs, expiresAt } = options;
  if (ttlMs !== undefined && expiresAt !== undefined) {
    throw new StoreError('give ttlMs or expiresAt, not both');
  }
  if (ttlMs !== undefined) {
    if (typeof ttlMs !== 'number' || !Number.isSafeInteger(ttlMs) || ttlMs <= 0) {
      throw new StoreError(
        `ttlMs must be a positive integer of milliseconds, got ${JSON.stringify(ttlMs) ?? typeof ttlMs}`,
      );
    }
    const at = Math.floor(now) + ttlMs;
    if (at > MAX_UPDATED_AT) {
      throw new StoreError(`ttlMs ${ttlMs} puts the expiry past ${MAX_UPDATED_AT} ms`);
    }
    return at;
  }
  if (expiresAt !== undefined) {
    if (!isBoundedInt(expiresAt, MAX_UPDATED_AT)) {
      throw new StoreError(
        `expiresAt must be an integer ms epoch in [0, ${MAX_UPDATED_AT}], got ${JSON.stringify(expiresAt) ?? typeof expiresAt}`,
      );
    }
    if (expiresAt <= now) {
      throw new StoreError(
        `expiresAt ${expiresAt} is not in the future (this node's clock reads ${Math.floor(now)})`,
      );
    }
    return expiresAt;
  }
  return undefined;
}

/** The error for record `index` (its text built only on failure: checkRecord runs for every record). */
function recordError(index: number, key: string, problem: string): StoreError {
  return new StoreError(`record ${index} (${JSON.stringify(key)}): ${problem}`);
}

/** Checks a replicated record before it reaches the apply script. @throws {StoreError} */
export function checkRecord(record: StoredRecord, index: number): void {
  if (record === null || typeof record !== 'object')
    throw new StoreError(`record ${index} is not a record`);
  checkKey(record.key);
  if (!isBoundedInt(record.updatedAt, MAX_UPDATED_AT)) {
    throw recordError(index, record.key, `updatedAt must be an integer in [0, ${MAX_UPDATED_AT}]`);
  }
  if (!isBoundedInt(record.version, MAX_VERSION)) {
    throw recordError(index, record.key, `version must be an integer in [0, ${MAX_VERSION}]`);
  }
  if (typeof record.origin !== 'string')
    throw recordError(index, record.key, 'origin must be a string');
  if (hasLoneSurrogate(record.origin)) {
    throw recordError(index, record.key, 'origin is not well-formed unicode (lone surrogate)');
  }
  if (typeof record.deleted !== 'boolean')
    throw recordError(index, record.key, 'deleted must be a boolean');
  if (record.expiresAt !== undefined && !isBoundedInt(record.expiresAt, MAX_UPDATED_AT)) {
    throw recordError(
      index,
      record.key,
      `expiresAt must be an integer in [0, ${MAX_UPDATED_AT}] when given`,
    );
  }
  checkTraceParent(record.traceParent);
  if (!record.deleted) {
    // A record with a frame is stored as its frame; its content is not read (keepsFrames).
    if (record.frame !== undefined) {
      if (!Buffer.isBuffer(record.frame))
        throw recordError(index, record.key, 'frame must be a Buffer');
    } else if (!Buffer.isBuffer(record.content)) {
      throw recordError(index, record.key, 'content must be a Buffer');
    }
    if (typeof record.contentHash !== 'string' || !isHex64(record.contentHash)) {
      throw recordError(index, record.key, 'contentHash must be 64 lowercase hex digits');
    }
    checkContentType(record.contentType);
  }
}
