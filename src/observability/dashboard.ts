/**
 * The live dashboard: a page (`dashboard.html`, shipped next to this module, no build step and
 * nothing fetched from elsewhere) and the JSON it polls, `dashboard.json`. A {@link DashboardFeed}
 * samples one node's health and counters every second and keeps the last minutes, so the page
 * draws lag over time from the moment it opens. The daemon's admin server serves one feed; `demo`
 * serves its three nodes' feeds on one page.
 */
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';

import type { EngineHealth } from './health.js';
import type { Metrics } from './metrics.js';
import { redactSecrets } from './redact.js';

/** Path of the JSON the page polls (relative to the page, so a proxy may mount it anywhere). */
export const DASHBOARD_DATA_PATH = '/dashboard.json';

/** What a feed samples: one node's health and its metrics. */
export interface DashboardSource {
  readonly health: () => EngineHealth | Promise<EngineHealth>;
  readonly metrics: Metrics;
}

/** Options of {@link DashboardFeed}. */
export interface DashboardFeedOptions {
  /** @default 1000 */
  readonly intervalMs?: number;
  /** How much history is kept (and drawn). @default 600_000 (10 min) */
  readonly windowMs?: number;
  /** Injected clock. @default Date.now */
  readonly now?: () => number;
}

/** Counters of one peer, summed over their other labels. */
export interface PeerCounters {
  /** Events the hot path applied (`replication_cdc_events_applied_total`). */
  readonly applied_total: number;
  /** Records repairs applied (`replication_repair_items_submitted_total`). */
  readonly repaired_total: number;
  /** `replication_conflicts_total`. */
  readonly conflicts_total: number;
  /** Entries quarantined in dlq:<peer>: dead-lettered on the hot path plus refused by repairs. */
  readonly quarantined_total: number;
  /** Records held back for a clock too far ahead (`replication_clock_skew_rejected_total`). */
  readonly held_back_total: number;
  /** Hot-path applies per second since the sample before; null for the first. */
  readonly applied_per_sec: number | null;
}

/** One point of a peer's history. */
export interface PeerPoint {
  readonly lag_ms: number | null;
  readonly lag_events: number | null;
  readonly applied_per_sec: number | null;
}

/** One sample of a node: the time and each peer's point. */
export interface DashboardSample {
  /** ms since the epoch. */
  readonly t: number;
  readonly peers: Readonly<Record<string, PeerPoint>>;
}

/** What `dashboard.json` holds for one node. */
export interface DashboardNodeView {
  readonly node_id: string;
  /** The last health report (the body of `/health`). */
  readonly health: EngineHealth;
  readonly counters: Readonly<Record<string, PeerCounters>>;
  /** Samples after the `since` asked for, oldest first. */
  readonly samples: readonly DashboardSample[];
}

/** The body of `dashboard.json`. */
export interface DashboardData {
  readonly interval_ms: number;
  readonly window_ms: number;
  readonly now_ms: number;
  readonly nodes: readonly DashboardNodeView[];
}

type Totals = Omit<PeerCounters, 'applied_per_sec'>;

interface Latest {
  readonly t: number;
  readonly health: EngineHealth;
  readonly totals: ReadonlyMap<string, Totals>;
  readonly counters: Readonly<Record<string, PeerCounters>>;
}

async function sumByPeer(metric: {
  get(): Promise<{ values: readonly { labels: Record<string, unknown>; value: number }[] }>;
}): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const sample of (await metric.get()).values) {
    const peer = sample.labels['peer_id'];
    if (typeof peer !== 'string') continue;
    out.set(peer, (out.get(peer) ?? 0) + sample.value);
  }
  return out;
}

async function readTotals(m: Metrics, peers: readonly string[]): Promise<Map<string, Totals>> {
  const [applied, repaired, conflicts, dead, rejected, skew] = await Promise.all([
    sumByPeer(m.cdcEventsAppliedTotal),
    sumByPeer(m.repairItemsSubmittedTotal),
    sumByPeer(m.conflictsTotal),
    sumByPeer(m.deadLetteredTotal),
    sumByPeer(m.repairRejectedTotal),
    sumByPeer(m.clockSkewRejectedTotal),
  ]);
  const out = new Map<string, Totals>();
  for (const peer of peers) {
    out.set(peer, {
      applied_total: applied.get(peer) ?? 0,
      repaired_total: repaired.get(peer) ?? 0,
      conflicts_total: conflicts.get(peer) ?? 0,
      quarantined_total: (dead.get(peer) ?? 0) + (rejected.get(peer) ?? 0),
      held_back_total: skew.get(peer) ?? 0,
    });
  }
  return out;
}

/**
 * One node's dashboard data: samples its health and counters every `intervalMs` while started,
 * keeping `windowMs` of history (600 samples by default, a few tens of KB).
 */
