/**
 * The replicated data model: records, their clocks and the last-writer-wins order (SPEC §2).
 * Pure: no I/O.
 */

/** How a record's content is to be read. */
export type ContentType = 'json' | 'binary';

/** The part of a record that decides which of two versions wins. */
export interface Clock {
  /** Milliseconds since the epoch, from the per-key hybrid clock. */
  readonly updatedAt: number;
  /** Per-key write counter; a write made after seeing version n has version n + 1. */
  readonly version: number;
  /** Node id of the node that made the write. */
  readonly origin: string;
}

/** One version of one key: a live document or a tombstone. */
export interface StoredRecord extends Clock {
  readonly key: string;
  /** The document bytes; empty for a tombstone. */
  readonly content: Buffer;
  /** sha256 hex of `content`; the empty string for a tombstone. */
  readonly contentHash: string;
  readonly contentType: ContentType;
  readonly deleted: boolean;
  /** W3C traceparent of the write, when the writer gave one. */
  readonly traceParent?: string;
  /**
   * The content as the zstd frame it arrived in (a CDC `data` field or a stored record), when it
   * came compressed: it decompresses to `content`. A store may keep these bytes as they are
   * instead of compressing the content again; SyncStore does (docs/PROTOCOL.md §2).
   */
  readonly frame?: Buffer;
  /**
   * When the record stops being served (ms since the epoch, `now >= expiresAt`: expired), set by
   * its writer (`ttlMs` / `expiresAt`); absent for a record that does not expire and for every
   * tombstone. Part of the version tuple and the Merkle leaf (docs/PROTOCOL.md §1).
   */
  readonly expiresAt?: number;
}

/** The fields of a record that the total order compares, and that a Merkle leaf covers. */
export type RecordVersion = Clock & {
  readonly key: string;
  readonly contentHash: string;
  readonly deleted: boolean;
  /** When the record expires (ms since the epoch); absent: never. */
  readonly expiresAt?: number;
};

/** The contentHash a tombstone compares and hashes with. */
export const TOMBSTONE_HASH = '';

/**
 * Compares two well-formed strings by the byte order of their UTF-8 encodings, as the Lua scripts
 * and `Buffer.compare` do (SPEC §8, "One order"), without encoding them. Returns -1, 0 or 1.
 */
export function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // UTF-8 byte order is code-point order. Code units follow it, except that a surrogate (half of
    // a character from U+10000 up, 4 UTF-8 bytes from F0) sorts below U+E000-U+FFFF (3 bytes from
    // EE). The first differing units are both high surrogates, both low surrogates after the same
    // high one, or both outside the surrogates: only a surrogate against a unit of U+E000 and up
    // needs the other answer.
    if (x >= 0xd800 && y >= 0xd800) {
      const xSurrogate = x <= 0xdfff;
      if (xSurrogate !== y <= 0xdfff) return xSurrogate ? 1 : -1;
    }
    return x < y ? -1 : 1;
  }
  return a.length < b.length ? -1 : 1;
}

/**
 * The total order of SPEC §2: `(updatedAt, version, origin, contentHash)`, numbers numerically,
 * strings by the byte order of their UTF-8 (as the Lua scripts compare them), then a tombstone
 * above a put, then the expiry: no expiry above any, a later one above an earlier one
 * (docs/PROTOCOL.md §1; only versions equal in everything else get that far). Returns a negative
 * number, zero or a positive number.
 */
export function compareVersions(a: RecordVersion, b: RecordVersion): number {
  if (a.updatedAt !== b.updatedAt) return a.updatedAt < b.updatedAt ? -1 : 1;
  if (a.version !== b.version) return a.version < b.version ? -1 : 1;
  const byOrigin = compareUtf8(a.origin, b.origin);
  if (byOrigin !== 0) return byOrigin;
  const byHash = compareUtf8(a.contentHash, b.contentHash);
  if (byHash !== 0) return byHash;
  // Same clock and hash: a tombstone (hash '') only ties with a put of empty hash, which cannot
  // exist (sha256 is never empty); still, make the order total.
  if (a.deleted !== b.deleted) return a.deleted ? 1 : -1;
  // A write is a write: its expiry only breaks a tie the rest cannot (docs/PROTOCOL.md §1).
  const ea = a.expiresAt ?? Infinity;
  const eb = b.expiresAt ?? Infinity;
  return ea === eb ? 0 : ea < eb ? -1 : 1;
}

/**
 * True when `record` has expired at `now` (ms): it has an expiry and `now >= expiresAt`. Every
 * node decides it from the record's own expiry and its clock, never from when the record arrived,
 * so all of them stop serving it at the same instant (docs/API.md, "Expiry").
 */
export function isExpired(record: { readonly expiresAt?: number }, now: number): boolean {
  return record.expiresAt !== undefined && now >= record.expiresAt;
}

/** True when `record` is served at `now`: not a tombstone and not expired. */
export function isLive(
  record: { readonly deleted: boolean; readonly expiresAt?: number },
  now: number,
): boolean {
  return !record.deleted && !isExpired(record, now);
}

/** True when `candidate` strictly beats `current` (or there is no current record). */
export function wins(candidate: RecordVersion, current: RecordVersion | undefined): boolean {
  return current === undefined || compareVersions(candidate, current) > 0;
}

/**
 * The clock of a local write on top of `prev` (SPEC §2): `updatedAt = max(now, prev.updatedAt + 1)`,
 * `version = prev.version + 1`, so a write made after seeing another always wins, even under skew.
 */
export function nextClock(prev: Clock | undefined, now: number, origin: string): Clock {
  if (prev === undefined) return { updatedAt: now, version: 1, origin };
  return {
    updatedAt: Math.max(now, prev.updatedAt + 1),
    version: prev.version + 1,
    origin,
  };
}

/** The larger of two versions under the total order (either when equal). */
export function maxVersion<T extends RecordVersion>(a: T, b: T): T {
  return compareVersions(a, b) >= 0 ? a : b;
}
