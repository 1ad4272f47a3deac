/**
 * The engine's health report: the JSON `/health` serves (snake_case on the wire) and the
 * human-readable rendering `replication-engine status` prints.
 */
import { redactSecrets } from './redact.js';

/** Engine lifecycle state, as the wire format spells it. */
export type EngineStateName =
  'created' | 'connecting' | 'running' | 'shutting_down' | 'stopped' | 'failed';

/** A peer's circuit breaker state. */
export type CircuitStateName = 'closed' | 'half_open' | 'open';

/** The outcome of the last cold-path cycle against one peer. */
export interface RepairSummary {
  /** When it finished, ms since the epoch. */
  readonly finished_at_ms: number;
  readonly duration_ms: number;
  /** `ok`: ran to the end; `error`: failed (see `error`); `skipped`: not run (see `error`). */
  readonly outcome: 'ok' | 'error' | 'skipped';
  /** Merkle roots were equal: nothing to do. */
  readonly in_sync: boolean;
  readonly divergent_keys: number;
  readonly items_fetched: number;
  readonly items_applied: number;
  /** Why it failed or was skipped, credentials redacted. */
  readonly error: string | null;
}

/** The health of one peer. */
/** A cluster peer's partition streams in `/health` (docs/CLUSTER.md, "Lag, gaps, health"). */
export interface PartitionsHealth {
  readonly count: number;
  /** Partitions with entries not applied yet. */
  readonly behind: number;
  /** Partitions whose stream had a gap in the last 10 minutes. */
  readonly with_gap: number;
  /** Partitions whose last read or apply failed. */
  readonly failing: number;
  /** Listed only when some partition is unhealthy (over the lag SLO, failing, a recent gap), worst first, at most 16. */
  readonly unhealthy?: readonly {
    readonly partition: string;
    readonly cursor: string;
    readonly lag_ms: number;
    readonly lag_events: number;
    readonly last_error: string | null;
    readonly gap_at_ms: number | null;
  }[];
}

export interface PeerHealth {
  readonly node_id: string;
  /** The peer's Redis URL with any password replaced by `***`. */
  readonly url: string;
  readonly connected: boolean;
  readonly circuit_state: CircuitStateName;
  /** Cursor lag behind the stream head, in ms; null before the first read. */
  readonly lag_ms: number | null;
  /** Estimated events behind the stream head; null before the first read. */
  readonly lag_events: number | null;
  /** Reading a backlog with XRANGE rather than tailing with XREAD BLOCK. */
  readonly catching_up: boolean;
  /** Paused by an operator (admin API or library call). */
  readonly paused: boolean;
  /** The persisted cursor (a stream id); null if nothing was read yet. */
  readonly cursor: string | null;
  /** Since the last event read from the peer; null if none yet. */
  readonly last_event_ms_ago: number | null;
  /** Since the last successful Redis call to the peer; null if none yet. */
  readonly last_success_ms_ago: number | null;
  /** Failures since the last success (what the circuit breaker counts). */
  readonly consecutive_errors: number;
  /**
   * The error this peer is failing with now, credentials redacted; null once it works again
   * (connected, and the hot path reading and committing).
   */
  readonly last_error: string | null;
  /** When `last_error` was first seen, ms since the epoch; null with no error. */
  readonly last_error_at_ms: number | null;
  /** When its cursor was last committed after a batch, ms since the epoch; null if never. */
  readonly last_commit_at_ms: number | null;
  /** Cursor commits that failed in a row (0 once one succeeds). */
  readonly commit_failures: number;
  /** No problem below. */
  readonly healthy: boolean;
  /**
   * Why it is not healthy, one sentence each: disconnected, circuit open, cursor commits
   * failing, or no progress (lag over the lag SLO with no commit for longer than it).
   */
  readonly problems: readonly string[];
  readonly last_repair: RepairSummary | null;
  /**
   * A cluster peer's partition streams (absent for a single instance): `lag_ms`, `cursor` and
   * `last_commit_at_ms` above are its worst partition's, `lag_events` the sum.
   */
  readonly partitions?: PartitionsHealth;
}

/** This node's own store (its Redis), as the engine's periodic check (every second) sees it. */
export interface LocalHealth {
  /** The store answered the last check; null before the first, or when the store cannot tell. */
  readonly connected: boolean | null;
  /** Since when `connected` has held its value, ms since the epoch; null before the first check. */
  readonly since_ms: number | null;
  /** When the store last answered, ms since the epoch; null if never. */
  readonly last_ok_at_ms: number | null;
  /** Why the last check failed, credentials redacted; null while it answers. */
  readonly last_error: string | null;
  /** When `last_error` was first seen, ms since the epoch; null with no error. */
  readonly last_error_at_ms: number | null;
}

