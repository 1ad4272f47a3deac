/**
 * The seeded fault schedule of a chaos run: which fault, where, when and for how long. Pure: the
 * same seed and options always give the same schedule, so a failing run can be replayed.
 */

/** A small, fast, seedable PRNG (mulberry32). */
export class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** One key of `weights`, with probability proportional to its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as [K, number][];
    const total = entries.reduce((sum, [, w]) => sum + w, 0);
    let x = this.next() * total;
    for (const [k, w] of entries) {
      x -= w;
      if (x < 0) return k;
    }
    return entries[entries.length - 1]![0];
  }
}

/** Every kind of fault a schedule injects. */
export type FaultKind =
  | 'partition'
  | 'redis-restart'
  | 'redis-wipe'
  | 'engine-kill'
  | 'engine-restart'
  | 'trim'
  | 'latency'
  | 'cut'
  | 'corrupt'
  | 'local-conn-kill'
  | 'away-past-ttl';

/** All fault kinds, in report order. */
export const FAULT_KINDS: readonly FaultKind[] = [
  'partition',
  'redis-restart',
  'redis-wipe',
  'engine-kill',
  'engine-restart',
  'trim',
  'latency',
  'cut',
  'corrupt',
  'local-conn-kill',
  'away-past-ttl',
];

/**
 * Kinds only a repair can fix (entries gone from a stream, a Redis without its data, an entry the
 * hot path must refuse, a node back after deletes it missed were trimmed from the streams and
 * purged): left out of a hot-path-only schedule, where no repair runs (and, with no repair, no
 * acknowledgement: nothing is ever purged).
 */
export const REPAIR_ONLY_KINDS: readonly FaultKind[] = [
  'trim',
  'redis-wipe',
  'corrupt',
  'away-past-ttl',
];

/**
 * `store.tombstone_ttl` and `store.max_clock_skew` of the engines of a run whose schedule can hold
 * `away-past-ttl` (every run with the cold path on): a node away for longer than the TTL returns
 * to peers that purged what they could. An away lasts {@link AWAY_MIN_MS}–{@link AWAY_MAX_MS}.
 */
export const AWAY_TOMBSTONE_TTL = '2s';
export const AWAY_MAX_CLOCK_SKEW = '200ms';
export const AWAY_MIN_MS = 3000;
export const AWAY_MAX_MS = 6000;

/** One fault: starts at `atMs` from the start of the fault phase, lasts `durationMs`. */
export type Fault =
  /** The links a→b and b→a refuse connections; open ones are held (`drop`) or reset. */
  | {
      readonly kind: 'partition';
      readonly atMs: number;
      readonly durationMs: number;
      readonly a: number;
      readonly b: number;
      readonly mode: 'drop' | 'reset';
    }
  /** Node's Redis SIGKILLed, restarted after `durationMs` with its data (appendonly). */
  | {
      readonly kind: 'redis-restart';
      readonly atMs: number;
      readonly durationMs: number;
      readonly node: number;
    }
  /** Node's Redis SIGKILLed, restarted after `durationMs` with its data files removed. */
  | {
      readonly kind: 'redis-wipe';
      readonly atMs: number;
      readonly durationMs: number;
      readonly node: number;
    }
  /** Node's engine process SIGKILLed, started again after `durationMs`. */
  | {
      readonly kind: 'engine-kill';
      readonly atMs: number;
      readonly durationMs: number;
      readonly node: number;
    }
  /** Node's engine process SIGTERMed (drain), started again after `durationMs`. */
  | {
      readonly kind: 'engine-restart';
      readonly atMs: number;
      readonly durationMs: number;
      readonly node: number;
    }
  /** `XTRIM cdc MAXLEN 0` on node's Redis. */
  | { readonly kind: 'trim'; readonly atMs: number; readonly durationMs: 0; readonly node: number }
  /** Every link into node's Redis delays each chunk by `ms`. */
  | {
      readonly kind: 'latency';
      readonly atMs: number;
      readonly durationMs: number;
      readonly node: number;
      readonly ms: number;
    }
  /** The next `connections` replies on link from→to are cut after `bytes` bytes. */
  | {
      readonly kind: 'cut';
      readonly atMs: number;
      readonly durationMs: 0;
      readonly from: number;
      readonly to: number;
      readonly bytes: number;
      readonly connections: number;
    }
  /** A corrupt entry (bad hash) appended to node's CDC stream. */
  | {
      readonly kind: 'corrupt';
      readonly atMs: number;
      readonly durationMs: 0;
      readonly node: number;
    }
  /**
   * For `durationMs`, every `everyMs`, the engine's connections to node's own Redis are killed
   * (`CLIENT KILL ID`): applies and cursor-guarding reads fail mid-batch, and reconnect at once.
   */
  | {
      readonly kind: 'local-conn-kill';
      readonly atMs: number;
      readonly durationMs: number;
      readonly node: number;
      readonly everyMs: number;
    }
  /**
   * A node away past the TTL: its clients pause, its engine is stopped (`engineSignal`) and its
   * Redis SIGKILLed (its data kept, appendonly) for `durationMs`, longer than the TTL, while the
   * others write, delete and purge; just before it returns every other node's stream is trimmed
   * (the deletes it missed are gone from the hot path). Its Redis comes back first, its clients
   * with it, and its engine `engineLagMs` later (peers repair against its old data meanwhile).
   */
  | {
      readonly kind: 'away-past-ttl';
      readonly atMs: number;
      readonly durationMs: number;
      readonly node: number;
      readonly engineSignal: 'SIGKILL' | 'SIGTERM';
      readonly engineLagMs: number;
    };

