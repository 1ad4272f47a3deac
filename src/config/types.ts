/**
 * The resolved configuration the code runs on: frozen, complete, durations in `…Ms`.
 * User input (`ReplicationOptions`, YAML snake_case) is turned into these by `resolveConfig`.
 */

/** TLS settings for a `rediss://` connection. */
export interface ResolvedTls {
  /** PEM CA bundle (file contents); system CAs when absent. */
  readonly ca?: Buffer;
  /** PEM client certificate, for mTLS. */
  readonly cert?: Buffer;
  /** PEM client key, for mTLS. */
  readonly key?: Buffer;
  /** Verify the server certificate. @default true */
  readonly rejectUnauthorized: boolean;
  /** Server name for SNI and verification, when it differs from the URL host. */
  readonly servername?: string;
}

/** One peer of the mesh. */
export interface ResolvedPeer {
  readonly nodeId: string;
  /** `redis://` or `rediss://`, possibly with credentials: never log it, use `displayUrl`. */
  readonly redisUrl: string;
  /** `redisUrl` with any password replaced by `***`. */
  readonly displayUrl: string;
  /** Key prefix of the peer's store. @default '' */
  readonly redisPrefix: string;
  /** A Redis Cluster (true), a single instance (false), or what the server reports (absent). */
  readonly cluster?: boolean;
  /** Lower syncs first. @default 0 */
  readonly priority: number;
  /** @default 5 */
  readonly circuitFailureThreshold: number;
  /** @default 30_000 */
  readonly circuitResetTimeoutMs: number;
  readonly tls?: ResolvedTls;
}

export interface ResolvedHotPath {
  readonly enabled: boolean;
  readonly batchSize: number;
  readonly blockTimeoutMs: number;
  readonly adaptiveBatchSize: boolean;
  readonly minBatchSize: number;
  readonly maxBatchSize: number;
  /** Bytes one read of a peer's stream may hold (at least one entry). */
  readonly maxBatchBytes: number;
  readonly rateLimitEnabled: boolean;
  readonly rateLimitPerSec: number;
  readonly rateLimitBurst: number;
}

export interface ResolvedColdPath {
  readonly enabled: boolean;
  readonly intervalMs: number;
  readonly maxItemsPerCycle: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
}

export interface ResolvedPeerHealth {
  readonly enabled: boolean;
  readonly pingIntervalMs: number;
  readonly idleThresholdMs: number;
}

export interface ResolvedSlo {
  readonly maxStreamReadLatencyMs: number;
  readonly maxPeerOpLatencyMs: number;
  readonly maxBatchFlushLatencyMs: number;
  readonly maxReplicationLagMs: number;
}

export interface ResolvedCursor {
  readonly sqlitePath: string;
  readonly walMode: boolean;
}

/** The seed's `replication:` section. */
export interface ResolvedReplication {
  readonly localNodeId: string;
  readonly hotPath: ResolvedHotPath;
  readonly coldPath: ResolvedColdPath;
  readonly peerHealth: ResolvedPeerHealth;
  readonly slo: ResolvedSlo;
  readonly peers: readonly ResolvedPeer[];
  readonly cursor: ResolvedCursor;
}

/** This node's own Redis (`local:`). */
export interface ResolvedLocal {
  /** @default 'redis://127.0.0.1:6379' */
  readonly redisUrl: string;
  readonly displayUrl: string;
  /** @default '' */
  readonly redisPrefix: string;
  /** A Redis Cluster (true), a single instance (false), or what the server reports (absent). */
  readonly cluster?: boolean;
  readonly tls?: ResolvedTls;
}

/** The node-local store (`store:`). */
export interface ResolvedStore {
  /** @default 100_000 */
  readonly cdcMaxlen: number;
  /** @default 7 days */
  readonly tombstoneTtlMs: number;
  /**
   * Append every change the store applies (local writes, replicated records, purges) to its
   * change feed stream, which `watch` reads (docs/PROTOCOL.md §10). @default true
   */
  readonly changeFeed: boolean;
  /** About how many of the latest changes the change feed keeps (MINID ~). @default 100_000 */
  readonly changeFeedMaxlen: number;
  /** Re-emit replicated applies to the local stream, keeping their origin. @default false */
  readonly relay: boolean;
  /** @default 64 MiB */
  readonly maxItemBytes: number;
  /** Record conflicts in a capped stream. @default false */
  readonly conflictLog: boolean;
  /** `shouldAcceptWrites()` turns false above this Redis `used_memory`; 0 disables. @default 0 */
  readonly maxMemoryBytes: number;
  /**
   * How far ahead of the local clock a replicated record's `updatedAt` may be; one further ahead
   * is held back, and a local write refuses to build on one. @default 5 minutes
   */
  readonly maxClockSkewMs: number;
  /** Partitions of a Redis Cluster store created now (docs/PROTOCOL.md §9). @default 16 */
  readonly partitions: 16 | 256;
  /**
   * Replicas that must confirm a write (`WAIT`) before it is acknowledged, and before the hot path
   * commits a cursor past an applied batch; 0 = none. @default 0
   */
  readonly waitReplicas: number;
  /** How long a write waits for {@link waitReplicas}, ms. @default 1000 */
  readonly waitTimeoutMs: number;
}

/** Admin HTTP server (`http:`). */
export interface ResolvedHttp {
  readonly enabled: boolean;
  /** @default '127.0.0.1' */
  readonly host: string;
  /** @default 9090 */
  readonly port: number;
  /** Required for admin POST endpoints when `host` is not loopback. */
  readonly token?: string;
}

/** Everything a daemon runs on. */
export interface ResolvedConfig {
  readonly replication: ResolvedReplication;
  readonly local: ResolvedLocal;
  readonly store: ResolvedStore;
  readonly http: ResolvedHttp;
}
