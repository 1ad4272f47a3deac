/**
 * The metadata of every Prometheus metric the engine exposes: name, type, labels, meaning.
 * `createMetrics` builds the prom-client objects from it and docs/METRICS.md is generated from it,
 * so the code and the documentation cannot drift apart.
 */

/** A Prometheus metric type, as prom-client names it. */
export type MetricType = 'counter' | 'gauge' | 'histogram';

/** Where a metric name comes from. */
export type MetricOrigin = 'readme' | 'rust' | 'ours';

/**
 * A metric computed at scrape time from another one, so that two names the seed uses for one fact
 * can never disagree. Its own `inc`/`set`/`observe` calls are overwritten at the next scrape.
 */
export interface DerivedFrom {
  /** The metric it is computed from. */
  readonly from: string;
  /** Use only the `_count` series of a source histogram. */
  readonly sample?: 'count';
  /** Use only the source series with these label values. */
  readonly where?: Readonly<Record<string, string>>;
  /** Multiply every source value by this. @default 1 */
  readonly scale?: number;
  /** Count the source series whose value is non-zero instead of summing them. */
  readonly countNonZero?: boolean;
}

/** One metric. */
export interface MetricDefinition {
  readonly name: string;
  readonly type: MetricType;
  readonly labels: readonly string[];
  /** One line, for `# HELP` and the doc. */
  readonly help: string;
  readonly section: string;
  readonly origin: MetricOrigin;
  readonly buckets?: readonly number[];
  readonly derived?: DerivedFrom;
  /**
   * Every value each label other than `peer_id` may take. A label left out takes open values
   * (described in `help`); a test checks that the code emits no other value.
   */
  readonly labelValues?: Readonly<Record<string, readonly string[]>>;
}

/** `def.help` followed by the values of each enumerated label: `… (state: closed|half_open|open)`. */
export function metricHelp(def: MetricDefinition): string {
  const values = Object.entries(def.labelValues ?? {}).map(
    ([label, allowed]) => `${label}: ${allowed.join('|')}`,
  );
  return values.length === 0 ? def.help : `${def.help} (${values.join('; ')})`;
}

/**
 * The commands of a peer's query connection, as `replication_peer_oversized_replies_total` labels
 * them (engine/query-connection.ts chooses each one's bounds; `other` for any not listed).
 */
export const QUERY_COMMANDS = [
  'get',
  'getrange',
  'hget',
  'hmget',
  'hgetall',
  'hlen',
  'hrandfield',
  'hscan',
  'info',
  'ping',
  'strlen',
  'time',
  'xinfo',
  'xlen',
  'xrange',
  'other',
] as const;

/** Latency of Redis calls and local work, 0.5 ms to 10 s (an XREAD may block for seconds). */
export const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;
/** End-to-end replication latency, 1 ms to 60 s. */
export const APPLY_LATENCY_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
] as const;
/** A cold-path repair cycle, 10 ms to 10 min. */
export const REPAIR_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600] as const;
/** Events per flushed batch. */
export const BATCH_SIZE_BUCKETS = [
  1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
] as const;
/** Latency of an SLO violation, in milliseconds. */
export const SLO_MS_BUCKETS = [
  50, 100, 200, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
] as const;

