/**
 * The query side of a peer whose Redis is a Redis Cluster (issue 22): one node-redis cluster
 * client, built by the `src/redis/` boundary, seeded by the peer's URL (the other shards
 * discovered, each connection with the URL's credentials and the peer's TLS), and a
 * {@link ClusterSender} over it that routes every command by its key and retries the cluster's
 * transient refusals. A peer link uses it in place of its single-instance query connection; the
 * cold path (MerkleReader, which finds the partitions from the peer's `store:layout`) and the
 * partition streams' XINFO go through it unchanged.
 */
import type { ResolvedPeer } from '../config/types.js';
import { createClusterConnection, type ClusterConnection } from '../redis/connect.js';
import type { ClusterSender } from '../redis/cluster-sender.js';
import { closeQuietly, reconnectDelay } from '../redis/connect.js';

/** What a cluster query connection reports. */
export interface PeerClusterEvents {
  readonly onError: (error: Error) => void;
  readonly onReady: () => void;
  readonly onEnd: () => void;
}

/** A cluster peer's query connection: connect, send (routed by key), close. */
export class PeerCluster {
  readonly #connection: ClusterConnection;

  constructor(peer: ResolvedPeer, events: PeerClusterEvents) {
    this.#connection = createClusterConnection({
      url: peer.redisUrl,
      tls: peer.tls,
      name: 'replication-engine-query',
      commandTimeoutMs: 15_000,
      reconnectDelay: (retries) => reconnectDelay(retries, 100, 5000),
    });
    const client = this.#connection.client;
    client.on('error', events.onError);
    client.on('node-error', events.onError);
    client.on('node-ready', events.onReady);
    client.on('node-disconnect', events.onEnd);
  }

  /** Commands to the peer's cluster, each routed to the shard of its key. */
  get sender(): ClusterSender {
    return this.#connection.sender;
  }

  /** Connecting or connected. */
  get isOpen(): boolean {
    return this.#connection.client.isOpen;
  }

  /** The slots were discovered: commands are routed. */
  get isReady(): boolean {
    return this.#connection.client.isReady;
  }

  /** Discovers the cluster from the seed URL; rejects when no node answers (the caller retries). */
  async connect(): Promise<void> {
    await this.#connection.client.connect();
  }

  /** Closes every shard connection, at once after `timeoutMs`; never throws. */
  close(timeoutMs = 500): Promise<void> {
    return closeQuietly(this.#connection.client, timeoutMs);
  }
}
