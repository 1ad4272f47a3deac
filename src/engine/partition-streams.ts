/**
 * A cluster peer's partition streams as the hot path reads them (docs/CLUSTER.md, "Tailing a
 * cluster peer"): P streams `{p}{<tag>}:cdc` spread over the peer's masters. `XREAD` cannot name
 * keys of different slots and a blocking read per partition does not scale to 256, so each shard
 * is read on one bounded {@link StreamConnection} (the byte-bounded reader of issue 19), with one
 * non-blocking `XRANGE` per partition sent in one pipeline. The engine owns the
 * {@link PartitionSource} interface; {@link RedisPartitionSource} serves it from the peer's
 * cluster, through its {@link PeerLink} (breaker, metrics).
 */
import type { ResolvedPeer } from '../config/types.js';
import { MerkleReader } from '../store/merkle-reader.js';
import { partitionPrefix } from '../store/partitions.js';
import { AS_STRINGS } from '../store/redis-io.js';
import type { RawEntry } from './batch.js';
import { RespError, type ReplyBounds } from './bounded-resp.js';
import { describeError } from '../redis/connect.js';
import type { PeerLink } from './peer-link.js';
import { entriesOf, readable, replyBounds, type ReadBounds } from './peer-stream.js';
import { ShardMap, urlAt, type ShardAddress } from './shard-map.js';
import { StreamConnection } from './stream-connection.js';
import { parseStreamInfo, type StreamInfo } from './stream-gap.js';

/** Time a round may take before the shard's socket is presumed dead and replaced. */
const ROUND_DEADLINE_MS = 15_000;
/** The least share of `max_batch_bytes` one partition's read gets in a round. */
const MIN_SHARE_BYTES = 64 * 1024;
/**
 * `XINFO STREAM` replies: every figure is a number or a short id; the first and last entries'
 * values (which a peer fills) are kept to 1 KiB each and 64 KiB per entry, so a hostile peer's
 * stream cannot make a check hold its entries.
 */
const INFO_BOUNDS: ReplyBounds = {
  maxValueBytes: 1024,
  maxReplyBytes: Infinity,
  maxElementBytes: 64 * 1024,
  entryDepth: 1,
};

/** One partition's read in a round: its stream and the cursor to read after. */
export interface PartitionRead {
  readonly key: string;
  readonly cursor: string;
}

/** What one partition's read in a round brought. */
export type PartitionReply =
  /** Entries after the cursor (`cut`: the read met its byte share; more wait), `bytes` held. */
  | {
      readonly kind: 'entries';
      readonly entries: RawEntry[];
      readonly cut: boolean;
      readonly bytes: number;
    }
  /** The partition's slot is served by another master now: re-read the shard map. */
  | { readonly kind: 'moved' }
  /** The read failed for this partition alone; nothing of it was read. */
  | { readonly kind: 'error'; readonly error: string };

/** A cluster peer's partition streams. */
export interface PartitionSource {
  /** Waits until the peer can be read (connected, circuit closed); false once `signal` aborts. */
  ready(signal: AbortSignal): Promise<boolean>;
  /** The stream keys of the peer's partitions in tree order; undefined: it has no layout yet. */
  streams(): Promise<readonly string[] | undefined>;
  /** The shard map now (`CLUSTER SLOTS`). */
  shards(): Promise<ShardMap>;
  /**
   * One round on one shard: up to `count` entries after each read's cursor, in one pipeline.
   * The reads share `max_batch_bytes`: each keeps up to its share, and once the round's budget
   * is spent the later reads keep nothing (they are `cut`: read again next round), so a round
   * holds at most `max_batch_bytes` and one entry.
   * Rejects when the shard cannot be read at all.
   */
  read(
    shard: ShardAddress,
    reads: readonly PartitionRead[],
    count: number,
  ): Promise<PartitionReply[]>;
  /** Each stream's XINFO figures (undefined: no such stream; a string: why it was not read). */
  info(
    shard: ShardAddress,
    keys: readonly string[],
  ): Promise<(StreamInfo | undefined | { readonly error: string })[]>;
  /** Closes the shard connections. */
  close(): void;
}

/** {@link PartitionSource} over a cluster peer's Redis. */
export class RedisPartitionSource implements PartitionSource {
  /** One bounded connection per master, by address. */
  readonly #connections = new Map<ShardAddress, StreamConnection>();
  #closed = false;

  constructor(
    private readonly link: PeerLink,
    private readonly peer: ResolvedPeer,
    private readonly bounds: () => ReadBounds,
  ) {}

  ready(signal: AbortSignal): Promise<boolean> {
    return readable(this.link, signal);
  }

  async streams(): Promise<readonly string[] | undefined> {
    const layout = await this.link.run('layout', (client) =>
      MerkleReader.readLayout(client, this.peer.redisPrefix),
    );
    return layout?.tags.map((tag) => `${partitionPrefix(this.peer.redisPrefix, tag)}cdc`);
  }

  async shards(): Promise<ShardMap> {
    const seedHost = new URL(this.peer.redisUrl).hostname.replace(/^\[(.*)\]$/, '$1');
    const map = await this.link.run('cluster_slots', async (client) =>
      ShardMap.parse(await client.sendCommand(['CLUSTER', 'SLOTS'], AS_STRINGS), seedHost),
    );
    for (const [address, connection] of this.#connections) {
      // A master no longer serving anything (failed over, emptied by a reshard) is let go.
      if (!map.masters.has(address)) this.#drop(address, connection);
    }
    return map;
  }

