/**
 * docs/prometheus/alerts.yml and docs/grafana/replication-engine.json against the metrics the
 * daemon exports: promtool (Debian's `prometheus` package) checks the rules, runs their unit tests
 * (test/fixtures/prometheus/alerts.test.yml) and parses every dashboard query; every metric either
 * file names is one of src/observability/metric-definitions.ts (histograms with their _bucket,
 * _sum and _count series); and both cover what operators need to see and be woken for.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

import { parse } from 'yaml';

import { METRIC_DEFINITIONS } from '../../src/observability/metric-definitions.js';
import { REPO } from '../fixtures/cli/cli-process.js';

const run = promisify(execFile);
const RULES = join(REPO, 'docs/prometheus/alerts.yml');
const DASHBOARD = join(REPO, 'docs/grafana/replication-engine.json');

interface Rule {
  readonly alert: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}

interface Target {
  readonly expr: string;
  readonly refId: string;
  readonly datasource?: { readonly uid?: string };
}

interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly gridPos: {
    readonly x: number;
    readonly y: number;
    readonly w: number;
    readonly h: number;
  };
  readonly datasource?: { readonly uid?: string };
  readonly targets?: readonly Target[];
}

interface Dashboard {
  readonly uid: string;
  readonly panels: readonly Panel[];
  readonly templating: {
    readonly list: readonly { readonly name: string; readonly definition?: string }[];
  };
}

const rules = (
  parse(readFileSync(RULES, 'utf8')) as { groups: { rules: Rule[] }[] }
).groups.flatMap((g) => g.rules);
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));

/** Every series name the daemon exports: each definition, and a histogram's three series. */
const series = new Set(
  METRIC_DEFINITIONS.flatMap((d) =>
    d.type === 'histogram' ? [`${d.name}_bucket`, `${d.name}_sum`, `${d.name}_count`] : [d.name],
  ),
);
/** What prose may name besides: a histogram by its family name. */
const families = new Set([...series, ...METRIC_DEFINITIONS.map((d) => d.name)]);

/** The `replication_…` names in a text (PromQL, or prose that names a metric). */
function metricNames(text: string): string[] {
  return [...text.matchAll(/\breplication_[a-z0-9_]+/g)].map((m) => m[0]);
}