/** Every metric, grouped by section; the order is the doc's. */
export const METRIC_DEFINITIONS = [
  // Hot path
  {
    name: 'replication_cdc_events_read_total',
    type: 'counter',
    labels: ['peer_id'],
    help: "CDC events read from the peer's stream that parsed and verified (rejected entries excluded)",
    section: 'Hot path',
    origin: 'readme',
  },
  {
    name: 'replication_cdc_events_applied_total',
    type: 'counter',
    labels: ['peer_id'],
    help: 'Events applied to the local store (they won last-writer-wins)',
    section: 'Hot path',
    origin: 'readme',
  },
  {
    name: 'replication_cdc_events_deduped_total',
    type: 'counter',
    labels: ['peer_id'],
    help: 'Events that changed nothing: the local record was already current or newer',
    section: 'Hot path',
    origin: 'readme',
  },
  {
    name: 'replication_conflicts_total',
    type: 'counter',
    labels: ['peer_id'],
    help: 'Replicated records that lost last-writer-wins against a different local record',
    section: 'Hot path',
    origin: 'ours',
  },
  {
    name: 'replication_dead_lettered_total',
    type: 'counter',
    labels: ['peer_id', 'reason'],
    help: 'Stream entries that failed to parse, decompress or verify, copied to dlq:<peer>',
    labelValues: {
      reason: [
        'empty',
        'missing_op',
        'unknown_op',
        'missing_key',
        'bad_key',
        'missing_data',
        'bad_zstd',
        'too_large',
        'hash_mismatch',
        'bad_meta',
        'bad_field',
        'bad_id',
      ],
    },
    section: 'Hot path',
    origin: 'ours',
  },
  {
    name: 'replication_clock_skew_rejected_total',
    type: 'counter',
    labels: ['peer_id'],
    help: 'Replicated records held back (hot or cold path): dated more than store.max_clock_skew ahead of the local clock',
    section: 'Hot path',
    origin: 'ours',
  },
  {
    name: 'replication_apply_latency_seconds',
    type: 'histogram',
    labels: ['peer_id'],
    help: "Apply time minus the event's updated_at: the end-to-end replication latency",
    section: 'Hot path',
    origin: 'ours',
    buckets: APPLY_LATENCY_BUCKETS,
  },
  {
    name: 'replication_event_processing_duration_seconds',
    type: 'histogram',
    labels: ['peer_id'],
    help: 'Time to parse, verify and decompress one stream entry',
    section: 'Hot path',
    origin: 'rust',
    buckets: LATENCY_BUCKETS,
  },
  {
    name: 'replication_lag_ms',
    type: 'gauge',
    labels: ['peer_id'],
    help: "Cursor lag behind the peer's stream head: age of the oldest entry after the committed cursor (its stream id time against this node's clock), in milliseconds; 0 when none waits",
    section: 'Hot path',
    origin: 'readme',
  },
  {
    name: 'replication_lag_seconds',
    type: 'gauge',
    labels: ['peer_id'],
    help: 'replication_lag_ms in seconds',
    section: 'Hot path',
    origin: 'rust',
    derived: { from: 'replication_lag_ms', scale: 0.001 },
  },
  {
    name: 'replication_lag_events',
    type: 'gauge',
    labels: ['peer_id'],
    help: "Entries of the peer's stream after the committed cursor, paused or failing included (exact from entries-added once known, else estimated)",
    section: 'Hot path',
    origin: 'readme',
  },
  {
    name: 'replication_adaptive_batch_size',
    type: 'gauge',
    labels: ['peer_id'],
    help: 'Current XREAD COUNT of the peer tailer (AIMD-adjusted when adaptive_batch_size is on)',
    section: 'Hot path',
    origin: 'rust',
  },
  {
    name: 'replication_backpressure_pauses_total',
    type: 'counter',
    labels: ['peer_id'],
    help: 'Times the tailer paused because the local store refused writes (shouldAcceptWrites false)',
    section: 'Hot path',
    origin: 'readme',
  },
  // Batches
  {
    name: 'replication_batch_flush_total',
    type: 'counter',
    labels: ['peer_id'],
    help: 'Batch flushes to the local store',
    section: 'Batches',
    origin: 'readme',
    derived: { from: 'replication_batch_flush_duration_seconds', sample: 'count' },
  },
  {
    name: 'replication_batch_flush_duration_seconds',
    type: 'histogram',
    labels: ['peer_id'],
    help: 'Time to apply one batch to the local store and persist its cursor',
    section: 'Batches',
    origin: 'readme',
    buckets: LATENCY_BUCKETS,
  },
  {
    name: 'replication_batch_size',
    type: 'histogram',
    labels: ['peer_id'],
    help: 'Events per flushed batch, after coalescing',
    section: 'Batches',
    origin: 'rust',
    buckets: BATCH_SIZE_BUCKETS,
  },
  {
    name: 'replication_batch_events_total',
    type: 'counter',
    labels: ['peer_id'],
    help: 'Events handed to batch flushes, after coalescing',
    section: 'Batches',
    origin: 'rust',
  },
  {
    name: 'replication_batch_deduped_total',
    type: 'counter',
    labels: ['peer_id'],
    help: 'Events coalesced away within a batch: superseded by a later event for the same key',
    section: 'Batches',
    origin: 'rust',
  },
  {
    name: 'replication_batch_submitted_total',
    type: 'counter',
    labels: ['peer_id'],
    help: 'Puts applied by batch flushes',
    section: 'Batches',
    origin: 'rust',
  },
  {
    name: 'replication_batch_deleted_total',
    type: 'counter',
    labels: ['peer_id'],
    help: 'Tombstones applied by batch flushes',
    section: 'Batches',
    origin: 'rust',
  },
  {
    name: 'replication_batch_skipped_total',
    type: 'counter',
    labels: ['peer_id'],
    help: "Events skipped without an apply attempt (the node's own origin coming back)",
    section: 'Batches',
    origin: 'rust',
  },
  {
    name: 'replication_batch_errors_total',
    type: 'counter',
    labels: ['peer_id'],
    help: 'Events a batch flush failed to apply (the batch is retried)',
    section: 'Batches',
    origin: 'rust',
  },
  // Streams
  {
    name: 'replication_stream_reads_total',
    type: 'counter',
    labels: ['peer_id'],
    help: "XREAD / XRANGE calls on the peer's stream",
    section: 'Streams',
    origin: 'rust',
  },
  {
    name: 'replication_stream_read_duration_seconds',
    type: 'histogram',
    labels: ['peer_id'],
    help: 'Duration of XREAD / XRANGE calls that returned entries (idle blocking reads excluded)',
    section: 'Streams',
    origin: 'rust',
    buckets: LATENCY_BUCKETS,
  },
  {
    name: 'replication_stream_events_read_total',
    type: 'counter',
    labels: ['peer_id'],
    help: 'Stream entries returned by XREAD / XRANGE, including ones later rejected or skipped',
    section: 'Streams',
    origin: 'rust',
  },
  {
    name: 'replication_stream_gaps_total',
    type: 'counter',
    labels: ['peer_id', 'kind'],
    help: 'Gaps found between the cursor and the stream; each starts a repair',
    labelValues: { kind: ['trimmed', 'recreated'] },
    section: 'Streams',
    origin: 'ours',
  },
  {
    name: 'replication_stream_trimmed_total',
    type: 'counter',
    labels: ['peer_id'],
    help: 'Cursors found older than the oldest stream entry',
    section: 'Streams',
    origin: 'rust',
    derived: { from: 'replication_stream_gaps_total', where: { kind: 'trimmed' } },
  },
  // Cold path
  {
    name: 'replication_peer_clock_offset_seconds',
    type: 'gauge',
    labels: ['peer_id'],
    help: "The peer's Redis TIME minus the local clock, measured by each repair cycle, in seconds",
    section: 'Cold path',
    origin: 'ours',
  },
  {
    name: 'replication_repair_rejected_total',
    type: 'counter',
    labels: ['peer_id', 'reason'],
    help: "Records, leaves or buckets of a peer's tree a repair refused to apply, quarantined in dlq:<peer>",
    labelValues: {
      reason: ['hash_mismatch', 'bad_record', 'too_large', 'bad_leaf', 'oversized_bucket'],
    },
    section: 'Cold path',
    origin: 'ours',
  },
  {
    name: 'replication_repair_cycles_total',
    type: 'counter',
    labels: ['peer_id'],
    help: 'Merkle repair cycles run against the peer',
    section: 'Cold path',
    origin: 'readme',
  },
  {
    name: 'replication_repair_cycle_duration_seconds',
    type: 'histogram',
    labels: ['peer_id'],
    help: 'Duration of one repair cycle against the peer',
    section: 'Cold path',
    origin: 'rust',
    buckets: REPAIR_BUCKETS,
  },
  {
    name: 'replication_repair_skipped_total',
    type: 'counter',
    labels: ['peer_id', 'reason'],
    help: 'Repair cycles skipped',
    labelValues: { reason: ['catching_up', 'backoff', 'disconnected', 'circuit_open', 'paused'] },
    section: 'Cold path',
    origin: 'rust',
  },
  {
    name: 'replication_repair_errors_total',
    type: 'counter',
    labels: ['peer_id'],
    help: 'Repair cycles that failed (the peer is backed off)',
    section: 'Cold path',
    origin: 'rust',
  },
  {
    name: 'replication_repair_peers_checked_total',
    type: 'counter',
    labels: [],
    help: 'Peers whose Merkle root was compared with ours, over all peers',
    section: 'Cold path',
    origin: 'rust',
  },
  {
    name: 'replication_repair_peers_in_sync_total',
    type: 'counter',
    labels: [],
    help: 'Root comparisons that found the peer in sync, over all peers',
    section: 'Cold path',
    origin: 'rust',
  },
  {
    name: 'replication_merkle_divergence_total',
    type: 'counter',
    labels: ['peer_id'],
    help: "Repair cycles whose Merkle root differed from the peer's",
    section: 'Cold path',
    origin: 'rust',
  },
  {
    name: 'replication_merkle_divergences_total',
    type: 'counter',
    labels: ['peer_id'],
    help: 'Divergent Merkle branches (buckets) found while drilling down',
    section: 'Cold path',
    origin: 'readme',
  },
  {
    name: 'replication_repair_divergent_keys',
    type: 'gauge',
    labels: ['peer_id'],
    help: 'Keys found divergent in the last repair cycle against the peer',
    section: 'Cold path',
    origin: 'ours',
  },
  {
    name: 'replication_repair_items_total',
    type: 'counter',
    labels: ['peer_id'],
    help: 'Divergent keys found by repair cycles (candidates for repair)',
    section: 'Cold path',
    origin: 'rust',
  },
  {
    name: 'replication_repair_items_fetched_total',
    type: 'counter',
    labels: ['peer_id'],
    help: 'Records fetched from the peer by repair cycles',
    section: 'Cold path',
    origin: 'readme',
  },
  {
    name: 'replication_repair_items_submitted_total',
    type: 'counter',
    labels: ['peer_id'],
    help: 'Records applied to the local store by repair cycles (they won last-writer-wins)',
    section: 'Cold path',
    origin: 'readme',
  },
  // Tombstones (acknowledged collection, docs/PROTOCOL.md §6)
  {
    name: 'replication_peer_acknowledged_at_ms',
    type: 'gauge',
    labels: ['peer_id'],
    help: 'When the peer was last found holding every tombstone this node held (ms since the epoch; 0 = never): tombstones that arrived since are kept for it',
    section: 'Tombstones',
    origin: 'ours',
  },
  {
    name: 'replication_tombstone_gc_blocked',
    type: 'gauge',
    labels: ['peer_id'],
    help: '1 while the peer holds tombstones back from the purge: at least one tombstone past store.tombstone_ttl arrived since its last acknowledgement; else 0 (also for a peer not acknowledged lately while no tombstone is past the TTL)',
    section: 'Tombstones',
    origin: 'ours',
  },
  {
    name: 'replication_tombstones_held',
    type: 'gauge',
    labels: [],
    help: 'Tombstones (and expired records) past store.tombstone_ttl kept because a peer has not acknowledged them (at the last purge)',
    section: 'Tombstones',
    origin: 'ours',
  },
  {
    name: 'replication_tombstones_held_bytes',
    type: 'gauge',
    labels: [],
    help: 'Approximate bytes of those tombstones in the local Redis (records, leaves, index entries)',
    section: 'Tombstones',
    origin: 'ours',
  },
  {
    name: 'replication_tombstones_purged_total',
    type: 'counter',
    labels: [],
    help: 'Tombstones and expired records purged (older than store.tombstone_ttl and acknowledged by every configured peer)',
    section: 'Tombstones',
    origin: 'ours',
  },
  {
    name: 'replication_resurrections_prevented_total',
    type: 'counter',
    labels: ['peer_id'],
    help: "Live records refused because they look like a delete purged here (key absent, dated before this node's purge horizon) from a peer not in sync since that horizon; each refusal counts, on either path",
    section: 'Tombstones',
    origin: 'ours',
  },
  {
    name: 'replication_local_store_resets_total',
    type: 'counter',
    labels: [],
    help: 'Times the local store was found lost (its store:id gone or changed: flushed, restarted without its data, replaced); each starts a rebuild from every peer',
    section: 'Tombstones',
    origin: 'ours',
  },
  // Peers
  {
    name: 'replication_peer_oversized_replies_total',
    type: 'counter',
    labels: ['peer_id', 'command'],
    help: "Replies on a peer's query connection holding a value over its bound (skipped unread: a node hash over 64 bytes, a field name over 64 KiB) or over their own bound (refused)",
    labelValues: { command: [...QUERY_COMMANDS] },
    section: 'Peers',
    origin: 'ours',
  },
  {
    name: 'replication_peer_connected',
    type: 'gauge',
    labels: ['peer_id'],
    help: '1 if the peer is connected, 0 if not',
    section: 'Peers',
    origin: 'readme',
  },
  {
    name: 'replication_connected_peers',
    type: 'gauge',
    labels: [],
    help: 'Peers currently connected',
    section: 'Peers',
    origin: 'rust',
    derived: { from: 'replication_peer_connected', countNonZero: true },
  },
  {
    name: 'replication_peer_state',
    type: 'gauge',
    labels: ['peer_id', 'state'],
    help: 'Connection state, one series per state, 1 for the current one',
    labelValues: { state: ['disconnected', 'connecting', 'connected'] },
    section: 'Peers',
    origin: 'rust',
  },
  {
    name: 'replication_peer_connections_total',
    type: 'counter',
    labels: ['peer_id', 'status'],
    help: 'Connection attempts',
    labelValues: { status: ['success', 'failure'] },
    section: 'Peers',
    origin: 'rust',
  },
  {
    name: 'replication_peer_operation_duration_seconds',
    type: 'histogram',
    labels: ['peer_id', 'operation'],
    help: 'Latency of Redis calls to the peer',
    labelValues: {
      operation: [
        'xrange',
        'xread',
        'xinfo',
        'merkle_root',
        'merkle_children',
        'merkle_leaves',
        'fetch',
        'ping',
      ],
    },
    section: 'Peers',
    origin: 'rust',
    buckets: LATENCY_BUCKETS,
  },
  {
    name: 'replication_peer_latency_seconds',
    type: 'histogram',
    labels: ['peer_id'],
    help: 'Latency of Redis calls to the peer, all operations',
    section: 'Peers',
    origin: 'readme',
    buckets: LATENCY_BUCKETS,
    derived: { from: 'replication_peer_operation_duration_seconds' },
  },
  {
    name: 'replication_peer_pings_total',
    type: 'counter',
    labels: ['peer_id', 'status'],
    help: 'Health pings of an idle peer',
    labelValues: { status: ['success', 'failure'] },
    section: 'Peers',
    origin: 'rust',
  },
  {
    name: 'replication_peer_ping_latency_seconds',
    type: 'histogram',
    labels: ['peer_id'],
    help: 'Round trip of a successful health ping',
    section: 'Peers',
    origin: 'rust',
    buckets: LATENCY_BUCKETS,
  },
  // Circuit breaker
  {
    name: 'replication_peer_circuit_state',
    type: 'gauge',
    labels: ['peer_id'],
    help: "The peer's circuit breaker: 0=closed, 1=half-open, 2=open",
    section: 'Circuit breaker',
    origin: 'readme',
  },
  {
    name: 'replication_circuit_state',
    type: 'gauge',
    labels: ['peer_id'],
    help: "The peer's circuit breaker: 0=closed, 1=half-open, 2=open",
    section: 'Circuit breaker',
    origin: 'rust',
    derived: { from: 'replication_peer_circuit_state' },
  },
  {
    name: 'replication_peer_circuit_transitions_total',
    type: 'counter',
    labels: ['peer_id', 'state'],
    help: 'Circuit breaker transitions, by the state entered',
    labelValues: { state: ['closed', 'half_open', 'open'] },
    section: 'Circuit breaker',
    origin: 'rust',
  },
  {
    name: 'replication_circuit_calls_total',
    type: 'counter',
    labels: ['peer_id', 'outcome'],
    help: 'Calls through the circuit breaker',
    labelValues: { outcome: ['success', 'failure'] },
    section: 'Circuit breaker',
    origin: 'rust',
  },
  {
    name: 'replication_circuit_rejections_total',
    type: 'counter',
    labels: ['peer_id'],
    help: 'Calls refused because the circuit was open',
    section: 'Circuit breaker',
    origin: 'rust',
  },
  // Cursors
  {
    name: 'replication_cursor_persists_total',
    type: 'counter',
    labels: ['peer_id', 'status'],
    help: "Writes of the peer's cursor to SQLite",
    labelValues: { status: ['success', 'failure'] },
    section: 'Cursors',
    origin: 'rust',
  },
  {
    name: 'replication_cursor_flushes_total',
    type: 'counter',
    labels: [],
    help: 'SQLite transactions that wrote cursors',
    section: 'Cursors',
    origin: 'rust',
  },
  {
    name: 'replication_cursor_flushed_count',
    type: 'counter',
    labels: [],
    help: 'Cursors written by those transactions',
    section: 'Cursors',
    origin: 'rust',
  },
  {
    name: 'replication_cursor_flush_errors_total',
    type: 'counter',
    labels: [],
    help: 'Cursor transactions that failed',
    section: 'Cursors',
    origin: 'rust',
  },
  {
    name: 'replication_cursor_retries_total',
    type: 'counter',
    labels: ['operation'],
    help: 'SQLite operations retried after SQLITE_BUSY / SQLITE_LOCKED',
    labelValues: { operation: ['get', 'set', 'flush'] },
    section: 'Cursors',
    origin: 'rust',
  },
  // SLOs
  {
    name: 'replication_slo_violations_total',
    type: 'counter',
    labels: ['peer_id', 'slo_type'],
    help: 'Operations over their settings.slo bound',
    labelValues: {
      slo_type: ['stream_read', 'peer_op', 'batch_flush', 'replication_lag', 'clock_offset'],
    },
    section: 'SLOs',
    origin: 'rust',
  },
  {
    name: 'replication_slo_violation_latency_ms',
    type: 'histogram',
    labels: ['peer_id', 'slo_type'],
    help: 'Latency or lag observed by each SLO violation, in milliseconds',
    labelValues: { slo_type: ['stream_read', 'peer_op', 'batch_flush', 'replication_lag'] },
    section: 'SLOs',
    origin: 'rust',
    buckets: SLO_MS_BUCKETS,
  },
  {
    name: 'replication_lag_slo_ms',
    type: 'gauge',
    labels: ['peer_id'],
    help: 'Replication lag compared with settings.slo.max_replication_lag_sec, in milliseconds',
    section: 'SLOs',
    origin: 'rust',
    derived: { from: 'replication_lag_ms' },
  },
  {
    name: 'replication_lag_slo_violation',
    type: 'gauge',
    labels: ['peer_id'],
    help: '1 while the lag exceeds settings.slo.max_replication_lag_sec, else 0',
    section: 'SLOs',
    origin: 'rust',
  },
  // Engine
  {
    name: 'replication_engine_state',
    type: 'gauge',
    labels: [],
    help: 'Engine state: 0=stopped (or created), 1=starting, 2=running, 3=stopping, 4=failed',
    section: 'Engine',
    origin: 'readme',
  },
  {
    name: 'replication_local_store_up',
    type: 'gauge',
    labels: [],
    help: "1 while this node's own store (its local Redis) answers the engine's check every second, 0 while it does not",
    section: 'Engine',
    origin: 'ours',
  },
  {
    name: 'replication_errors_total',
    type: 'counter',
    labels: ['peer_id', 'error_type'],
    help: 'Failed peer operations, by the operation that failed',
    labelValues: {
      error_type: [
        'xrange',
        'xread',
        'xinfo',
        'merkle_root',
        'merkle_children',
        'merkle_leaves',
        'fetch',
        'ping',
      ],
    },
    section: 'Engine',
    origin: 'rust',
  },
] as const satisfies readonly MetricDefinition[];

const ORIGIN_TEXT: Record<MetricOrigin, string> = {
  readme: 'seed README',
  rust: 'seed source',
  ours: 'ours',
};

/** The Markdown table of `definitions` (one header row per section), as docs/METRICS.md holds it. */
export function renderMetricsTable(
  definitions: readonly MetricDefinition[] = METRIC_DEFINITIONS,
): string {
  const rows = ['| Metric | Type | Labels | Source | Meaning |', '| --- | --- | --- | --- | --- |'];
  let section = '';
  for (const def of definitions) {
    if (def.section !== section) {
      section = def.section;
      rows.push(`| **${section}** | | | | |`);
    }
    const labels = def.labels.map((l) => `\`${l}\``).join(', ');
    const derived = def.derived ? ` Derived from \`${def.derived.from}\` at scrape time.` : '';
    const meaning = `${metricHelp(def)}.${derived}`.replaceAll('|', '\\|');
    rows.push(
      `| \`${def.name}\` | ${def.type} | ${labels} | ${ORIGIN_TEXT[def.origin]} | ${meaning} |`,
    );
  }
  return rows.join('\n');
}
