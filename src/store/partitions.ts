/**
 * How a store is split over a Redis Cluster (docs/PROTOCOL.md §9): P fixed partitions aligned
 * with the Merkle tree, so a partition is a whole subtree (16 = the root's children, 256 = the
 * nodes at depth 2). Every key one write touches (record, bucket, dirty mark, tombstone index,
 * CDC stream) is under its partition's hash tag, so a write stays one script call on one shard.
 *
 * A partition's tag is chosen so that the P tags fall near the middles of P equal ranges of the
 * 16,384 hash slots: a cluster created with slots split evenly over its masters then holds the
 * partitions evenly too (the single-digit tags `{0}`..`{f}` would pile up on whichever master
 * their CRC16 happens to land on). The tags are recorded with the layout in the store, so a
 * reader takes them from there.
 */
import calculateSlot from 'cluster-key-slot';
import { StoreError } from '../errors.js';
import { DEPTH } from './merkle-hash.js';

/** The partition counts a store may be created with: the nodes of one tree level. */
export const PARTITION_COUNTS = [16, 256] as const;

/** A valid partition count. */
export type PartitionCount = (typeof PARTITION_COUNTS)[number];

/** Hash slots of a Redis Cluster. */
export const CLUSTER_SLOTS = 16_384;

/** A store's partition layout: how many, and each one's tree path and hash tag. */
export interface PartitionLayout {
  readonly count: PartitionCount;
  /** Tree depth of a partition's root: 1 for 16 partitions, 2 for 256. */
  readonly depth: number;
  /** Each partition's subtree path (`'0'`..`'f'` or `'00'`..`'ff'`), in order. */
  readonly paths: readonly string[];
  /** Each partition's hash tag (the text between braces), in order. */
  readonly tags: readonly string[];
}

const layouts = new Map<PartitionCount, PartitionLayout>();

/** True when `count` is a partition count a store can have. */
export function isPartitionCount(count: unknown): count is PartitionCount {
  return (PARTITION_COUNTS as readonly unknown[]).includes(count);
}

/** The layout of `count` partitions (computed once per process). */
export function partitionLayout(count: number): PartitionLayout {
  if (!isPartitionCount(count)) {
    throw new StoreError(`a store has ${PARTITION_COUNTS.join(' or ')} partitions, not ${count}`);
  }
  let layout = layouts.get(count);
  if (layout === undefined) {
    const depth = Math.log2(count) / 4;
    const paths = Array.from({ length: count }, (_, i) => i.toString(16).padStart(depth, '0'));
    layout = Object.freeze({
      count,
      depth,
      paths: Object.freeze(paths),
      tags: Object.freeze(paths.map((path, i) => evenTag(path, i, count))),
    });
    layouts.set(count, layout);
  }
  return layout;
}

/**
 * The layout a store recorded (`store:layout`, `{"partitions":P,"tags":[…]}`), checked: P a
 * partition count, P distinct tags without braces. Undefined for anything else.
 */
export function parseLayoutRecord(text: string): PartitionLayout | undefined {
  let parsed: { partitions?: unknown; tags?: unknown };
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    return undefined;
  }
  const { partitions, tags } = parsed;
  if (!isPartitionCount(partitions) || !Array.isArray(tags) || tags.length !== partitions) {
    return undefined;
  }
  const valid = tags.every((t) => typeof t === 'string' && t.length > 0 && !/[{}]/.test(t));
  if (!valid || new Set(tags).size !== tags.length) return undefined;
  const { depth, paths } = partitionLayout(partitions);
  return Object.freeze({
    count: partitions,
    depth,
    paths,
    tags: Object.freeze([...(tags as string[])]),
  });
}

/** The layout record of `layout`, as stored in `store:layout`. */
export function formatLayoutRecord(layout: PartitionLayout): string {
  return JSON.stringify({ partitions: layout.count, tags: layout.tags });
}

/** The index of the partition that holds `bucket` (a 4-digit bucket path or any deeper path). */
export function partitionIndex(layout: PartitionLayout, path: string): number {
  if (path.length < layout.depth || path.length > DEPTH) {
    throw new StoreError(`path ${JSON.stringify(path)} is above the partitions of this store`);
  }
  return Number.parseInt(path.slice(0, layout.depth), 16);
}

/**
 * The key prefix of one partition's keys under the store's `prefix`: `<prefix>{<tag>}:`.
 * @throws {StoreError} when `prefix` has a `{`, which would make its text the hash tag of every key.
 */
export function partitionPrefix(prefix: string, tag: string): string {
  if (prefix.includes('{')) {
    throw new StoreError(
      `local.redis_prefix ${JSON.stringify(prefix)} has a "{": in a Redis Cluster store it would ` +
        'become the hash tag of every key and put the whole store on one shard',
    );
  }
  return `${prefix}{${tag}}:`;
}

/**
 * `<path>.<n>` for the least n whose hash slot lies within an eighth of the partition's share of
 * slots around its middle: a cluster whose slots are split evenly over its masters (as
 * `redis-cli --cluster create` does) gives each master the partitions whose middles it holds.
 */
function evenTag(path: string, index: number, count: number): string {
  const share = CLUSTER_SLOTS / count;
  const middle = Math.floor((index + 0.5) * share);
  const reach = Math.floor(share / 8);
  for (let n = 0; ; n++) {
    const tag = `${path}.${n}`;
    if (Math.abs(calculateSlot(tag) - middle) <= reach) return tag;
  }
}