/** What a schedule is made for. */
export interface ScheduleOptions {
  readonly nodes: number;
  /** Length of the fault phase. */
  readonly durationMs: number;
  /** Mean time between fault starts. @default 1000 */
  readonly meanGapMs?: number;
  /** Leave out `redis-wipe` faults. @default false */
  readonly noWipe?: boolean;
  /** Leave out the {@link REPAIR_ONLY_KINDS}: for a run with the cold path off. @default false */
  readonly hotPathOnly?: boolean;
}

const WEIGHTS: Readonly<Record<FaultKind, number>> = {
  partition: 5,
  'redis-restart': 2,
  'redis-wipe': 1,
  'engine-kill': 3,
  'engine-restart': 1,
  trim: 2,
  latency: 2,
  cut: 3,
  corrupt: 1,
  'local-conn-kill': 2,
  'away-past-ttl': 1,
};

/**
 * A hot-path-only schedule weighs the local store's failures more: a failed apply is where a
 * hot path can move on past entries it never applied (a failed read is simply retried).
 */
const HOT_PATH_WEIGHTS: Partial<Record<FaultKind, number>> = {
  'redis-restart': 3,
  'local-conn-kill': 4,
};

/** The resources a fault holds while it lasts; two faults on one resource never overlap. */
export function resourcesOf(fault: Fault): string[] {
  switch (fault.kind) {
    case 'partition':
      return [`link:${fault.a}:${fault.b}`, `link:${fault.b}:${fault.a}`];
    case 'redis-restart':
    case 'redis-wipe':
      // One Redis down at a time: a wipe reads the survivors to know what had replicated.
      return ['redis', `redis:${fault.node}`];
    case 'engine-kill':
    case 'engine-restart':
      return [`engine:${fault.node}`];
    case 'latency':
      return [`latency:${fault.node}`];
    case 'local-conn-kill':
      return [`local-conn:${fault.node}`];
    case 'away-past-ttl':
      // Its Redis and engine are down: no other Redis fault at once (the mesh needs a quorum of
      // two up to purge and to keep writing), no engine fault on it.
      return ['redis', `redis:${fault.node}`, `engine:${fault.node}`];
    case 'trim':
    case 'cut':
    case 'corrupt':
      return [];
  }
}

