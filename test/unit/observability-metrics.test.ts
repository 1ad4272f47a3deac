import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { Registry } from 'prom-client';

import {
  APPLY_LATENCY_BUCKETS,
  CIRCUIT_STATE_VALUE,
  ENGINE_STATE_VALUE,
  METRIC_DEFINITIONS,
  createMetrics,
  metricField,
  renderMetricsTable,
  type MetricDefinition,
} from '../../src/observability/index.js';

const definitions: readonly MetricDefinition[] = METRIC_DEFINITIONS;

/** The seed's names: `readme` ones with their type, `source` ones without. */
function seedNames(): { readme: Map<string, string>; source: string[] } {
  const text = readFileSync(new URL('../fixtures/seed-metric-names.txt', import.meta.url), 'utf8');
  const readme = new Map<string, string>();
  const source: string[] = [];
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '# readme' || line === '# source') section = line.slice(2);
    if (line === '' || line.startsWith('#')) continue;
    const [name, type] = line.split(/\s+/);
    assert.ok(name);
    if (section === 'readme') readme.set(name, type ?? '');
    else source.push(name);
  }
  return { readme, source };
}

async function typeOf(registry: Registry, name: string): Promise<string | undefined> {
  const all = await registry.getMetricsAsJSON();
  return all.find((m) => m.name === name)?.type as unknown as string | undefined;
}

async function valueOf(
  registry: Registry,
  name: string,
  labels: Record<string, string>,
  metricName = name,
): Promise<number | undefined> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const sample = metric?.values.find(
    (v) =>
      ((v as { metricName?: string }).metricName ?? name) === metricName &&
      Object.entries(labels).every(([k, val]) => String(v.labels[k]) === val) &&
      Object.keys(v.labels).length === Object.keys(labels).length,
  );
  return sample?.value;
}

