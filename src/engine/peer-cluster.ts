/**
 * The query side of a peer whose Redis is a Redis Cluster (issue 22), parsed within bounds as a
 * single-instance peer's is (issue 19): one {@link QueryConnection} to the seed URL, which finds
 * the shards (`CLUSTER SLOTS`), and one to each master a command is routed to, by the slot of its
 * key (keyless commands go to any connection that is ready). `MOVED` re-reads the map and sends
 * the command where the cluster said; `ASK` sends it there once after `ASKING`; `TRYAGAIN` and
 * `CLUSTERDOWN` are retried for up to 10 s. A peer link uses it in place of its single-instance
 * query connection; the cold path (MerkleReader, which finds the partitions from the peer's
 * `store:layout`) and the partition streams' XINFO go through it unchanged.
 */
import type { RedisArgument } from '@redis/client';
import type { ResolvedPeer } from '../config/types.js';
import { isTransientClusterError, routingKey } from '../redis/cluster-sender.js';
import { AS_STRINGS, type CommandSender, type SendOptions } from '../store/redis-io.js';
import { QueryConnection, type QueryCommand } from './query-connection.js';
import { ShardMap, urlAt, type ShardAddress } from './shard-map.js';

/** What a cluster query connection reports. */
export interface PeerClusterEvents {
  readonly onError: (error: Error) => void;
  readonly onReady: () => void;
  readonly onEnd: () => void;
}

/** Redirections (MOVED, ASK) one command follows before it fails. */
const MAX_REDIRECTS = 5;
/** How long `TRYAGAIN` and `CLUSTERDOWN` are retried. */
const RETRY_FOR_MS = 10_000;
const COMMAND_TIMEOUT_MS = 15_000;

/** A connection to one master, and its first connect (awaited by the commands sent to it). */
interface Shard {
  readonly connection: QueryConnection;
  readonly connected: Promise<void>;
}

/** A cluster peer's query connections: connect, send (routed by key), close. */
export class PeerCluster {
  readonly #peer: ResolvedPeer;
  readonly #events: PeerClusterEvents;
  readonly #onOversized: (command: QueryCommand, values: number) => void;
  readonly #seed: QueryConnection;
  readonly #seedHost: string;
  readonly #shards = new Map<ShardAddress, Shard>();
  #map: ShardMap | undefined;
  #open = false;
  #closed = false;
  /** Commands to the peer's cluster, each routed to the shard of its key. */
  readonly sender: CommandSender = {
    sendCommand: <T>(args: readonly RedisArgument[], options?: SendOptions) =>
      this.#send<T>(args, options),
  };

  constructor(
    peer: ResolvedPeer,
    events: PeerClusterEvents,
    onOversized: (command: QueryCommand, values: number) => void,
  ) {
    this.#peer = peer;
    this.#events = events;
    this.#onOversized = onOversized;
    this.#seedHost = new URL(peer.redisUrl).hostname.replace(/^\[(.*)\]$/, '$1');
    this.#seed = this.#newConnection(peer.redisUrl);
  }

  /** Connecting or connected. */
  get isOpen(): boolean {
    return this.#open;
  }

  /** The shards are known and a connection answers: commands are routed. */
  get isReady(): boolean {
    return (
      this.#map !== undefined &&
      (this.#seed.isReady || [...this.#shards.values()].some((s) => s.connection.isReady))
    );
  }

  /** Connects to the seed and reads the shard map; rejects when it cannot (the caller retries). */
  async connect(): Promise<void> {
    if (this.#closed) throw new Error('the connection was closed');
    this.#open = true;
    try {
      if (!this.#seed.isOpen) await this.#seed.connect();
      await this.#readMap();
    } catch (error) {
      this.#open = this.#seed.isOpen;
      throw error;
    }
    this.#events.onReady();
  }

  /** Closes every connection at once; never throws. */
  close(): Promise<void> {
    this.#closed = true;
    this.#open = false;
    this.#seed.destroy();
    for (const shard of this.#shards.values()) shard.connection.destroy();
    this.#shards.clear();
    return Promise.resolve();
  }

  #newConnection(url: string): QueryConnection {
    return new QueryConnection({
      url,
      tls: this.#peer.tls,
      name: 'replication-engine-query',
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      onOversized: this.#onOversized,
      onError: this.#events.onError,
      onEnd: this.#events.onEnd,
    });
  }

  /** Any connection that is ready (the seed first): for keyless commands and the map. */
  #anyReady(): QueryConnection {
    if (this.#seed.isReady) return this.#seed;
    for (const shard of this.#shards.values()) {
      if (shard.connection.isReady) return shard.connection;
    }
    return this.#seed;
  }

  /** Reads the shard map; masters that serve nothing any more are let go. */
  async #readMap(): Promise<void> {
    const reply = await this.#anyReady().sendCommand(['CLUSTER', 'SLOTS'], AS_STRINGS);
    const map = ShardMap.parse(reply, this.#seedHost);
    this.#map = map;
    for (const [address, shard] of this.#shards) {
      if (!map.masters.has(address)) {
        shard.connection.destroy();
        this.#shards.delete(address);
      }
    }
  }

  /** The connection to the master at `address`, connected on first use. */
  async #shard(address: ShardAddress): Promise<QueryConnection> {
    let shard = this.#shards.get(address);
    if (shard === undefined) {
      const connection = this.#newConnection(urlAt(this.#peer.redisUrl, address));
      shard = { connection, connected: connection.connect() };
      this.#shards.set(address, shard);
    }
    try {
      await shard.connected;
    } catch (error) {
      // Not reachable now: the next command to it connects again.
      if (this.#shards.get(address) === shard) this.#shards.delete(address);
      shard.connection.destroy();
      throw error;
    }
    return shard.connection;
  }

  /** `host:port` of a redirection's target (a host left out is the seed's, as in CLUSTER SLOTS). */
  #address(target: string): ShardAddress {
    return target.startsWith(':') ? `${this.#seedHost}${target}` : target;
  }

  async #send<T>(args: readonly RedisArgument[], options?: SendOptions): Promise<T> {
    if (this.#closed) throw new Error('the connection was closed');
    const key = routingKey(args);
    let address: ShardAddress | undefined =
      key === undefined ? undefined : this.#map?.masterOf(String(key));
    let asking = false;
    const deadline = Date.now() + RETRY_FOR_MS;
    for (let redirects = 0, attempt = 0; ; attempt++) {
      const connection = address === undefined ? this.#anyReady() : await this.#shard(address);
      try {
        // ASKING is good for the next command on the same connection: sent in one pipeline.
        const asked = asking ? connection.sendCommand(['ASKING']) : undefined;
        asked?.catch(() => undefined);
        asking = false;
        return await connection.sendCommand<T>(args, options);
      } catch (error) {
        const message = error instanceof Error ? error.message : '';
        const redirect = /^(MOVED|ASK) \d+ (\S+)$/.exec(message);
        if (redirect !== null && redirects < MAX_REDIRECTS) {
          redirects += 1;
          address = this.#address(redirect[2]!);
          if (redirect[1] === 'ASK') asking = true;
          else void this.#readMap().catch(() => undefined);
          continue;
        }
        if (!isTransientClusterError(error) || Date.now() >= deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, Math.min(500, 20 * 2 ** attempt)));
      }
    }
  }
}
