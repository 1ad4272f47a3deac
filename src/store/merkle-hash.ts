/**
 * The Merkle tree's pure core (docs/PROTOCOL.md §Merkle): bucket assignment, leaf, bucket and
 * interior hashes, and the bucket-entry tuple format. No I/O; the store and the reader build on it.
 */
import { hash as digest } from 'node:crypto';
import { compareUtf8, type RecordVersion } from '../model/record.js';

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

/**
 * The leaf hash of one record version: sha256 of `key\0updatedAt\0version\0D|P\0hashField\0origin`,
 * where the hash field is the content hash, followed by `+expiresAt` when the record expires (the
 * tuple's fourth field): a record without expiry hashes as it always did.
 */
export function leafHash(v: RecordVersion): Buffer {
  const text = `${v.key}\0${v.updatedAt}\0${v.version}\0${v.deleted ? 'D' : 'P'}\0${hashField(v)}\0${v.origin}`;
  return digest('sha256', text, 'buffer');
}

/** The tuple's and the leaf's fourth field: `contentHash`, plus `+expiresAt` when it expires. */
function hashField(v: Pick<RecordVersion, 'contentHash' | 'expiresAt'>): string {
  return v.expiresAt === undefined ? v.contentHash : `${v.contentHash}+${v.expiresAt}`;
}

// Code units from U+D800 up: below it, code-unit order is code-point order, so UTF-8 byte order.
const SURROGATE_OR_ABOVE = /[\ud800-\uffff]/;

/** `leaves` sorted by utf-8 byte order of their keys. */
export function sortByKeyUtf8<T extends { readonly key: string }>(leaves: readonly T[]): T[] {
  // The engine's native string compare is ~3x faster than compareUtf8 on long shared prefixes.
  if (leaves.every((leaf) => !SURROGATE_OR_ABOVE.test(leaf.key))) {
    return [...leaves].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
  return [...leaves].sort((a, b) => compareUtf8(a.key, b.key));
}

const LIMB = 2 ** 32;
/** Where {@link HashSum.hex} lays its bytes out before encoding them. */
const HEX_SCRATCH = Buffer.alloc(32);
/** Terms a {@link HashSum} takes between carries: 2²⁰ × (2³² − 1) stays exact in a double. */
const TERMS_BEFORE_CARRY = 1 << 20;

/**
 * A sum of 32-byte hashes modulo 2²⁵⁶ (each read as an unsigned big-endian number), to which
 * hashes are added and from which they are subtracted: a bucket's hash, updated one leaf at a time.
 * Eight 32-bit limbs kept in doubles, carried only when read or after 2²⁰ terms.
 */
export class HashSum {
  /** Limb 0 is the most significant. */
  readonly #limbs = new Float64Array(8);
  #terms = 0;

  /** A sum starting at `hex` (64 hex digits), or at zero. */
  constructor(hex: string = ZERO_HASH) {
    if (hex === ZERO_HASH) return;
    for (let j = 0; j < 8; j++) this.#limbs[j] = parseInt(hex.slice(8 * j, 8 * j + 8), 16);
  }

  /** A sum starting at the 32 big-endian bytes of `bytes` at `offset`. */
  static fromBytes(bytes: Buffer, offset: number): HashSum {
    const sum = new HashSum();
    for (let j = 0; j < 8; j++) sum.#limbs[j] = bytes.readUInt32BE(offset + 4 * j);
    return sum;
  }

  /** Writes the sum as 32 big-endian bytes into `target` at `offset`. */
  writeBytes(target: Buffer, offset: number): void {
    this.#carry();
    for (let j = 0; j < 8; j++) target.writeUInt32BE(this.#limbs[j]!, offset + 4 * j);
  }

  /** Adds (`sign` 1) or subtracts (`sign` −1) a 32-byte hash. */
  add(hash: Buffer, sign: 1 | -1 = 1): this {
    for (let j = 0; j < 8; j++) this.#limbs[j]! += sign * hash.readUInt32BE(4 * j);
    if (++this.#terms >= TERMS_BEFORE_CARRY) this.#carry();
    return this;
  }

  /** Adds another sum to this one. */
  addSum(other: HashSum): this {
    other.#carry();
    for (let j = 0; j < 8; j++) this.#limbs[j]! += other.#limbs[j]!;
    if (++this.#terms >= TERMS_BEFORE_CARRY) this.#carry();
    return this;
  }

  /** The sum as 64 lowercase hex digits. */
  hex(): string {
    this.writeBytes(HEX_SCRATCH, 0);
    return HEX_SCRATCH.toString('hex');
  }

  #carry(): void {
    let carry = 0;
    for (let j = 7; j >= 0; j--) {
      const v = this.#limbs[j]! + carry;
      const limb = ((v % LIMB) + LIMB) % LIMB;
      carry = (v - limb) / LIMB;
      this.#limbs[j] = limb;
    }
    // What carries out of the top limb is a multiple of 2²⁵⁶: dropped.
    this.#terms = 0;
  }
}

/**
 * The hash of a bucket: the sum of its leaf hashes (each read as a 256-bit big-endian number)
 * modulo 2²⁵⁶, as 64 hex digits; {@link ZERO_HASH} for an empty bucket. Independent of the order
 * of `leaves`, and updatable one leaf at a time (`sum − old leaf + new leaf`), so a refresh costs
 * what changed, not the size of the bucket.
 */
export function bucketHash(leaves: readonly RecordVersion[]): string {
  const sum = new HashSum();
  for (const leaf of leaves) sum.add(leafHash(leaf));
  return sum.hex();
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

/**
 * The bucket-entry value of a version: `updatedAt|version|deleted(0/1)|contentHash|origin`, the
 * content hash followed by `+expiresAt` when the record expires (docs/PROTOCOL.md §4).
 */
export function formatVersionTuple(v: Omit<RecordVersion, 'key'>): string {
  return `${v.updatedAt}|${v.version}|${v.deleted ? '1' : '0'}|${hashField(v)}|${v.origin}`;
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
  const [ts, v, d, field] = parts as [string, string, string, string];
  const updatedAt = Number(ts);
  const version = Number(v);
  if (!/^\d+$/.test(ts) || !/^\d+$/.test(v) || (d !== '0' && d !== '1')) return undefined;
  const origin = tuple.slice(start);
  const plus = field.indexOf('+');
  if (plus < 0) return { key, updatedAt, version, deleted: d === '1', contentHash: field, origin };
  // An expiry: a live record's, canonical digits (tuples are compared as strings).
  const e = field.slice(plus + 1);
  if (d !== '0' || !/^(0|[1-9]\d*)$/.test(e)) return undefined;
  const contentHash = field.slice(0, plus);
  return { key, updatedAt, version, deleted: false, contentHash, origin, expiresAt: Number(e) };
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
