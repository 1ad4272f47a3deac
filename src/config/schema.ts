/**
 * The YAML config file's shape, as zod schemas. Every option carries its documentation in
 * {@link configDocs}, from which docs/CONFIG.md is generated, so the docs cannot drift.
 *
 * This validates shapes, types and ranges; rules that span fields (batch-size order, duplicate
 * peers, URLs, TLS files) live in `resolve.ts`, which also turns the result into `Resolved*`.
 */
import { z } from 'zod';
import {
  MAX_ITEM_BYTES_LIMIT,
  bool,
  duration,
  int,
  nodeId,
  option,
  optionalStr,
  section,
  size,
  str,
} from './schema-fields.js';

export { configDocs, MAX_ITEM_BYTES_LIMIT, unwrapSchema } from './schema-fields.js';
export type { OptionDoc, SchemaDoc, SectionDoc } from './schema-fields.js';

function tlsSchema(what: string) {
  return section(
    z
      .strictObject({
        ca_file: optionalStr(
          'PEM file of the CA(s) that sign the server certificate; the system CAs when absent.',
        ),
        cert_file: optionalStr('PEM client certificate, for mutual TLS (needs `key_file`).'),
        key_file: optionalStr('PEM client private key, for mutual TLS (needs `cert_file`).'),
        reject_unauthorized: bool(
          true,
          'Verify the server certificate. Turn off only for testing: it allows interception.',
        ),
        servername: optionalStr(
          'Server name for SNI and certificate verification, when it differs from the URL host.',
        ),
      })
      .optional(),
    `TLS for ${what}, used with a \`rediss://\` URL (which turns TLS on even without this ` +
      'section). Relative file paths are resolved against the directory of the config file.',
  );
}

const hotPathSchema = section(
  z
    .strictObject({
      enabled: bool(true, "Tail every peer's CDC stream (`cdc`)."),
      batch_size: int(100, 'Entries per XREAD (the initial size when adaptive).', { min: 1 }),
      block_timeout: duration('5s', 's', 'How long one XREAD BLOCK waits for new entries.'),
      adaptive_batch_size: bool(
        false,
        'Size batches by AIMD between `min_batch_size` and `max_batch_size`.',
      ),
      min_batch_size: int(50, 'Smallest batch size (AIMD); at most `batch_size`.', { min: 1 }),
      max_batch_size: int(1000, 'Largest batch size (AIMD); at least `batch_size`.', { min: 1 }),
      max_batch_bytes: size(
        '16MiB',
        'Bytes one read of a peer\'s stream may hold: a read ends at the entry that passes it (at least one entry) and the rest is read next; with `store.max_item_bytes` it bounds what a peer can make this node hold (docs/OPERATIONS.md "Memory").',
        64 * 1024,
        1024 * 1024 * 1024,
      ),
      rate_limit_enabled: bool(
        false,
        "Limit the node's total apply rate, all peers together (prevents a thundering herd).",
      ),
      rate_limit_per_sec: option(
        z.number().positive().default(10_000),
        'number',
        '10000',
        'Sustained events per second when rate limiting, for all peers together (one bucket).',
      ),
      rate_limit_burst: int(1000, 'Events allowed in a burst above the sustained rate.', {
        min: 1,
      }),
    })
    .prefault({}),
  "The hot path: tailing peers' CDC streams.",
);

const coldPathSchema = section(
  z
    .strictObject({
      enabled: bool(true, 'Run Merkle anti-entropy repairs.'),
      interval_sec: duration(60, 's', 'Time between repair cycles.'),
      max_items_per_cycle: int(1000, 'Records repaired per peer per cycle, at most.', { min: 1 }),
      backoff_base_sec: duration(5, 's', 'First backoff after a failed cycle with a peer.'),
      backoff_max_sec: duration(300, 's', 'Longest backoff; at least `backoff_base_sec`.'),
    })
    .prefault({}),
  'The cold path: periodic Merkle comparison and repair with each peer.',
);

const peerHealthSchema = section(
  z
    .strictObject({
      enabled: bool(true, 'Ping idle peers.'),
      ping_interval_sec: duration(30, 's', 'Time between pings of an idle peer.'),
      idle_threshold_sec: duration(60, 's', 'Time without traffic after which a peer is idle.'),
    })
    .prefault({}),
  'Health checks of idle peers.',
);

const sloSchema = section(
  z
    .strictObject({
      max_stream_read_latency_ms: duration(100, 'ms', 'Warn when an XREAD takes longer.'),
      max_peer_op_latency_ms: duration(500, 'ms', 'Warn when a peer operation takes longer.'),
      max_batch_flush_latency_ms: duration(200, 'ms', 'Warn when applying a batch takes longer.'),
      max_replication_lag_sec: duration(
        30,
        's',
        "Warn when a peer's replication lag exceeds this.",
      ),
    })
    .prefault({}),
  'Service-level thresholds: exceeding one logs a warning and counts it.',
);

const peerSchema = section(
  z.strictObject({
    node_id: nodeId("The peer's `local_node_id`; unique among peers."),
    redis_url: option(
      z.string().min(1),
      'URL',
      'required',
      "The peer's Redis: `redis://[user:password@]host[:port][/db]`, or `rediss://` for TLS.",
    ),
    redis_prefix: str('', "Key prefix of the peer's store."),
    cluster: option(
      z.boolean().optional(),
      'boolean',
      'detected',
      "Use the peer's `redis_url` as a Redis Cluster (`true`) or a single instance (`false`); by default what the server reports (`cluster_enabled`). A cluster peer's partition streams are tailed shard by shard (docs/CLUSTER.md).",
    ),
    priority: int(0, 'Sync order: lower syncs first.', {}),
    circuit_failure_threshold: int(5, 'Consecutive failures before the circuit opens.', {
      min: 1,
    }),
    circuit_reset_timeout_sec: duration(30, 's', 'Time an open circuit waits before a retry.'),
    tls: tlsSchema('this peer'),
  }),
  'The nodes this node replicates from (a list).',
);

