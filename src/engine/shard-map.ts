/**
 * Which master of a Redis Cluster serves each hash slot, from a `CLUSTER SLOTS` reply (pure): how
 * a cluster peer's partition streams are grouped into one read pipeline per shard. Re-read when a
 * read is answered `MOVED` (a slot migrated, a replica took over).
 */
import calculateSlot from 'cluster-key-slot';
import { CLUSTER_SLOTS } from '../store/partitions.js';

/** A master's address, `host:port`. */
export type ShardAddress = string;

/** The master of every slot, as one `CLUSTER SLOTS` reply told it. */
export class ShardMap {
  readonly #masters: readonly (ShardAddress | undefined)[];
  /** Every master serving some slot. */
  readonly masters: ReadonlySet<ShardAddress>;

  private constructor(masters: readonly (ShardAddress | undefined)[]) {
    this.#masters = masters;
    this.masters = new Set(masters.filter((m): m is ShardAddress => m !== undefined));
  }

  /**
   * Reads a `CLUSTER SLOTS` reply (`[[start, end, [host, port, id, …], replicas…], …]`); a master
   * announced with no host (`''` or `'?'`) is on `seedHost`, the node that answered.
   * @throws {Error} when the reply is not of that shape.
   */
  static parse(reply: unknown, seedHost: string): ShardMap {
    if (!Array.isArray(reply)) throw new Error('CLUSTER SLOTS: not an array');
    const masters = new Array<ShardAddress | undefined>(CLUSTER_SLOTS).fill(undefined);
    for (const range of reply as unknown[]) {
      if (!Array.isArray(range) || range.length < 3 || !Array.isArray(range[2])) {
        throw new Error('CLUSTER SLOTS: a range without a master');
      }
      const [start, end] = [Number(range[0]), Number(range[1])];
      const [host, port] = [text(range[2][0]), Number(range[2][1])];
      if (!inSlots(start) || !inSlots(end) || start > end || !(port > 0 && port < 65_536)) {
        throw new Error(`CLUSTER SLOTS: a bad range ${start}-${end} on port ${port}`);
      }
      const address = `${host === '' || host === '?' ? seedHost : host}:${port}`;
      for (let slot = start; slot <= end; slot++) masters[slot] = address;
    }
    return new ShardMap(masters);
  }

  /** The master serving `key`'s slot; undefined when no master serves it (the cluster is down). */
  masterOf(key: string): ShardAddress | undefined {
    return this.#masters[calculateSlot(key)];
  }

  /** `keys`' indices grouped by the master of their slot; keys no master serves are left out. */
  group(keys: readonly string[]): Map<ShardAddress, number[]> {
    const shards = new Map<ShardAddress, number[]>();
    keys.forEach((key, index) => {
      const master = this.masterOf(key);
      if (master === undefined) return;
      const list = shards.get(master);
      if (list === undefined) shards.set(master, [index]);
      else list.push(index);
    });
    return shards;
  }
}

function inSlots(slot: number): boolean {
  return Number.isInteger(slot) && slot >= 0 && slot < CLUSTER_SLOTS;
}

function text(value: unknown): string {
  if (typeof value === 'string') return value;
  return Buffer.isBuffer(value) ? value.toString('utf8') : '';
}

/** `url` with its host and port replaced by `address`'s (credentials, db and scheme kept). */
export function urlAt(url: string, address: ShardAddress): string {
  const at = address.lastIndexOf(':');
  const parsed = new URL(url);
  const host = address.slice(0, at);
  parsed.hostname = host.includes(':') ? `[${host}]` : host;
  parsed.port = address.slice(at + 1);
  return parsed.href;
}