export class DashboardFeed {
  readonly intervalMs: number;
  readonly windowMs: number;
  readonly #source: DashboardSource;
  readonly #now: () => number;
  readonly #samples: DashboardSample[] = [];
  #latest: Latest | undefined;
  #sampling: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(source: DashboardSource, options: DashboardFeedOptions = {}) {
    this.#source = source;
    this.intervalMs = options.intervalMs ?? 1000;
    this.windowMs = options.windowMs ?? 10 * 60_000;
    this.#now = options.now ?? Date.now;
  }

  /** Samples now and then every `intervalMs` (the timer does not keep the process alive). */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => void this.sample(), this.intervalMs);
    this.#timer.unref();
    void this.sample();
  }

  /** Stops sampling; the history stays readable. Idempotent. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Takes one sample (one at a time: a call while one runs joins it). Never rejects. */
  sample(): Promise<void> {
    this.#sampling ??= this.#take()
      .catch(() => undefined) // a health report that fails is a gap in the chart, nothing more
      .finally(() => {
        this.#sampling = undefined;
      });
    return this.#sampling;
  }

  async #take(): Promise<void> {
    const health = await this.#source.health();
    const totals = await readTotals(
      this.#source.metrics,
      health.peers.map((p) => p.node_id),
    );
    // Taken just before the sample is stored: a reader asking for samples after the newest it
    // saw never misses one that was being taken while it read.
    const t = this.#now();
    const before = this.#latest;
    const counters: Record<string, PeerCounters> = {};
    const points: Record<string, PeerPoint> = {};
    for (const peer of health.peers) {
      const now = totals.get(peer.node_id)!;
      const prev = before?.totals.get(peer.node_id);
      const dt = before === undefined ? 0 : (t - before.t) / 1000;
      const rate =
        prev === undefined || dt <= 0
          ? null
          : Math.max(0, (now.applied_total - prev.applied_total) / dt);
      counters[peer.node_id] = { ...now, applied_per_sec: rate };
      points[peer.node_id] = {
        lag_ms: peer.lag_ms,
        lag_events: peer.lag_events,
        applied_per_sec: rate,
      };
    }
    this.#latest = { t, health, totals, counters };
    this.#samples.push({ t, peers: points });
    const oldest = t - this.windowMs;
    while (this.#samples.length > 0 && this.#samples[0]!.t < oldest) this.#samples.shift();
  }

  /**
   * The latest health and counters, and the samples taken after `sinceMs` (all kept by default).
   * Samples first if none was taken yet.
   */
  async view(sinceMs = -Infinity): Promise<DashboardNodeView> {
    if (this.#latest === undefined) await this.sample();
    const latest = this.#latest;
    // Still none: the health report itself failed; ask again so the caller sees the error.
    const health = latest?.health ?? (await this.#source.health());
    return {
      node_id: health.node_id,
      health,
      counters: latest?.counters ?? {},
      samples: this.#samples.filter((s) => s.t > sinceMs),
    };
  }
}

/** `dashboard.json` for these feeds: samples after `sinceMs` only (the page asks for what is new). */
export async function dashboardData(
  feeds: readonly DashboardFeed[],
  sinceMs?: number,
  now: () => number = Date.now,
): Promise<DashboardData> {
  const nodes = await Promise.all(feeds.map((f) => f.view(sinceMs)));
  return {
    interval_ms: feeds[0]?.intervalMs ?? 1000,
    window_ms: feeds[0]?.windowMs ?? 0,
    now_ms: now(),
    nodes,
  };
}

let page: string | undefined;

/** The dashboard page (read once from `dashboard.html` next to this module). */
export function dashboardPage(): string {
  page ??= readFileSync(new URL('./dashboard.html', import.meta.url), 'utf8');
  return page;
}

/**
 * The page may run its own inline script and style and talk to its own origin only: nothing is
 * loaded from anywhere else, and no other site may frame it.
 */
const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-cache',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy':
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
} as const;

/**
 * Answers a GET of the dashboard: `/` (the page) or {@link DASHBOARD_DATA_PATH} (`?since=<ms>`
 * for the samples after it). Returns false for any other path. The caller checks the method and
 * authorization.
 */
export async function serveDashboard(
  res: ServerResponse,
  url: URL,
  feeds: readonly DashboardFeed[],
): Promise<boolean> {
  if (url.pathname === '/') {
    res.writeHead(200, PAGE_HEADERS);
    res.end(dashboardPage());
    return true;
  }
  if (url.pathname !== DASHBOARD_DATA_PATH) return false;
  const since = Number(url.searchParams.get('since') ?? '');
  const data = await dashboardData(
    feeds,
    url.searchParams.has('since') && Number.isFinite(since) ? since : undefined,
  );
  res.writeHead(200, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(
    JSON.stringify(data, (_key, value: unknown) =>
      typeof value === 'string' ? redactSecrets(value) : value,
    ),
  );
  return true;
}