const cursorSchema = section(
  z
    .strictObject({
      sqlite_path: str(
        'replication_cursors.db',
        'SQLite file of the per-peer stream cursors (relative to the working directory).',
        1,
      ),
      wal_mode: bool(true, 'Use SQLite WAL mode.'),
    })
    .prefault({}),
  'Where the per-peer stream cursors are persisted.',
);

const replicationSchema = section(
  z.strictObject({
    local_node_id: nodeId("This node's unique identifier, e.g. `uk.node.london-1`."),
    settings: section(
      z
        .strictObject({
          hot_path: hotPathSchema,
          cold_path: coldPathSchema,
          peer_health: peerHealthSchema,
          slo: sloSchema,
        })
        .prefault({}),
      'Engine settings.',
    ),
    peers: option(
      z.array(peerSchema).default([]),
      'list',
      '[]',
      'The peers; see `replication.peers[]`.',
    ),
    cursor: cursorSchema,
  }),
  'The replication engine, exactly as in the Rust replication-engine.',
);

const localSchema = section(
  z
    .strictObject({
      redis_url: option(
        z.string().min(1).default('redis://127.0.0.1:6379'),
        'URL',
        '"redis://127.0.0.1:6379"',
        "This node's Redis: `redis://[user:password@]host[:port][/db]`, or `rediss://` for TLS.",
      ),
      redis_prefix: str('', "Key prefix of this node's store."),
      cluster: option(
        z.boolean().optional(),
        'boolean',
        'detected',
        'Use `redis_url` as a Redis Cluster (`true`) or a single instance (`false`); by default what the server reports (`cluster_enabled`). A cluster store is partitioned (docs/PROTOCOL.md §9).',
      ),
      tls: tlsSchema("this node's Redis"),
    })
    .prefault({}),
  "This node's own Redis, where its store lives.",
);

const storeSchema = section(
  z
    .strictObject({
      cdc_maxlen: int(100_000, 'Approximate length the `cdc` stream is trimmed to (MAXLEN ~).', {
        min: 1,
      }),
      change_feed: bool(
        true,
        'Append every change the store applies (local writes, replicated records, tombstone purges) to the capped `changes` stream, the change feed that `watch` reads (docs/PROTOCOL.md §10). Off: `watch` is refused, and a replicated record costs Redis ~6% fewer instructions.',
      ),
      change_feed_maxlen: int(
        100_000,
        'About how many of the latest changes the `changes` stream keeps (trimmed with MINID ~ by change ordinal); a watcher that falls further behind gets a resync marker.',
        { min: 1 },
      ),
      tombstone_ttl: duration(
        '7d',
        's',
        'How long a tombstone is kept at least; it is purged only once every configured peer has also acknowledged it (docs/PROTOCOL.md §6). Longer than `cold_path.interval_sec`.',
      ),
      relay: bool(
        false,
        'Re-emit replicated writes to the local `cdc` stream (chains, partial meshes).',
      ),
      max_item_bytes: size(
        '64MiB',
        'Largest document, after decompression; larger entries are rejected.',
        1,
        MAX_ITEM_BYTES_LIMIT,
      ),
      conflict_log: bool(
        false,
        'Record every conflict (key, both clocks, winner) in a capped stream.',
      ),
      max_memory_bytes: size(
        0,
        'Pause replication while Redis `used_memory` is above this; 0 disables.',
        0,
        Number.MAX_SAFE_INTEGER,
      ),
      max_clock_skew: duration(
        '5m',
        's',
        'A replicated record dated further ahead of the local clock is held back (quarantined, applied by a later repair once within the bound); a local write on top of one is refused.',
      ),
      wait_replicas: int(
        0,
        'Acknowledge a local write only once this many replicas of the Redis (master) that took it hold it (`WAIT`); one not confirmed within `wait_timeout` is reported as written but not durable. The hot path also waits before it commits a cursor. 0: acknowledged when the master has it.',
        { min: 0, max: 16 },
      ),
      wait_timeout: duration('1s', 's', 'How long a write waits for `wait_replicas` replicas.'),
      partitions: option(
        z.union([z.literal(16), z.literal(256)]).default(16),
        'integer',
        '16',
        'Partitions of a Redis Cluster store created now, 16 or 256 (a store keeps the count it was created with; docs/PROTOCOL.md §9). Unused on a single instance.',
      ),
    })
    .prefault({}),
  'The node-local store.',
);

const httpSchema = section(
  z
    .strictObject({
      enabled: bool(true, 'Serve `/metrics`, `/health`, `/ready` and the admin API.'),
      host: str('127.0.0.1', 'Address to bind.', 1),
      port: int(9090, 'Port to bind (0: any free port).', { min: 0, max: 65535 }),
      token: option(
        z.string().optional(),
        'string',
        'none',
        'Token the admin write endpoints require; without one they only answer when `host` is loopback.',
      ),
    })
    .prefault({}),
  'The HTTP server: metrics, health and the admin API.',
);

/** The whole config file. */
export const configSchema = z.strictObject({
  replication: replicationSchema,
  local: localSchema,
  store: storeSchema,
  http: httpSchema,
});

/** A config as written by hand or built in code (YAML snake_case; durations as strings or numbers). */
export type ConfigOptions = z.input<typeof configSchema>;

/** One entry of `replication.peers`, as written. */
export type PeerOptions = z.input<typeof peerSchema>;

/** What {@link configSchema} produces: complete, durations in milliseconds, still snake_case. */
export type ParsedConfig = z.output<typeof configSchema>;
