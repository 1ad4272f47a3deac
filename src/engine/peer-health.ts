/**
 * One peer's health from its link and its tailer (pure: the clock comes in): what `/health`
 * shows, and whether the peer is healthy. A peer is not healthy when it is disconnected, its
 * circuit is open, its cursor commits fail, or it makes no progress: lag over the lag SLO and
 * no cursor commit for longer than it (an operator's pause excepted).
 */
import type { ResolvedPeer } from '../config/types.js';
import { formatDuration } from '../observability/health.js';
import type { PartitionsHealth, PeerHealth, RepairSummary } from '../observability/health.js';
import type { CircuitState } from './circuit-breaker.js';
import { circuitLabel } from './peer-link.js';
import type { PartitionsStatus, TailerStatus } from './tailer.js';

/** What {@link peerHealth} reads of a peer's link. */
export interface LinkView {
  readonly connected: boolean;
  readonly lastError: string | undefined;
  readonly lastSuccessAt: number;
  readonly breaker: { readonly state: CircuitState; readonly failures: number };
}

/** Everything {@link peerHealth} needs about one peer. */
export interface PeerHealthInput {
  readonly config: ResolvedPeer;
  readonly link: LinkView;
  readonly status: TailerStatus;
  /** When the peer was added (start or reload): "no commit since" counts from here at first. */
  readonly addedAt: number;
  readonly lastRepair: RepairSummary | null;
}

/** The settings and clock {@link peerHealth} judges by. */
export interface PeerHealthContext {
  readonly now: number;
  /** `slo.max_replication_lag_sec`, in ms. */
  readonly maxLagMs: number;
  /** Without the hot path there is no progress to expect. */
  readonly hotPath: boolean;
  readonly errors: ErrorClock;
}

/** Remembers when each error shown in health was first seen (a new text restarts the clock). */
export class ErrorClock {
  readonly #seen = new Map<string, { readonly error: string | null; readonly at: number | null }>();

  /** `error` (null: none) of `key` now, and since when it has been shown. */
  see(key: string, error: string | null, now: number): number | null {
    const before = this.#seen.get(key);
    if (before !== undefined && before.error === error) return before.at;
    const at = error === null ? null : now;
    this.#seen.set(key, { error, at });
    return at;
  }

  /** Forgets every key but `keys` (peers removed by a reload). */
  retain(keys: ReadonlySet<string>): void {
    for (const key of this.#seen.keys()) if (!keys.has(key)) this.#seen.delete(key);
  }
}

/** The health of one peer; see the module comment. */
export function peerHealth(input: PeerHealthInput, ctx: PeerHealthContext): PeerHealth {
  const { config, link, status } = input;
  const { now, maxLagMs } = ctx;
  const id = config.nodeId;
  const circuit = circuitLabel(link.breaker.state);
  const connected = link.connected;
  // A connection error stays on the link after it reconnects: show it only while it matters.
  const error = status.lastError ?? (connected ? undefined : link.lastError) ?? null;
  const errorAt = ctx.errors.see(id, error, now);
  const problems: string[] = [];
  if (!connected) problems.push(`peer ${id} is disconnected`);
  if (circuit === 'open') problems.push(`peer ${id}: circuit open`);
  if (status.commitFailures > 0) {
    problems.push(`peer ${id}: cursor commits failing (${status.commitFailures} in a row)`);
  } else if (ctx.hotPath && !status.paused && status.lagEvents > 0 && status.lagMs > maxLagMs) {
    const since = status.lastCommitAt ?? input.addedAt;
    if (now - since > maxLagMs) {
      problems.push(
        `peer ${id}: no progress: lag ${formatDuration(status.lagMs)} (${status.lagEvents} events) ` +
          `and no cursor commit for ${formatDuration(now - since)} (lag SLO ${formatDuration(maxLagMs)})`,
      );
    }
  }
  return {
    node_id: id,
    url: config.displayUrl,
    connected,
    circuit_state: circuit,
    lag_ms: status.lagMs,
    lag_events: status.lagEvents,
    catching_up: status.catchingUp,
    paused: status.paused,
    cursor: status.cursor,
    last_event_ms_ago: status.lastEventAt === null ? null : now - status.lastEventAt,
    last_success_ms_ago: link.lastSuccessAt === 0 ? null : now - link.lastSuccessAt,
    consecutive_errors: link.breaker.failures,
    last_error: error,
    last_error_at_ms: errorAt,
    last_commit_at_ms: status.lastCommitAt,
    commit_failures: status.commitFailures,
    healthy: problems.length === 0,
    problems,
    last_repair: input.lastRepair,
    ...(status.partitions !== undefined && { partitions: partitionsHealth(status.partitions) }),
  };
}

/** A cluster peer's partitions in health; the unhealthy ones listed only when there are some. */
function partitionsHealth(p: PartitionsStatus): PartitionsHealth {
  return {
    count: p.count,
    behind: p.behind,
    with_gap: p.withGap,
    failing: p.failing,
    ...(p.unhealthy.length > 0 && {
      unhealthy: p.unhealthy.map((u) => ({
        partition: u.partition,
        cursor: u.cursor,
        lag_ms: u.lagMs,
        lag_events: u.lagEvents,
        last_error: u.lastError ?? null,
        gap_at_ms: u.gapAt,
      })),
    }),
  };
}
