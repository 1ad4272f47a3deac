/**
 * The dashboard's feed on an injected clock: it keeps each peer's lag and apply rate over a
 * window, answers only what is newer than `since`, and tolerates a health report that fails.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { DashboardFeed, dashboardData } from '../../src/observability/dashboard.js';
import { createMetrics } from '../../src/observability/metrics.js';
import type { EngineHealth, PeerHealth } from '../../src/observability/health.js';

function peer(id: string, lagMs: number | null, lagEvents: number | null): PeerHealth {
  return {
    node_id: id,
    url: 'redis://peer:6379',
    connected: true,
    circuit_state: 'closed',
    lag_ms: lagMs,
    lag_events: lagEvents,
    catching_up: false,
    paused: false,
    cursor: null,
    last_event_ms_ago: null,
    last_success_ms_ago: null,
    consecutive_errors: 0,
    last_error: null,
    last_error_at_ms: null,
    last_commit_at_ms: null,
    commit_failures: 0,
    healthy: true,
    problems: [],
    last_repair: null,
  };
}

function health(peers: PeerHealth[]): EngineHealth {
  return {
    healthy: true,
    ready: true,
    state: 'running',
    node_id: 'node-a',
    version: '0.1.0',
    uptime_ms: 1,
    timestamp_ms: 0,
    peers_connected: peers.length,
    peers_total: peers.length,
    peers,
    local: {
      connected: true,
      since_ms: null,
      last_ok_at_ms: null,
      last_error: null,
      last_error_at_ms: null,
    },
    problems: [],
    last_error: null,
    last_error_at_ms: null,
  };
}

describe('DashboardFeed', () => {
  it('records lag and the apply rate per peer, sums quarantine, and answers what is new', async () => {
    let now = 1_000_000;
    let lag: [number | null, number | null] = [null, null];
    const metrics = createMetrics();
    const feed = new DashboardFeed(
      { health: () => health([peer('node-b', ...lag)]), metrics },
      { now: () => now, intervalMs: 1000, windowMs: 5000 },
    );

    await feed.sample();
    let view = await feed.view();
    assert.equal(view.node_id, 'node-a');
    assert.equal(view.counters['node-b']?.applied_per_sec, null, 'no rate from one sample');
    assert.deepEqual(view.samples[0]?.peers['node-b'], {
      lag_ms: null,
      lag_events: null,
      applied_per_sec: null,
    });

    metrics.cdcEventsAppliedTotal.inc({ peer_id: 'node-b' }, 50);
    metrics.conflictsTotal.inc({ peer_id: 'node-b' }, 2);
    metrics.deadLetteredTotal.inc({ peer_id: 'node-b', reason: 'bad_zstd' }, 1);
    metrics.deadLetteredTotal.inc({ peer_id: 'node-b', reason: 'hash_mismatch' }, 2);
    metrics.repairRejectedTotal.inc({ peer_id: 'node-b', reason: 'bad_record' }, 4);
    metrics.clockSkewRejectedTotal.inc({ peer_id: 'node-b' }, 3);
    metrics.cdcEventsAppliedTotal.inc({ peer_id: 'elsewhere' }, 1000);
    lag = [1200, 40];
    now += 2000;
    await feed.sample();
    view = await feed.view();
    assert.deepEqual(view.counters['node-b'], {
      applied_total: 50,
      repaired_total: 0,
      conflicts_total: 2,
      quarantined_total: 7,
      held_back_total: 3,
      applied_per_sec: 25,
    });
    assert.deepEqual(view.samples[1], {
      t: 1_002_000,
      peers: { 'node-b': { lag_ms: 1200, lag_events: 40, applied_per_sec: 25 } },
    });

    const newer = await feed.view(1_000_000);
    assert.deepEqual(
      newer.samples.map((s) => s.t),
      [1_002_000],
      'only samples after since',
    );

    now += 4000; // the first sample falls out of the 5 s window
    await feed.sample();
    view = await feed.view();
    assert.deepEqual(
      view.samples.map((s) => s.t),
      [1_002_000, 1_006_000],
    );
    assert.equal(view.counters['node-b']?.applied_per_sec, 0);

    const data = await dashboardData([feed], 1_002_000, () => now);
    assert.equal(data.interval_ms, 1000);
    assert.equal(data.window_ms, 5000);
    assert.equal(data.now_ms, 1_006_000);
    assert.deepEqual(
      data.nodes[0]?.samples.map((s) => s.t),
      [1_006_000],
    );
  });

  it('a health report that fails is a gap, not an error; concurrent samples are one', async () => {
    let fail = true;
    let calls = 0;
    const feed = new DashboardFeed(
      {
        health: () => {
          calls += 1;
          if (fail) throw new Error('engine busy');
          return health([]);
        },
        metrics: createMetrics(),
      },
      { now: () => 5 },
    );
    await feed.sample();
    await assert.rejects(feed.view(), /engine busy/, 'no report yet: the view says why');
    fail = false;
    calls = 0;
    await Promise.all([feed.sample(), feed.sample()]);
    assert.equal(calls, 1, 'a sample while one runs joins it');
    assert.equal((await feed.view()).samples.length, 1);
  });
});