  read(
    shard: ShardAddress,
    reads: readonly PartitionRead[],
    count: number,
  ): Promise<PartitionReply[]> {
    const bounds = this.bounds();
    const share = Math.max(MIN_SHARE_BYTES, Math.floor(bounds.maxBatchBytes / reads.length));
    const parse: ReplyBounds = {
      ...replyBounds({ maxItemBytes: bounds.maxItemBytes, maxBatchBytes: share }, 1),
      budget: { remaining: bounds.maxBatchBytes },
    };
    const xrange = (r: PartitionRead): string[] => [
      'XRANGE',
      r.key,
      `(${r.cursor}`,
      '+',
      'COUNT',
      String(count),
    ];
    return this.link.run('xrange', () =>
      this.#round(shard, async (connection) => {
        const replies = await Promise.all(
          reads.map((r) =>
            connection.send(xrange(r), parse).catch((error: unknown) => asError(error)),
          ),
        );
        return Promise.all(
          replies.map(async (reply, i): Promise<PartitionReply> => {
            if (!(reply instanceof Error)) {
              return {
                kind: 'entries',
                entries: entriesOf(reply.value, 1, bounds.maxItemBytes),
                cut: reply.cut,
                bytes: reply.keptBytes,
              };
            }
            const ask = /^ASK \d+ (\S+)/.exec(reply.message);
            if (ask !== null) return this.#readAsked(ask[1]!, xrange(reads[i]!), parse);
            if (/^MOVED /.test(reply.message)) return { kind: 'moved' };
            if (isConnectionLoss(reply)) throw reply;
            return { kind: 'error', error: describeError(reply) };
          }),
        );
      }),
    );
  }

  info(
    shard: ShardAddress,
    keys: readonly string[],
  ): Promise<(StreamInfo | undefined | { readonly error: string })[]> {
    return this.link.run('xinfo', () =>
      this.#round(shard, async (connection) => {
        const replies = await Promise.all(
          keys.map((key) =>
            connection
              .send(['XINFO', 'STREAM', key], INFO_BOUNDS)
              .catch((error: unknown) => asError(error)),
          ),
        );
        return replies.map((reply) => {
          if (!(reply instanceof Error)) return parseStreamInfo(reply.value);
          if (/no such key/i.test(reply.message)) return undefined;
          if (isConnectionLoss(reply)) throw reply;
          return { error: describeError(reply) };
        });
      }),
    );
  }

  close(): void {
    this.#closed = true;
    for (const connection of this.#connections.values()) connection.destroy();
    this.#connections.clear();
  }

  /** An `ASK` redirection, followed once: `ASKING` and the read on the node it names. */
  async #readAsked(
    address: ShardAddress,
    command: string[],
    parse: ReplyBounds,
  ): Promise<PartitionReply> {
    try {
      const connection = await this.#connection(address);
      const asking = connection.send(['ASKING']);
      const reply = await connection.send(command, parse);
      await asking;
      return {
        kind: 'entries',
        entries: entriesOf(reply.value, 1, this.bounds().maxItemBytes),
        cut: reply.cut,
        bytes: reply.keptBytes,
      };
    } catch (error) {
      // Asked again, or moved meanwhile: the next round reads it where the map then says.
      return /^(ASK|MOVED) /.test(describeError(error))
        ? { kind: 'moved' }
        : { kind: 'error', error: describeError(error) };
    }
  }

  /**
   * Runs `fn` on the shard's connection within {@link ROUND_DEADLINE_MS}: a round that outlives
   * it means a dead socket (a black-holed one never errors by itself), which is replaced.
   */
  async #round<T>(
    shard: ShardAddress,
    fn: (connection: StreamConnection) => Promise<T>,
  ): Promise<T> {
    const connection = await this.#connection(shard);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.#drop(shard, connection);
        reject(new Error(`a read of shard ${shard} did not return within ${ROUND_DEADLINE_MS} ms`));
      }, ROUND_DEADLINE_MS);
    });
    const run = fn(connection);
    run.catch(() => undefined);
    try {
      return await Promise.race([run, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The connection to `address`, connected (a first connect failing rejects: retried later). */
  async #connection(address: ShardAddress): Promise<StreamConnection> {
    if (this.#closed) throw new Error('the peer link is closed');
    let connection = this.#connections.get(address);
    if (connection === undefined) {
      connection = new StreamConnection({
        url: urlAt(this.peer.redisUrl, address),
        tls: this.peer.tls,
        name: 'replication-engine-reader',
      });
      this.#connections.set(address, connection);
    }
    if (!connection.isOpen) await connection.connect();
    if (!connection.isReady) throw new Error(`shard ${address} is reconnecting`);
    return connection;
  }

  #drop(address: ShardAddress, connection: StreamConnection): void {
    connection.destroy();
    if (this.#connections.get(address) === connection) this.#connections.delete(address);
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** The connection went (or the shard refuses every command for now), not the one command. */
function isConnectionLoss(error: Error): boolean {
  return !(error instanceof RespError) || /^(LOADING|CLUSTERDOWN|TRYAGAIN)\b/.test(error.message);
}
