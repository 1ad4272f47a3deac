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
}

/** The fields of a record that the total order compares, and that a Merkle leaf covers. */
export type RecordVersion = Clock & {
  readonly key: string;
  readonly contentHash: string;
  readonly deleted: boolean;
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
 * strings by the byte order of their UTF-8 (as the Lua scripts compare them). Returns a negative
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
  return a.deleted === b.deleted ? 0 : a.deleted ? 1 : -1;
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