/** A peer that keeps tombstones past `store.tombstone_ttl` from being purged. */
export interface TombstoneHolder {
  readonly peer_id: string;
  /** When it was last found holding every tombstone this node held, ms since the epoch; null: never. */
  readonly acknowledged_at_ms: number | null;
}

/** Acknowledged tombstone collection, as of the last purge (docs/PROTOCOL.md §6). */
export interface TombstoneHealth {
  readonly ttl_ms: number;
  /** The purge horizon: tombstones that arrived before it may have been purged; 0: none ever. */
  readonly horizon_ms: number;
  /** When the purge last ran, ms since the epoch; null before the first. */
  readonly last_purge_at_ms: number | null;
  /** Tombstones it purged. */
  readonly last_purged: number;
  /** Tombstones past the TTL kept because a peer below has not acknowledged them. */
  readonly held: number;
  /** Approximate bytes of those in the local Redis. */
  readonly held_bytes: number;
  /** The peers holding them back (connected or not); empty when none. */
  readonly held_for: readonly TombstoneHolder[];
}

/** A rebuild of a lost local store from the peers (docs/OPERATIONS.md, "Rebuilding a node"). */
export interface RebuildHealth {
  /** Why: the store was found empty, flushed or replaced. */
  readonly reason: string;
  readonly started_at_ms: number;
  /** Peers whose full repair into this node has not completed yet. */
  readonly peers_pending: readonly string[];
  /** When every peer's repair completed, ms since the epoch; null while pending. */
  readonly finished_at_ms: number | null;
}

/** The health of one engine: the body of `/health`. */
export interface EngineHealth {
  /**
   * Running, the local store answering, and every peer healthy: `/health` answers 200, else 503.
   */
  readonly healthy: boolean;
  /**
   * Running and serving (started, cursors loaded) with the local store answering: `/ready`
   * answers 200, else 503.
   */
  readonly ready: boolean;
  readonly state: EngineStateName;
  /** This node's id (`local_node_id`). */
  readonly node_id: string;
  /** Package version of the engine. */
  readonly version: string;
  /** Since `start()`, in ms; 0 before. */
  readonly uptime_ms: number;
  /** When this report was made, ms since the epoch. */
  readonly timestamp_ms: number;
  readonly peers_connected: number;
  readonly peers_total: number;
  readonly peers: readonly PeerHealth[];
  /** This node's own Redis. */
  readonly local: LocalHealth;
  /** Tombstone collection: what is held back and by which peer; absent when the store has none. */
  readonly tombstones?: TombstoneHealth;
  /** The last rebuild of a lost local store (unhealthy while pending); absent when none. */
  readonly rebuild?: RebuildHealth;
  /** Why it is not healthy, one sentence each (the local store's and every peer's problems). */
  readonly problems: readonly string[];
  /** The last engine-level error (e.g. why it failed), credentials redacted; null if none. */
  readonly last_error: string | null;
  /** When `last_error` happened, ms since the epoch; null with none. */
  readonly last_error_at_ms: number | null;
}

/** `h` as JSON, every string passed through {@link redactSecrets} (defence in depth). */
export function healthToJson(h: EngineHealth, space?: number): string {
  return JSON.stringify(
    h,
    (_key, value: unknown) => (typeof value === 'string' ? redactSecrets(value) : value),
    space,
  );
}

/** A duration for people: `850ms`, `12.3s`, `4m 05s`, `2h 03m`, `3d 04h`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const pad = (n: number): string => String(Math.floor(n)).padStart(2, '0');
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${pad(m % 60)}m`;
  return `${Math.floor(h / 24)}d ${pad(h % 24)}h`;
}

const yesNo = (b: boolean): string => (b ? 'yes' : 'no');

function lagText(p: PeerHealth): string {
  if (p.lag_ms === null && p.lag_events === null) return '-';
  const ms = p.lag_ms === null ? '-' : formatDuration(p.lag_ms);
  const events = p.lag_events === null ? '-' : String(p.lag_events);
  return `${ms} / ${events} ev`;
}

function repairText(r: RepairSummary | null, now: number): string {
  if (r === null) return '-';
  const ago = `${formatDuration(now - r.finished_at_ms)} ago`;
  if (r.outcome !== 'ok') return `${r.outcome} ${ago}`;
  if (r.in_sync) return `in sync ${ago}`;
  const pulled = `${r.divergent_keys} differed, ${r.items_applied} pulled`;
  if (r.items_applied >= r.divergent_keys) return `${pulled} ${ago}`;
  const why = r.items_applied === 0 ? 'this node was newer' : 'the rest newer here';
  return `${pulled} (${why}) ${ago}`;
}

function ago(at: number | null, now: number): string {
  return at === null ? 'time unknown' : `${formatDuration(now - at)} ago`;
}

function localText(l: LocalHealth, now: number): string {
  if (l.connected === null) return 'local redis: not checked yet';
  const since = l.since_ms === null ? '' : ` for ${formatDuration(now - l.since_ms)}`;
  if (l.connected) return `local redis: connected${since}`;
  return `local redis: UNREACHABLE${since}`;
}

function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

/**
 * `h` for a person: a summary line, then one table row per peer (id, connected, circuit, lag,
 * catching up, paused, last repair), then the errors. Credentials are redacted.
 */