/** The seeded schedule: faults sorted by start, never two on one resource at once. */
export function makeSchedule(seed: number, options: ScheduleOptions): Fault[] {
  const rng = new Rng(seed ^ 0x9e3779b9);
  const n = options.nodes;
  const meanGap = options.meanGapMs ?? 1000;
  const busyUntil = new Map<string, number>();
  const faults: Fault[] = [];
  const weights: Record<FaultKind, number> = { ...WEIGHTS };
  if (options.noWipe === true) weights['redis-wipe'] = 0;
  if (options.hotPathOnly === true) {
    Object.assign(weights, HOT_PATH_WEIGHTS);
    for (const kind of REPAIR_ONLY_KINDS) weights[kind] = 0;
  }
  let t = rng.int(200, 800);
  while (t < options.durationMs - 500) {
    const kind = rng.weighted(weights);
    const node = rng.int(0, n - 1);
    const other = (node + rng.int(1, n - 1)) % n;
    const span = (min: number, max: number): number =>
      Math.min(rng.int(min, max), Math.max(0, options.durationMs - t));
    let fault: Fault | undefined;
    switch (kind) {
      case 'partition':
        fault = {
          kind,
          atMs: t,
          durationMs: span(500, 5000),
          a: Math.min(node, other),
          b: Math.max(node, other),
          mode: rng.chance(0.5) ? 'drop' : 'reset',
        };
        break;
      case 'redis-restart':
      case 'redis-wipe':
      case 'engine-kill':
      case 'engine-restart':
        fault = { kind, atMs: t, durationMs: span(200, 3000), node };
        break;
      case 'latency':
        fault = { kind, atMs: t, durationMs: span(1000, 5000), node, ms: rng.int(20, 300) };
        break;
      case 'local-conn-kill':
        fault = {
          kind,
          atMs: t,
          durationMs: span(1000, 5000),
          node,
          everyMs: rng.int(100, 300),
        };
        break;
      case 'cut':
        fault = {
          kind,
          atMs: t,
          durationMs: 0,
          from: node,
          to: other,
          bytes: rng.int(0, 2000),
          connections: rng.int(1, 2),
        };
        break;
      case 'trim':
      case 'corrupt':
        fault = { kind, atMs: t, durationMs: 0, node };
        break;
      case 'away-past-ttl': {
        // Never cut short by the end of the phase: an away shorter than the TTL tests nothing.
        const durationMs = rng.int(AWAY_MIN_MS, AWAY_MAX_MS);
        const engineSignal = rng.chance(0.5) ? 'SIGKILL' : 'SIGTERM';
        const engineLagMs = rng.int(0, 2000);
        if (t + AWAY_MIN_MS <= options.durationMs)
          fault = { kind, atMs: t, durationMs, node, engineSignal, engineLagMs };
        break;
      }
    }
    const resources = fault === undefined ? undefined : resourcesOf(fault);
    if (
      fault !== undefined &&
      resources !== undefined &&
      resources.every((r) => (busyUntil.get(r) ?? 0) <= t)
    ) {
      // A margin after each fault lets the action itself (a restart) finish before the next.
      for (const r of resources) busyUntil.set(r, t + fault.durationMs + 500);
      faults.push(fault);
    }
    t += Math.max(50, Math.round(-Math.log(1 - rng.next()) * meanGap));
  }
  return faults;
}

/** A node's name in reports: node-a, node-b, … */
export function nodeName(i: number): string {
  return `node-${String.fromCharCode(97 + i)}`;
}

/** One line per fault, as printed with a failing seed. */
export function describeFault(fault: Fault): string {
  const at = `t=${(fault.atMs / 1000).toFixed(2)}s`;
  const dur = `for ${(fault.durationMs / 1000).toFixed(2)}s`;
  switch (fault.kind) {
    case 'partition':
      return `${at} partition ${nodeName(fault.a)} <-> ${nodeName(fault.b)} (${fault.mode}) ${dur}`;
    case 'latency':
      return `${at} latency ${fault.ms}ms on links into ${nodeName(fault.node)} ${dur}`;
    case 'local-conn-kill':
      return `${at} local-conn-kill ${nodeName(fault.node)}'s engine connections to its own Redis every ${fault.everyMs}ms ${dur}`;
    case 'cut':
      return `${at} cut ${fault.connections} conn(s) ${nodeName(fault.from)} -> ${nodeName(fault.to)} after ${fault.bytes} bytes`;
    case 'trim':
    case 'corrupt':
      return `${at} ${fault.kind} ${nodeName(fault.node)}`;
    case 'away-past-ttl':
      return `${at} away-past-ttl ${nodeName(fault.node)}: engine ${fault.engineSignal}, Redis SIGKILLed (data kept) ${dur}, the others' streams trimmed, Redis back ${(fault.engineLagMs / 1000).toFixed(2)}s before the engine`;
    default:
      return `${at} ${fault.kind} ${nodeName(fault.node)} ${dur}`;
  }
}

/** Faults counted by kind. */
export function countByKind(faults: readonly Fault[]): Record<FaultKind, number> {
  const counts = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  for (const f of faults) counts[f.kind]++;
  return counts;
}
