/**
 * The Merkle tree's pure core (docs/PROTOCOL.md §Merkle): bucket assignment, leaf, bucket and
 * interior hashes, and the bucket-entry tuple format. No I/O; the store and the reader build on it.
 */
import { hash as digest } from 'node:crypto';
import type { RecordVersion } from '../model/record.js';

/** Children per interior node (one hex digit per level). */
export const FANOUT = 16;

/** Levels below the root; a bucket path has this many hex digits (16⁴ = 65,536 buckets). */
export const DEPTH = 4;

/** The hash of an empty bucket, of an all-empty subtree and of an empty store's root. */
export const ZERO_HASH = '0'.repeat(64);

/** The `merkle:nodes` field that holds the root hash (the root's path is `''`). */
export const ROOT_FIELD = 'root';

const HEX = '0123456789abcdef';

/** The bucket of a key: the first {@link DEPTH} hex digits of sha256(utf-8 key). */
export function bucketOf(key: string): string {
  return digest('sha256', key, 'hex').slice(0, DEPTH);
}

/** True for `''` (the root) and any lowercase hex path of at most {@link DEPTH} digits. */
export function isMerklePath(path: string): boolean {
  return path.length <= DEPTH && /^[0-9a-f]*$/.test(path);
}

/** True for a bucket path: exactly {@link DEPTH} lowercase hex digits. */
export function isBucketPath(path: string): boolean {
  return path.length === DEPTH && /^[0-9a-f]+$/.test(path);
}

/** The `merkle:nodes` field of a path: `'root'` for `''`, the path itself otherwise. */
export function nodeField(path: string): string {
  return path === '' ? ROOT_FIELD : path;
}

/** The 16 child paths of an interior path, in order 0..f. */
export function childPaths(path: string): readonly string[] {
  let children = CHILD_PATHS.get(path);
  if (children === undefined) {
    children = Object.freeze(Array.from(HEX, (digit) => path + digit));
    CHILD_PATHS.set(path, children);
  }
  return children;
}

// Interior paths are few (1 + 16 + 256 + 4,096), so their child lists are computed once.
const CHILD_PATHS = new Map<string, readonly string[]>();

/** The leaf hash of one record version: sha256 of `key\0updatedAt\0version\0D|P\0contentHash\0origin`. */
export function leafHash(v: RecordVersion): Buffer {
  const text = `${v.key}\0${v.updatedAt}\0${v.version}\0${v.deleted ? 'D' : 'P'}\0${v.contentHash}\0${v.origin}`;
  return digest('sha256', text, 'buffer');
}

/** Orders keys by the byte order of their utf-8 encoding (the order bucket hashes use). */
export function compareKeysUtf8(a: string, b: string): number {
  if (a === b) return 0;
  if (isAscii(a) && isAscii(b)) return a < b ? -1 : 1;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

const NON_ASCII = /[\u0080-\uffff]/;

function isAscii(text: string): boolean {
  return !NON_ASCII.test(text);
}

/** `leaves` sorted by utf-8 byte order of their keys (code-unit order equals it for ASCII keys). */
export function sortByKeyUtf8<T extends { readonly key: string }>(leaves: readonly T[]): T[] {
  if (leaves.every((leaf) => isAscii(leaf.key))) {
    return [...leaves].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
  return leaves
    .map((leaf) => ({ bytes: Buffer.from(leaf.key, 'utf8'), leaf }))
    .sort((a, b) => Buffer.compare(a.bytes, b.bytes))
    .map(({ leaf }) => leaf);
}

/**
 * The hash of a bucket: sha256 of its leaf hashes (32 raw bytes each) in ascending utf-8 key order;
 * {@link ZERO_HASH} for an empty bucket. Independent of the order of `leaves`.
 */
export function bucketHash(leaves: readonly RecordVersion[]): string {
  if (leaves.length === 0) return ZERO_HASH;
  const sorted = sortByKeyUtf8(leaves);
  const concatenated = Buffer.allocUnsafe(32 * sorted.length);
  sorted.forEach((leaf, i) => leafHash(leaf).copy(concatenated, 32 * i));
  return digest('sha256', concatenated, 'hex');
}

/**
 * The hash of an interior node from its 16 children's hex hashes in order 0..f (`undefined` or
 * {@link ZERO_HASH} for a missing child, hashed as 32 zero bytes); {@link ZERO_HASH} when all are zero.
 */
export function interiorHash(children: readonly (string | undefined)[]): string {
  if (children.length !== FANOUT)
    throw new RangeError(`expected ${FANOUT} children, got ${children.length}`);
  if (children.every((c) => c === undefined || c === ZERO_HASH)) return ZERO_HASH;
  const concatenated = Buffer.alloc(32 * FANOUT);
  children.forEach((child, i) => {
    if (child !== undefined && child !== ZERO_HASH) concatenated.write(child, 32 * i, 32, 'hex');
  });
  return digest('sha256', concatenated, 'hex');
}

/** The bucket-entry value of a version: `updatedAt|version|deleted(0/1)|contentHash|origin`. */
export function formatVersionTuple(v: Omit<RecordVersion, 'key'>): string {
  return `${v.updatedAt}|${v.version}|${v.deleted ? '1' : '0'}|${v.contentHash}|${v.origin}`;
}

/**
 * Parses a bucket-entry value written by {@link formatVersionTuple} (the origin is last, so it may
 * itself contain `|`). Returns undefined for a malformed tuple.
 */
export function parseVersionTuple(key: string, tuple: string): RecordVersion | undefined {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < 4; i++) {
    const bar = tuple.indexOf('|', start);
    if (bar < 0) return undefined;
    parts.push(tuple.slice(start, bar));
    start = bar + 1;
  }
  const [ts, v, d, contentHash] = parts as [string, string, string, string];
  const updatedAt = Number(ts);
  const version = Number(v);
  if (!/^\d+$/.test(ts) || !/^\d+$/.test(v) || (d !== '0' && d !== '1')) return undefined;
  return { key, updatedAt, version, deleted: d === '1', contentHash, origin: tuple.slice(start) };
}

/**
 * The root hash of a set of versions computed from scratch (no store): the reference the lazy,
 * incremental computation must agree with. O(n); for tests and tools.
 */
export function computeRoot(versions: readonly RecordVersion[]): string {
  const buckets = new Map<string, RecordVersion[]>();
  for (const v of versions) {
    const b = bucketOf(v.key);
    const list = buckets.get(b);
    if (list === undefined) buckets.set(b, [v]);
    else list.push(v);
  }
  let level = new Map<string, string>();
  for (const [b, leaves] of buckets) level.set(b, bucketHash(leaves));
  for (let depth = DEPTH - 1; depth >= 0; depth--) {
    const parents = new Map<string, string>();
    for (const parent of new Set(Array.from(level.keys(), (p) => p.slice(0, depth)))) {
      parents.set(parent, interiorHash(childPaths(parent).map((c) => level.get(c))));
    }
    level = parents;
  }
  return level.get('') ?? ZERO_HASH;
}
