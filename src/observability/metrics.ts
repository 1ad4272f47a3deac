/**
 * The engine's Prometheus metrics: one prom-client object per name in {@link METRIC_DEFINITIONS},
 * each a property named after the metric (`replication_lag_ms` → `metrics.lagMs`).
 */
import {
  Counter,
  Gauge,
  Histogram,
  Registry,
  type Aggregator,
  type MetricObjectWithValues,
  type MetricType,
  type MetricValueWithName,
} from 'prom-client';

import type { CircuitStateName, EngineStateName } from './health.js';
import {
  METRIC_DEFINITIONS,
  metricHelp,
  type DerivedFrom,
  type MetricDefinition,
} from './metric-definitions.js';

type Definition = (typeof METRIC_DEFINITIONS)[number];
type Camel<S extends string> = S extends `${infer H}_${infer T}`
  ? `${H}${Capitalize<Camel<T>>}`
  : S;
/** The property name of a metric: its name without `replication_`, in camelCase. */
export type MetricField<N extends string> = N extends `replication_${infer R}` ? Camel<R> : never;
type LabelsOf<D extends Definition> = D['labels'][number];
type MetricOf<D extends Definition> = D['type'] extends 'counter'
  ? Counter<LabelsOf<D>>
  : D['type'] extends 'gauge'
    ? Gauge<LabelsOf<D>>
    : Histogram<LabelsOf<D>>;

/** One prom-client object per metric, typed with its labels. */
export type MetricFields = {
  readonly [D in Definition as MetricField<D['name']>]: MetricOf<D>;
};

/**
 * All metrics of one engine, registered in `registry`.
 *
 * Metrics with `derived` metadata (e.g. `lagSeconds`, `circuitState`, `batchFlushTotal`,
 * `peerLatencySeconds`, `connectedPeers`, `streamTrimmedTotal`) are computed at scrape time from
 * their source: update the source, never them.
 */
export interface Metrics extends MetricFields {
  readonly registry: Registry;
  /**
   * Removes every series labelled with `peerId`, so a peer removed by a hot reload disappears from
   * `/metrics`. Stop the peer's tasks first, or they may write new series.
   */
  removePeer(peerId: string): Promise<void>;
}

/** `replication_engine_state` values: the seed README's 0–3, plus 4 for failed. */
export const ENGINE_STATE_VALUE: Readonly<Record<EngineStateName, number>> = {
  created: 0,
  connecting: 1,
  running: 2,
  shutting_down: 3,
  stopped: 0,
  failed: 4,
};

/** `replication_peer_circuit_state` values. */
export const CIRCUIT_STATE_VALUE: Readonly<Record<CircuitStateName, number>> = {
  closed: 0,
  half_open: 1,
  open: 2,
};

