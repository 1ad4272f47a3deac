/**
 * A peer's replication lag, published: the gauges (`replication_lag_ms`, `…_events`, the SLO
 * flag) and the rate-limited warning while the lag is over its SLO. One per peer, whether the
 * peer has one stream (the tailer) or P partition streams (the cluster tailer: its worst).
 */
import type { ResolvedSlo } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { RepeatingWarning } from '../observability/repeating-warning.js';

/** How often a lag over its SLO is counted as a violation again while it lasts. */
const VIOLATION_EVERY_MS = 10_000;

/** Publishes one peer's lag. */
export class LagReport {
  readonly #overSlo: RepeatingWarning;
  #lastViolationAt = 0;

  constructor(
    private readonly peerId: string,
    private readonly metrics: Metrics,
    private readonly slo: () => ResolvedSlo,
    log: Logger,
    private readonly now: () => number,
  ) {
    this.#overSlo = new RepeatingWarning(log, 'replication lag exceeds its SLO', {
      recovered: 'replication lag is within its SLO',
      now,
    });
  }

  /** The lag now: the age of the oldest entry not applied, and how many wait. */
  publish(lagMs: number, events: number): void {
    const m = this.metrics;
    const peer = { peer_id: this.peerId };
    m.lagMs.set(peer, lagMs);
    m.lagEvents.set(peer, events);
    const maxLag = this.slo().maxReplicationLagMs;
    m.lagSloViolation.set(peer, lagMs > maxLag ? 1 : 0);
    const now = this.now();
    if (lagMs <= maxLag) {
      this.#overSlo.ok({ lag_ms: lagMs });
    } else if (now - this.#lastViolationAt > VIOLATION_EVERY_MS) {
      this.#lastViolationAt = now;
      m.sloViolationsTotal.inc({ peer_id: this.peerId, slo_type: 'replication_lag' });
      this.#overSlo.fail({ lag_ms: lagMs, slo_ms: maxLag });
    }
  }
}
