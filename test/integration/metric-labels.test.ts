/**
 * Every label value the code emits is one METRICS.md lists (the definitions generate both the doc
 * and `# HELP`): checked on the source (every literal label value passed to a metric) and on a
 * real scrape after a peer's Redis was killed and brought back (the circuit went open, half open
 * and closed, which once emitted `half-open` where the docs say `half_open`).
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { resolveConfig } from '../../src/config/resolve.js';
import type { CircuitState } from '../../src/engine/circuit-breaker.js';
import { PeerLink, circuitLabel } from '../../src/engine/peer-link.js';
import type { CorruptReason } from '../../src/errors.js';
import { createLogger } from '../../src/observability/logger.js';
import {
  METRIC_DEFINITIONS,
  metricHelp,
  type MetricDefinition,
} from '../../src/observability/metric-definitions.js';
import { createMetrics, metricField, type Metrics } from '../../src/observability/metrics.js';
import { eventually, startRedis, type RedisServer } from '../helpers/redis-server.js';

const definitions: readonly MetricDefinition[] = METRIC_DEFINITIONS;
const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** The definition whose `Metrics` property is `field`. */
function byField(field: string): MetricDefinition | undefined {
  return definitions.find((d) => metricField(d.name) === field);
}

/** Label values that break the docs: a value of an enumerated label that is not listed. */
function undocumented(def: MetricDefinition, labels: Readonly<Record<string, unknown>>): string[] {
  const wrong: string[] = [];
  for (const [label, value] of Object.entries(labels)) {
    const allowed = def.labelValues?.[label];
    if (allowed !== undefined && !allowed.includes(String(value))) {
      wrong.push(`${def.name}{${label}="${String(value)}"} (documented: ${allowed.join('|')})`);
    }
  }
  return wrong;
}

async function scrapeProblems(metrics: Metrics): Promise<string[]> {
  const wrong: string[] = [];
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    const def = definitions.find((d) => d.name === metric.name);
    assert.ok(def, `${metric.name} has no definition`);
    for (const sample of metric.values) wrong.push(...undocumented(def, sample.labels));
  }
  return wrong;
}

describe('metric label values', () => {
  it('every label but peer_id has its values listed, and the help text shows them', () => {
    for (const def of definitions) {
      for (const label of def.labels) {
        if (label === 'peer_id') continue;
        const values = def.labelValues?.[label];
        assert.ok(
          values && values.length > 0,
          `${def.name}: the values of ${label} are not listed`,
        );
        assert.ok(metricHelp(def).includes(`${label}: ${values.join('|')}`), def.name);
      }
      for (const label of Object.keys(def.labelValues ?? {})) {
        assert.ok(def.labels.includes(label), `${def.name}: ${label} is not one of its labels`);
      }
    }
  });

  it('every literal label value in src/ is documented for its metric', () => {
    const call = /\.(\w+)\.(?:inc|set|observe|labels)\(\s*\{([^}]*)\}/g;
    const pair = /(\w+):\s*'([^']*)'/g;
    const wrong: string[] = [];
    let checked = 0;
    for (const file of sourceFiles(SRC)) {
      const text = readFileSync(file, 'utf8');
      for (const match of text.matchAll(call)) {
        const def = byField(match[1]!);
        if (def === undefined) continue;
        for (const [, label, value] of match[2]!.matchAll(pair)) {
          checked += 1;
          wrong.push(...undocumented(def, { [label!]: value }).map((w) => `${file}: ${w}`));
        }
      }
    }
    assert.ok(checked >= 10, `only ${checked} literal label values found: is the scan broken?`);
    assert.deepEqual(wrong, []);
  });

  it('the values of typed labels are the documented ones', () => {
    const states: readonly CircuitState[] = ['closed', 'half-open', 'open'];
    const transitions = definitions.find(
      (d) => d.name === 'replication_peer_circuit_transitions_total',
    );
    assert.deepEqual(
      states.map((s) => circuitLabel(s)),
      transitions?.labelValues?.['state'],
    );
    const reasons = {
      empty: 1,
      missing_op: 1,
      unknown_op: 1,
      missing_key: 1,
      bad_key: 1,
      missing_data: 1,
      bad_zstd: 1,
      too_large: 1,
      hash_mismatch: 1,
      bad_meta: 1,
      bad_field: 1,
      bad_id: 1,
    } satisfies Record<CorruptReason, 1>; // tsc fails here when a reason is added
    const dead = definitions.find((d) => d.name === 'replication_dead_lettered_total');
    assert.deepEqual(
      [...(dead?.labelValues?.['reason'] ?? [])].sort(),
      Object.keys(reasons).sort(),
    );
  });

  describe('on a real scrape', () => {
    let server: RedisServer;
    before(async () => {
      server = await startRedis();
    });
    after(async () => {
      await server.stop();
    });

    it('a circuit that opens, goes half open and closes emits only documented values', async () => {
      const config = resolveConfig({
        replication: {
          local_node_id: 'node-b',
          peers: [
            {
              node_id: 'node-a',
              redis_url: server.url,
              circuit_failure_threshold: 1,
              circuit_reset_timeout_sec: '200ms',
            },
          ],
          cursor: { sqlite_path: ':memory:' },
        },
      });
      const metrics = createMetrics();
      const link = new PeerLink(
        config.replication.peers[0]!,
        metrics,
        createLogger({ level: 'silent' }),
        { peerHealth: () => config.replication.peerHealth, slo: () => config.replication.slo },
        { onUp: () => undefined, onDown: () => undefined },
      );
      link.start();
      try {
        await eventually(() => link.connected, 'the link connects');
        await server.kill();
        await link.run('xinfo', (c) => c.sendCommand(['PING'])).catch(() => undefined);
        assert.equal(link.breaker.state === 'closed', false, 'the circuit opened');
        await eventually(() => link.breaker.state === 'half-open', 'the circuit goes half open');
        await server.restart();
        await eventually(async () => {
          await link.run('ping', (c) => c.sendCommand(['PING'])).catch(() => undefined);
          return link.breaker.state === 'closed';
        }, 'the circuit closes');
        const text = await metrics.registry.metrics();
        assert.match(text, /replication_peer_circuit_transitions_total\{[^}]*state="half_open"/);
        assert.deepEqual(await scrapeProblems(metrics), []);
      } finally {
        await link.close();
      }
    });
  });
});