export function formatHealth(h: EngineHealth): string {
  const now = h.timestamp_ms;
  const lines = [
    `node ${h.node_id}  state ${h.state}  healthy ${yesNo(h.healthy)}  ready ${yesNo(h.ready)}` +
      `  uptime ${formatDuration(h.uptime_ms)}  version ${h.version}`,
    `peers: ${h.peers_connected}/${h.peers_total} connected`,
    localText(h.local, now),
  ];
  if (h.peers.length > 0) {
    lines.push('');
    const rows = [
      ['PEER', 'CONNECTED', 'CIRCUIT', 'LAG', 'CATCHING UP', 'PAUSED', 'LAST EVENT', 'LAST REPAIR'],
      ...h.peers.map((p) => [
        p.node_id,
        yesNo(p.connected),
        p.circuit_state.replace('_', '-'),
        lagText(p),
        yesNo(p.catching_up),
        yesNo(p.paused),
        p.last_event_ms_ago === null ? '-' : `${formatDuration(p.last_event_ms_ago)} ago`,
        repairText(p.last_repair, now),
      ]),
    ];
    lines.push(...table(rows).map((l) => `  ${l}`));
    for (const p of h.peers) {
      const parts = p.partitions;
      if (parts === undefined) continue;
      lines.push(
        `  ${p.node_id}: a Redis Cluster, ${parts.count} partition streams: ${parts.behind} behind, ` +
          `${parts.with_gap} with a gap, ${parts.failing} failing`,
      );
      for (const u of parts.unhealthy ?? []) {
        const why = [
          `lag ${formatDuration(u.lag_ms)} / ${u.lag_events} ev`,
          u.gap_at_ms === null ? '' : `gap ${ago(u.gap_at_ms, now)}`,
          u.last_error ?? '',
        ].filter((x) => x !== '');
        lines.push(`    partition ${u.partition} (cursor ${u.cursor}): ${why.join('; ')}`);
      }
    }
  }
  const t = h.tombstones;
  if (t !== undefined && t.held_for.length > 0) {
    const who = t.held_for
      .map(
        (p) =>
          `${p.peer_id} (${p.acknowledged_at_ms === null ? 'never acknowledged' : `acknowledged ${ago(p.acknowledged_at_ms, now)}`})`,
      )
      .join(', ');
    lines.push(`tombstones: ${t.held} past the TTL held (~${t.held_bytes} bytes) for ${who}`);
  }
  if (h.problems.length > 0) lines.push('', 'unhealthy:', ...h.problems.map((p) => `  ${p}`));
  const errors: string[] = [];
  if (h.last_error !== null) {
    errors.push(`  engine (${ago(h.last_error_at_ms, now)}): ${h.last_error}`);
  }
  if (h.local.last_error !== null) {
    errors.push(`  local redis (${ago(h.local.last_error_at_ms, now)}): ${h.local.last_error}`);
  }
  for (const p of h.peers) {
    if (p.last_error !== null) {
      const count = p.consecutive_errors > 0 ? `${p.consecutive_errors} in a row` : '';
      const when = [count, ago(p.last_error_at_ms, now)].filter((x) => x !== '');
      errors.push(`  ${p.node_id} (${when.join(', ')}): ${p.last_error}`);
    }
    if (p.last_repair?.error) {
      errors.push(
        `  ${p.node_id} repair (${formatDuration(now - p.last_repair.finished_at_ms)} ago): ${p.last_repair.error}`,
      );
    }
  }
  if (errors.length > 0) lines.push('', 'errors:', ...errors);
  return redactSecrets(lines.join('\n'));
}
