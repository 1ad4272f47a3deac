/**
 * A {@link CommandSender} over a Redis Cluster client: each raw command is routed to the shard of
 * its first key (what the store and the reader send name their keys in the usual places), and the
 * cluster's transient refusals are retried. node-redis already follows MOVED and ASK; here a
 * command refused with TRYAGAIN (a multi-key command mid-migration) or CLUSTERDOWN (a failover in
 * progress) is sent again with backoff until `retryForMs` has passed, never dropped silently.
 */
import type { RedisArgument, TypeMapping } from '@redis/client';
import calculateSlot from 'cluster-key-slot';
import type { CommandSender } from '../store/redis-io.js';

/** Options of {@link ClusterSender}. */
export interface ClusterSenderOptions {
  /** How long TRYAGAIN / CLUSTERDOWN refusals are retried before the error is returned. @default 10_000 */
  readonly retryForMs?: number;
}

/** Commands whose first key is not `args[1]`. */
const KEY_AT: Readonly<
  Record<string, (args: readonly RedisArgument[]) => RedisArgument | undefined>
> = {
  EVALSHA: scriptKey,
  EVALSHA_RO: scriptKey,
  EVAL: scriptKey,
  EVAL_RO: scriptKey,
  XREAD: streamsKey,
  PING: () => undefined,
  TIME: () => undefined,
  INFO: () => undefined,
};

function scriptKey(args: readonly RedisArgument[]): RedisArgument | undefined {
  return Number(String(args[2])) > 0 ? args[3] : undefined;
}

function streamsKey(args: readonly RedisArgument[]): RedisArgument | undefined {
  const at = args.findIndex((a) => String(a).toUpperCase() === 'STREAMS');
  return at < 0 ? undefined : args[at + 1];
}

/** The key a command is routed by: undefined for a keyless one (any shard answers it). */
export function routingKey(args: readonly RedisArgument[]): RedisArgument | undefined {
  const name = String(args[0]).toUpperCase();
  const at = KEY_AT[name];
  return at === undefined ? args[1] : at(args);
}

/** True for a refusal the cluster lifts by itself soon: retry, do not fail. */
export function isTransientClusterError(error: unknown): boolean {
  return error instanceof Error && /^(TRYAGAIN|CLUSTERDOWN)\b/.test(error.message);
}

/** The slice of node-redis's `RedisCluster` this module uses. */
export interface ClusterClient<Node = unknown> {
  sendCommand<T>(
    firstKey: RedisArgument | undefined,
    isReadonly: boolean | undefined,
    args: RedisArgument[],
    options?: { typeMapping?: TypeMapping },
  ): Promise<T>;
  /** The shards serving each slot, as last discovered. */
  readonly slots: readonly ({ readonly master: Node } | undefined)[];
  /** The connection to one node. */
  nodeClient(node: Node): Promise<{ sendCommand(args: RedisArgument[]): Promise<unknown> }>;
}

/** Sends raw commands through a cluster client, routed by their first key. */
export class ClusterSender implements CommandSender {
  readonly #retryForMs: number;

  constructor(
    readonly cluster: ClusterClient,
    options: ClusterSenderOptions = {},
  ) {
    this.#retryForMs = options.retryForMs ?? 10_000;
  }

  /**
   * Sends a keyless command to the master of `key`'s slot only, on the connection that writes
   * there, bypassing node-redis's request policy (which sends `WAIT` to every master and keeps
   * the least answer, whatever each of them wrote).
   */
  async sendToMasterOf(key: string, args: readonly RedisArgument[]): Promise<unknown> {
    const master = this.cluster.slots[calculateSlot(key)]?.master;
    if (master === undefined) throw new Error(`CLUSTERDOWN no master known for the slot of ${key}`);
    return (await this.cluster.nodeClient(master)).sendCommand([...args]);
  }

  /**
   * The master serving `key`'s slot as last discovered (an opaque identity: two keys on one
   * shard get the same one), or undefined while no master is known.
   */
  shardOf(key: string): unknown {
    return this.cluster.slots[calculateSlot(key)]?.master;
  }

  async sendCommand<T = unknown>(
    args: readonly RedisArgument[],
    options?: { typeMapping?: TypeMapping },
  ): Promise<T> {
    const key = routingKey(args);
    const deadline = Date.now() + this.#retryForMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.cluster.sendCommand<T>(key, undefined, [...args], options);
      } catch (error) {
        if (!isTransientClusterError(error) || Date.now() >= deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, Math.min(500, 20 * 2 ** attempt)));
      }
    }
  }
}
