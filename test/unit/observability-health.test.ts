import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  formatDuration,
  formatHealth,
  healthToJson,
  type EngineHealth,
  type PeerHealth,
} from '../../src/observability/index.js';

const NOW = 1_750_000_000_000;

function peer(overrides: Partial<PeerHealth> & { node_id: string }): PeerHealth {
  return {
    url: 'redis://peer:6379',
    connected: true,
    circuit_state: 'closed',
    lag_ms: 12,
    lag_events: 0,
    catching_up: false,
    paused: false,
    cursor: '1750000000000-0',
    last_event_ms_ago: 800,
    last_success_ms_ago: 100,
    consecutive_errors: 0,
    last_error: null,
    last_error_at_ms: null,
    last_commit_at_ms: NOW - 800,
    commit_failures: 0,
    healthy: true,
    problems: [],
    last_repair: null,
    ...overrides,
  };
}

function health(peers: PeerHealth[]): EngineHealth {
  return {
    healthy: false,
    ready: true,
    state: 'running',
    node_id: 'uk.node.london-1',
    version: '0.1.0',
    uptime_ms: 3_723_000,
    timestamp_ms: NOW,
    peers_connected: peers.filter((p) => p.connected).length,
    peers_total: peers.length,
    peers,
    local: {
      connected: true,
      since_ms: NOW - 3_700_000,
      last_ok_at_ms: NOW - 300,
      last_error: null,
      last_error_at_ms: null,
    },
    problems: peers.flatMap((p) => p.problems),
    last_error: null,
    last_error_at_ms: null,
  };
}

describe('formatHealth', () => {
  const h = health([
    peer({
      node_id: 'uk.node.manchester-1',
      last_repair: {
        finished_at_ms: NOW - 5000,
        duration_ms: 40,
        outcome: 'ok',
        in_sync: true,
        divergent_keys: 0,
        items_fetched: 0,
        items_applied: 0,
        error: null,
      },
    }),
    peer({
      node_id: 'uk.node.edinburgh-1',
      url: 'rediss://user:***@peer2:6379',
      connected: false,
      circuit_state: 'half_open',
      lag_ms: null,
      lag_events: null,
      catching_up: true,
      paused: true,
      consecutive_errors: 3,
      last_error: 'connect ECONNREFUSED rediss://user:s3cret@peer2:6379',
      last_error_at_ms: NOW - 4000,
      healthy: false,
      problems: ['peer uk.node.edinburgh-1 is disconnected'],
    }),
  ]);
  const text = formatHealth(h);

  it('summarises the engine', () => {
    assert.match(text, /node uk\.node\.london-1 {2}state running {2}healthy no {2}ready yes/);
    assert.match(text, /uptime 1h 02m/);
    assert.match(text, /peers: 1\/2 connected/);
  });

  it('has one table row per peer with connected, circuit, lag, catching up, paused', () => {
    const lines = text.split('\n');
    const header = lines.find((l) => l.includes('PEER'));
    assert.ok(header);
    for (const col of ['CONNECTED', 'CIRCUIT', 'LAG', 'CATCHING UP', 'PAUSED']) {
      assert.ok(header.includes(col), col);
    }
    const manchester = lines.find((l) => l.trim().startsWith('uk.node.manchester-1'));
    const edinburgh = lines.find((l) => l.trim().startsWith('uk.node.edinburgh-1'));
    assert.ok(manchester && edinburgh);
    assert.match(
      manchester,
      /yes\s+closed\s+12ms \/ 0 ev\s+no\s+no\s+800ms ago\s+in sync 5\.0s ago/,
    );
    assert.match(edinburgh, /no\s+half-open\s+-\s+yes\s+yes/);
    // Columns line up.
    assert.equal(header.indexOf('CIRCUIT'), manchester.indexOf('closed'));
  });

  it('lists errors with credentials redacted', () => {
    assert.match(
      text,
      /errors:\n {2}uk\.node\.edinburgh-1 \(3 in a row, 4\.0s ago\): connect ECONNREFUSED/,
    );
    assert.doesNotMatch(text, /s3cret/);
  });

  it('renders an engine with no peers', () => {
    assert.match(
      formatHealth(health([])),
      /peers: 0\/0 connected\nlocal redis: connected for 1h 01m$/,
    );
  });

  it('says why it is unhealthy, and since when the local Redis is down', () => {
    assert.match(text, /unhealthy:\n {2}peer uk\.node\.edinburgh-1 is disconnected\n/);
    const down: EngineHealth = {
      ...health([]),
      local: {
        connected: false,
        since_ms: NOW - 12_300,
        last_ok_at_ms: NOW - 12_300,
        last_error: 'The client is closed',
        last_error_at_ms: NOW - 12_000,
      },
      problems: ['the local Redis does not answer for 12.3s: The client is closed'],
    };
    const lines = formatHealth(down);
    assert.match(lines, /^local redis: UNREACHABLE for 12\.3s$/m);
    assert.match(lines, /^ {2}the local Redis does not answer for 12\.3s: The client is closed$/m);
    assert.match(lines, /^ {2}local redis \(12\.0s ago\): The client is closed$/m);
  });

  it('says how many keys differed and how many were pulled, not "0/3 fixed"', () => {
    const repaired = (applied: number): string =>
      formatHealth(
        health([
          peer({
            node_id: 'p',
            last_repair: {
              finished_at_ms: NOW - 2000,
              duration_ms: 40,
              outcome: 'ok',
              in_sync: false,
              divergent_keys: 3,
              items_fetched: 3,
              items_applied: applied,
              error: null,
            },
          }),
        ]),
      );
    assert.match(repaired(0), /3 differed, 0 pulled \(this node was newer\) 2\.0s ago/);
    assert.match(repaired(1), /3 differed, 1 pulled \(the rest newer here\) 2\.0s ago/);
    assert.match(repaired(3), /3 differed, 3 pulled 2\.0s ago/);
    assert.doesNotMatch(repaired(0), /fixed/);
  });
});

describe('healthToJson', () => {
  it('is snake_case JSON with credentials redacted', () => {
    const json = healthToJson(
      health([peer({ node_id: 'p', last_error: 'AUTH redis://u:s3cret@h:1' })]),
    );
    assert.doesNotMatch(json, /s3cret/);
    const parsed = JSON.parse(json) as EngineHealth;
    assert.equal(parsed.peers[0]?.node_id, 'p');
    assert.equal(parsed.peers_total, 1);
  });
});

describe('formatDuration', () => {
  it('reads well at every scale', () => {
    assert.equal(formatDuration(850), '850ms');
    assert.equal(formatDuration(12_345), '12.3s');
    assert.equal(formatDuration(245_000), '4m 05s');
    assert.equal(formatDuration(7_380_000), '2h 03m');
    assert.equal(formatDuration(3 * 86_400_000 + 4 * 3_600_000), '3d 04h');
    assert.equal(formatDuration(-1), '-');
  });
});