/** The property name of metric `name` (`replication_lag_ms` → `lagMs`). */
export function metricField(name: string): string {
  return name
    .replace(/^replication_/, '')
    .replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

type AnyMetric = Counter<string> | Gauge<string> | Histogram<string>;
type Sample = MetricValueWithName<string>;
type Labels = Record<string, string | number>;

/**
 * Creates every metric of {@link METRIC_DEFINITIONS} in `registry`.
 * @throws Error from prom-client when `registry` already holds one of the names.
 */
export function createMetrics(registry: Registry = new Registry()): Metrics {
  const byName = new Map<string, AnyMetric>();
  const source = (name: string): AnyMetric => {
    const metric = byName.get(name);
    if (metric === undefined) throw new Error(`derived metric source ${name} is not defined`);
    return metric;
  };

  const fields: Record<string, unknown> = {};
  for (const def of METRIC_DEFINITIONS as readonly MetricDefinition[]) {
    const metric = build(def, registry, source);
    byName.set(def.name, metric);
    fields[metricField(def.name)] = metric;
  }

  const perPeer = (METRIC_DEFINITIONS as readonly MetricDefinition[]).filter(
    (d) => d.labels.includes('peer_id') && d.derived === undefined,
  );
  async function removePeer(peerId: string): Promise<void> {
    for (const def of perPeer) {
      const metric = source(def.name);
      if (def.labels.length === 1) {
        metric.remove({ peer_id: peerId });
        continue;
      }
      const seen = new Set<string>();
      for (const sample of (await metric.get()).values as readonly Sample[]) {
        if (sample.labels['peer_id'] !== peerId) continue;
        const labels: Labels = {};
        for (const name of def.labels) {
          const value = sample.labels[name];
          if (value !== undefined) labels[name] = value;
        }
        const key = JSON.stringify(labels);
        if (seen.has(key)) continue;
        seen.add(key);
        metric.remove(labels);
      }
    }
  }

  return Object.freeze({ ...fields, registry, removePeer }) as unknown as Metrics;
}

function build(
  def: MetricDefinition,
  registry: Registry,
  source: (name: string) => AnyMetric,
): AnyMetric {
  const base = {
    name: def.name,
    help: metricHelp(def),
    labelNames: def.labels,
    registers: [registry],
  };
  const derived = def.derived;
  switch (def.type) {
    case 'counter': {
      if (derived === undefined) return new Counter(base);
      const counter: Counter<string> = new Counter({
        ...base,
        async collect() {
          const samples = await derive(derived, source(derived.from), def.labels, false);
          // Reset only after the await, so concurrent scrapes cannot interleave and double count.
          counter.reset();
          for (const s of samples) counter.inc(s.labels, s.value);
        },
      });
      return counter;
    }
    case 'gauge': {
      if (derived === undefined) return new Gauge(base);
      const gauge: Gauge<string> = new Gauge({
        ...base,
        async collect() {
          const samples = await derive(derived, source(derived.from), def.labels, false);
          gauge.reset();
          for (const s of samples) gauge.set(s.labels, s.value);
        },
      });
      return gauge;
    }
    case 'histogram': {
      const config = def.buckets ? { ...base, buckets: [...def.buckets] } : base;
      if (derived === undefined) return new Histogram(config);
      return new DerivedHistogram(config, () => source(derived.from), derived, def.labels);
    }
  }
}

/**
 * The samples of `source` selected and projected onto `labels` as `derived` says, summed per
 * label set (and per histogram series suffix when `histogram`).
 */
async function derive(
  derived: DerivedFrom,
  source: AnyMetric,
  labels: readonly string[],
  histogram: boolean,
): Promise<Sample[]> {
  const values = (await source.get()).values as readonly Sample[];
  const out = new Map<string, Sample>();
  for (const v of values) {
    if (derived.sample === 'count' && !(v.metricName ?? '').endsWith('_count')) continue;
    if (derived.where && !matches(v.labels, derived.where)) continue;
    const projected: Labels = {};
    for (const name of histogram ? [...labels, 'le'] : labels) {
      const value = v.labels[name];
      if (value !== undefined) projected[name] = value;
    }
    const suffix = histogram
      ? (v.metricName ?? '').slice((source as unknown as MetricInternals).name.length)
      : '';
    const key = `${suffix}\u0000${JSON.stringify(projected)}`;
    const value = derived.countNonZero ? (v.value !== 0 ? 1 : 0) : v.value * (derived.scale ?? 1);
    const prev = out.get(key);
    if (prev) prev.value += value;
    else out.set(key, { labels: projected, value, metricName: suffix });
  }
  return [...out.values()];
}

function matches(labels: Partial<Labels>, where: Readonly<Record<string, string>>): boolean {
  return Object.entries(where).every(([name, value]) => labels[name] === value);
}

/** Fields prom-client sets on every metric at runtime but leaves out of its typings. */
interface MetricInternals {
  readonly name: string;
  readonly help: string;
  readonly aggregator: Aggregator;
}

/** A histogram whose series are those of another histogram, summed over the labels it drops. */
class DerivedHistogram extends Histogram<string> {
  readonly #source: () => AnyMetric;
  readonly #derived: DerivedFrom;
  readonly #labels: readonly string[];

  constructor(
    config: ConstructorParameters<typeof Histogram<string>>[0],
    source: () => AnyMetric,
    derived: DerivedFrom,
    labels: readonly string[],
  ) {
    super(config);
    this.#source = source;
    this.#derived = derived;
    this.#labels = labels;
  }

  // Not via super.get(): prom-client's get() calls getForPromString(), which is overridden below.
  override async get(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    const self = this as unknown as MetricInternals;
    const samples = await derive(this.#derived, this.#source(), this.#labels, true);
    return {
      name: self.name,
      help: self.help,
      // The typings say enum, the runtime (and the text format) uses the string.
      type: 'histogram' as unknown as MetricType,
      aggregator: self.aggregator,
      collect: () => undefined,
      values: samples.map((s) => ({ ...s, metricName: `${self.name}${s.metricName ?? ''}` })),
    };
  }

  /** The registry renders histograms through this prom-client method when it exists. */
  getForPromString(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    return this.get();
  }
}