describe('metrics', () => {
  it('registers every metric name of the seed README and source, README types as documented', async () => {
    const { readme, source } = seedNames();
    assert.equal(readme.size, 16);
    assert.ok(source.length >= 50);
    const metrics = createMetrics();
    for (const name of [...readme.keys(), ...source]) {
      assert.ok(metrics.registry.getSingleMetric(name), `${name} is not registered`);
    }
    for (const [name, type] of readme) {
      assert.equal(await typeOf(metrics.registry, name), type, `type of ${name}`);
    }
    const text = await metrics.registry.metrics();
    for (const [name, type] of readme) assert.match(text, new RegExp(`# TYPE ${name} ${type}\\n`));
  });

  it('names each property after its metric and registers each name once', () => {
    const metrics = createMetrics();
    const names = new Set<string>();
    for (const def of definitions) {
      assert.ok(!names.has(def.name), `${def.name} defined twice`);
      names.add(def.name);
      const field = (metrics as unknown as Record<string, unknown>)[metricField(def.name)];
      assert.equal(field, metrics.registry.getSingleMetric(def.name), def.name);
    }
    assert.equal(metrics.registry.getMetricsAsArray().length, definitions.length);
    // The names other components code against.
    metrics.cdcEventsReadTotal.inc({ peer_id: 'p' }, 3);
    metrics.lagMs.set({ peer_id: 'p' }, 10);
    metrics.peerCircuitState.set({ peer_id: 'p' }, CIRCUIT_STATE_VALUE.open);
    metrics.applyLatencySeconds.observe({ peer_id: 'p' }, 0.2);
    metrics.conflictsTotal.inc({ peer_id: 'p' });
    metrics.deadLetteredTotal.inc({ peer_id: 'p', reason: 'bad_zstd' });
    metrics.streamGapsTotal.inc({ peer_id: 'p', kind: 'recreated' });
    metrics.repairDivergentKeys.set({ peer_id: 'p' }, 4);
    metrics.repairCycleDurationSeconds.observe({ peer_id: 'p' }, 1.5);
    metrics.engineState.set(ENGINE_STATE_VALUE.running);
  });

  it('labels every per-peer metric with peer_id', () => {
    const engineWide = new Set([
      'replication_engine_state',
      'replication_connected_peers',
      'replication_cursor_flushes_total',
      'replication_cursor_flushed_count',
      'replication_cursor_flush_errors_total',
      'replication_cursor_retries_total',
      'replication_repair_peers_checked_total',
      'replication_repair_peers_in_sync_total',
      'replication_tombstones_held',
      'replication_tombstones_held_bytes',
      'replication_tombstones_purged_total',
      'replication_local_store_resets_total',
      'replication_local_store_up',
    ]);
    for (const def of definitions) {
      if (engineWide.has(def.name)) assert.ok(!def.labels.includes('peer_id'), def.name);
      else assert.equal(def.labels[0], 'peer_id', def.name);
    }
  });

  it('has our own metrics with their labels and the apply latency buckets from 1 ms to 60 s', () => {
    const byName = new Map(definitions.map((d) => [d.name, d]));
    const labels = (name: string): readonly string[] | undefined => byName.get(name)?.labels;
    assert.deepEqual(labels('replication_conflicts_total'), ['peer_id']);
    assert.deepEqual(labels('replication_dead_lettered_total'), ['peer_id', 'reason']);
    assert.deepEqual(labels('replication_apply_latency_seconds'), ['peer_id']);
    assert.deepEqual(labels('replication_repair_divergent_keys'), ['peer_id']);
    assert.deepEqual(labels('replication_stream_gaps_total'), ['peer_id', 'kind']);
    assert.deepEqual(labels('replication_repair_cycle_duration_seconds'), ['peer_id']);
    assert.equal(APPLY_LATENCY_BUCKETS[0], 0.001);
    assert.equal(APPLY_LATENCY_BUCKETS.at(-1), 60);
    for (const def of definitions) {
      if (def.name.endsWith('_total')) assert.equal(def.type, 'counter', def.name);
      // The seed's lag_seconds and the peer clock offset are gauges: current values, in seconds.
      const gauges = ['replication_lag_seconds', 'replication_peer_clock_offset_seconds'];
      if (def.name.endsWith('_seconds') && !gauges.includes(def.name)) {
        assert.equal(def.type, 'histogram', def.name);
      }
    }
  });

  it('derives the seed duplicates from their source at scrape time', async () => {
    const m = createMetrics();
    const r = m.registry;
    m.lagMs.set({ peer_id: 'a' }, 2500);
    m.peerCircuitState.set({ peer_id: 'a' }, 1);
    m.peerConnected.set({ peer_id: 'a' }, 1);
    m.peerConnected.set({ peer_id: 'b' }, 0);
    m.peerConnected.set({ peer_id: 'c' }, 1);
    m.batchFlushDurationSeconds.observe({ peer_id: 'a' }, 0.01);
    m.batchFlushDurationSeconds.observe({ peer_id: 'a' }, 0.02);
    m.streamGapsTotal.inc({ peer_id: 'a', kind: 'trimmed' }, 2);
    m.streamGapsTotal.inc({ peer_id: 'a', kind: 'recreated' });
    m.peerOperationDurationSeconds.observe({ peer_id: 'a', operation: 'fetch' }, 0.003);
    m.peerOperationDurationSeconds.observe({ peer_id: 'a', operation: 'ping' }, 0.02);
    // Writes to a derived metric do not count: they are overwritten at the next scrape.
    m.batchFlushTotal.inc({ peer_id: 'a' }, 100);
    m.circuitState.set({ peer_id: 'zz' }, 2);

    assert.equal(await valueOf(r, 'replication_lag_seconds', { peer_id: 'a' }), 2.5);
    assert.equal(await valueOf(r, 'replication_lag_slo_ms', { peer_id: 'a' }), 2500);
    assert.equal(await valueOf(r, 'replication_circuit_state', { peer_id: 'a' }), 1);
    assert.equal(await valueOf(r, 'replication_circuit_state', { peer_id: 'zz' }), undefined);
    assert.equal(await valueOf(r, 'replication_connected_peers', {}), 2);
    assert.equal(await valueOf(r, 'replication_batch_flush_total', { peer_id: 'a' }), 2);
    assert.equal(await valueOf(r, 'replication_stream_trimmed_total', { peer_id: 'a' }), 2);
    const latency = 'replication_peer_latency_seconds';
    assert.equal(await valueOf(r, latency, { peer_id: 'a' }, `${latency}_count`), 2);
    assert.equal(await valueOf(r, latency, { peer_id: 'a', le: '0.005' }, `${latency}_bucket`), 1);
    // Scraping twice at once must not double anything.
    const [one, two] = await Promise.all([r.metrics(), r.metrics()]);
    assert.equal(one, two);
    assert.match(one, /^replication_batch_flush_total\{peer_id="a"\} 2$/m);
    assert.match(one, /^replication_peer_latency_seconds_sum\{peer_id="a"\} 0\.023/m);
  });

  it('removePeer drops every series of that peer and only those', async () => {
    const m = createMetrics();
    for (const peer of ['gone', 'kept']) {
      m.lagMs.set({ peer_id: peer }, 5);
      m.cdcEventsReadTotal.inc({ peer_id: peer });
      m.applyLatencySeconds.observe({ peer_id: peer }, 0.1);
      m.deadLetteredTotal.inc({ peer_id: peer, reason: 'hash_mismatch' });
      m.deadLetteredTotal.inc({ peer_id: peer, reason: 'bad_zstd' });
      m.peerOperationDurationSeconds.observe({ peer_id: peer, operation: 'fetch' }, 0.01);
      m.peerState.set({ peer_id: peer, state: 'connected' }, 1);
      m.peerState.set({ peer_id: peer, state: 'connecting' }, 0);
      m.peerConnected.set({ peer_id: peer }, 1);
    }
    m.cursorFlushesTotal.inc();
    await m.removePeer('gone');
    const text = await m.registry.metrics();
    assert.doesNotMatch(text, /peer_id="gone"/);
    assert.match(text, /replication_dead_lettered_total\{peer_id="kept",reason="bad_zstd"\} 1/);
    assert.match(text, /replication_peer_latency_seconds_count\{peer_id="kept"\} 1/);
    assert.match(text, /^replication_connected_peers 1$/m);
    assert.match(text, /^replication_cursor_flushes_total 1$/m);
  });

  it('keeps registries apart and refuses to register twice in one', () => {
    const registry = new Registry();
    createMetrics(registry);
    createMetrics();
    assert.throws(() => createMetrics(registry));
  });

  it('docs/METRICS.md holds the table generated from the definitions', () => {
    const url = new URL('../../docs/METRICS.md', import.meta.url);
    const doc = readFileSync(url, 'utf8');
    const start = '<!-- metrics-table:start -->';
    const end = '<!-- metrics-table:end -->';
    const from = doc.indexOf(start);
    const to = doc.indexOf(end);
    assert.ok(from !== -1 && to > from, 'docs/METRICS.md lacks the table markers');
    const generated = renderMetricsTable();
    if (process.env['UPDATE_METRICS_DOC'] === '1') {
      writeFileSync(
        url,
        `${doc.slice(0, from + start.length)}\n\n${generated}\n\n${doc.slice(to)}`,
      );
      return;
    }
    // Compare cells, not bytes, so the doc may be reformatted (Prettier aligns tables).
    const cells = (table: string): string[][] =>
      table
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l.startsWith('|') && !/^\|[\s:|-]+\|$/.test(l))
        .map((l) =>
          l
            .slice(1, -1)
            .split(/(?<!\\)\|/)
            .map((c) => c.trim()),
        );
    assert.deepEqual(
      cells(doc.slice(from + start.length, to)),
      cells(generated),
      'docs/METRICS.md is out of date: run UPDATE_METRICS_DOC=1 node --import tsx --test ' +
        'test/unit/observability-metrics.test.ts',
    );
  });
});