describe('Prometheus alert rules and the Grafana dashboard', () => {
  it('promtool check rules accepts docs/prometheus/alerts.yml', async () => {
    const { stdout } = await run('promtool', ['check', 'rules', RULES]);
    assert.match(stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
  });

  it('the rules fire as intended on series like the daemon exports (promtool test rules)', async () => {
    const { stdout } = await run('promtool', ['test', 'rules', 'alerts.test.yml'], {
      cwd: join(REPO, 'test/fixtures/prometheus'),
    });
    assert.match(stdout, /SUCCESS/);
  });

  it('every dashboard query is valid PromQL (promtool, with the variables filled in)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'grafana-promql-'));
    try {
      const fill = (expr: string): string =>
        expr
          .replaceAll('$__rate_interval', '5m')
          .replaceAll('$__range', '1h')
          .replace(/\$(instance|peer)\b/g, '.*');
      const variables = dashboard.templating.list
        .map((v) => /^label_values\((.+), *[a-z_]+\)$/.exec(v.definition ?? '')?.[1])
        .filter((q): q is string => q !== undefined);
      const file = join(dir, 'queries.yml');
      writeFileSync(
        file,
        JSON.stringify({
          groups: [
            {
              name: 'dashboard',
              rules: [...queries, ...variables].map((expr, i) => ({
                record: `dashboard:query_${i}`,
                expr: fill(expr),
              })),
            },
          ],
        }),
      );
      await run('promtool', ['check', 'rules', file]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('every metric the rules and the dashboard name is one the daemon exports', () => {
    for (const [file, text] of [
      ['docs/prometheus/alerts.yml', readFileSync(RULES, 'utf8')],
      ['docs/grafana/replication-engine.json', readFileSync(DASHBOARD, 'utf8')],
    ] as const) {
      const names = new Set(metricNames(text));
      assert.ok(names.size > 10, `${file} names metrics`);
      const unknown = [...names].filter((n) => !families.has(n));
      assert.deepEqual(unknown, [], `${file} names metrics the daemon does not export`);
    }
    // A query selects series: a histogram only by its _bucket, _sum or _count.
    for (const [what, expr] of [
      ...rules.map((r) => [r.alert, r.expr] as const),
      ...queries.map((q) => ['a dashboard query', q] as const),
    ]) {
      const names = metricNames(expr);
      assert.ok(names.length > 0, `${what} queries a replication metric: ${expr}`);
      const unknown = names.filter((n) => !series.has(n));
      assert.deepEqual(unknown, [], `${what} selects series the daemon does not export: ${expr}`);
    }
  });

  it('the rules cover what the issue asks for, each with a severity, a summary and a description', () => {
    const byName = new Map(rules.map((r) => [r.alert, r]));
    assert.equal(byName.size, rules.length, 'alert names are unique');
    const uses = (alert: string, metric: string): void => {
      const rule = byName.get(alert);
      assert.ok(rule, `alert ${alert}`);
      assert.ok(metricNames(rule.expr).includes(metric), `${alert} uses ${metric}`);
    };
    uses('ReplicationPeerDown', 'replication_peer_connected');
    uses('ReplicationLagOverSLO', 'replication_lag_slo_violation');
    uses('ReplicationCircuitOpen', 'replication_peer_circuit_state');
    uses('ReplicationTombstonesHeldBack', 'replication_tombstone_gc_blocked');
    uses('ReplicationQuarantineRising', 'replication_dead_lettered_total');
    uses('ReplicationQuarantineRising', 'replication_repair_rejected_total');
    uses('ReplicationClockSkewHeldBack', 'replication_clock_skew_rejected_total');
    uses('ReplicationPeerClockOffset', 'replication_peer_clock_offset_seconds');
    uses('ReplicationEngineNotRunning', 'replication_engine_state');
    uses('ReplicationLocalStoreDown', 'replication_local_store_up');
    for (const rule of rules) {
      assert.match(rule.labels?.['severity'] ?? '', /^(critical|warning|info)$/, rule.alert);
      assert.ok(rule.annotations?.['summary'], `${rule.alert} has a summary`);
      assert.ok(rule.annotations?.['description'], `${rule.alert} has a description`);
    }
  });

  it('the dashboard shows lag, throughput, latency, conflicts, repairs, circuits and quarantine per peer', () => {
    const ids = dashboard.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    assert.equal(dashboard.uid, 'replication-engine');
    const graphs = dashboard.panels.filter((p) => p.type !== 'row');
    for (const panel of graphs) {
      assert.equal(panel.datasource?.uid, '${datasource}', `${panel.title}: the chosen datasource`);
      assert.ok((panel.targets ?? []).length > 0, `${panel.title} has queries`);
      assert.ok(panel.gridPos.x + panel.gridPos.w <= 24, `${panel.title} fits the grid`);
    }
    /** A panel titled `title` that draws `metric` per peer (selected or grouped by peer_id). */
    const shown = (metric: string, title: RegExp): void => {
      const panel = graphs.find(
        (p) =>
          title.test(p.title) &&
          (p.targets ?? []).some((t) => t.expr.includes(metric) && t.expr.includes('peer_id')),
      );
      assert.ok(panel, `a panel titled ${title} over ${metric} per peer`);
    };
    shown('replication_lag_seconds', /lag/i);
    shown('replication_lag_events', /lag/i);
    shown('replication_cdc_events_applied_total', /throughput/i);
    shown('replication_apply_latency_seconds_bucket', /latency/i);
    shown('replication_conflicts_total', /conflict/i);
    shown('replication_repair_cycles_total', /repair/i);
    shown('replication_peer_circuit_state', /circuit/i);
    shown('replication_dead_lettered_total', /quarantin/i);
  });
});
