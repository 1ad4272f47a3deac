/**
 * One randomized chaos scenario: a three-node mesh, clients writing, overwriting and deleting on
 * every node at once, a seeded fault schedule; then heal everything, wait for convergence and
 * check the promise (identical records and Merkle roots everywhere, the LWW maximum of the
 * acknowledged writes survives for every key, nothing deleted comes back, nothing left running).
 * In hot-path-only mode the cold path is off and no repair may change anything: the hot path
 * alone must deliver every write.
 */
import { compareVersions, type StoredRecord } from '../../src/model/record.js';
import { SyncStore } from '../../src/store/sync-store.js';
import { ChaosCluster, type EngineEventCounts } from './cluster.js';
import { History, checkHistory, type Violation } from './history.js';
import {
  AWAY_MAX_CLOCK_SKEW,
  AWAY_TOMBSTONE_TTL,
  Rng,
  countByKind,
  describeFault,
  makeSchedule,
  nodeName,
  resourcesOf,
  type Fault,
  type FaultKind,
} from './schedule.js';

/** How a scenario runs. */
export interface ScenarioOptions {
  /** Length of the fault phase. @default 30_000 */
  readonly durationMs?: number;
  /** @default 3 */
  readonly nodes?: number;
  /**
   * Keys shared by every client (few keys: many overwrites and conflicts); the single-write keys
   * come on top. @default 40
   */
  readonly keys?: number;
  /** Concurrent client loops per node. @default 2 */
  readonly writersPerNode?: number;
  /** How long to wait for convergence after healing. @default 60_000 */
  readonly convergeTimeoutMs?: number;
  /** Leave out Redis restarts without data. @default false */
  readonly noWipe?: boolean;
  /**
   * The cold path off on every node (`cold_path.enabled: false`), only faults the hot path must
   * survive on its own (no trim, wipe or corrupt entry), and a stream gap or a repair that changed
   * anything is a violation: with no fault that loses stream entries, either means the hot path
   * lost writes and a repair covered for it. @default false
   */
  readonly hotPathOnly?: boolean;
  /** Keep the run's temp dir (engine logs, cursors) even when it passes. @default false */
  readonly keep?: boolean;
  /** Progress lines. */
  readonly log?: (line: string) => void;
}

/** The outcome of one scenario. */
export interface ScenarioResult {
  readonly seed: number;
  readonly mode: 'default' | 'hot-path-only';
  readonly ok: boolean;
  readonly schedule: readonly Fault[];
  /** Faults that were actually injected, by kind. */
  readonly injected: Record<FaultKind, number>;
  readonly violations: readonly Violation[];
  readonly writes: ReturnType<History['counts']> & { total: number };
  readonly events: EngineEventCounts;
  /** Engine connections to their own Redis killed by `local-conn-kill` faults. */
  readonly localConnsKilled: number;
  /** Tombstones purged during the fault phase (the rest were purged after the heal). */
  readonly purgedInFaultPhase: number;
  /** When the fault phase began (ms since the epoch): fault `atMs` and write clocks line up. */
  readonly phaseStartedAt: number;
  /** Time from the end of healing to convergence; undefined when it never converged. */
  readonly convergeMs: number | undefined;
  readonly totalMs: number;
  /** The run's temp dir with engine logs, kept when the run failed. */
  readonly keptDir: string | undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** Per-resource mutual exclusion, so an overrunning restart never overlaps the next fault. */
class Locks {
  readonly #tails = new Map<string, Promise<void>>();

  async with<T>(resources: readonly string[], fn: () => Promise<T>): Promise<T> {
    const sorted = [...resources].sort();
    const previous = sorted.map((r) => this.#tails.get(r) ?? Promise.resolve());
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    for (const r of sorted) this.#tails.set(r, mine);
    await Promise.all(previous);
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

/** A gate a node's clients wait at while it is closed; `inFlight` counts their open writes. */
class Gate {
  #open: Promise<void> = Promise.resolve();
  #release: (() => void) | undefined;
  inFlight = 0;
  #idle: (() => void)[] = [];

  close(): void {
    if (this.#release !== undefined) return;
    this.#open = new Promise((r) => (this.#release = r));
  }

  open(): void {
    this.#release?.();
    this.#release = undefined;
  }

  wait(): Promise<void> {
    return this.#open;
  }

  enter(): void {
    this.inFlight++;
  }

  leave(): void {
    this.inFlight--;
    if (this.inFlight === 0) for (const r of this.#idle.splice(0)) r();
  }

  /** Resolves once no write is in flight. */
  drained(): Promise<void> {
    return this.inFlight === 0 ? Promise.resolve() : new Promise((r) => this.#idle.push(r));
  }
}

/**
 * Share of writes that put a key no other write touches: on the few overwritten keys, a later
 * write covers a lost one (the survivor is the LWW maximum either way), so only the last writes of
 * a run could show a loss; a key written once shows every write the mesh loses, at any time.
 */
const SINGLE_WRITE_SHARE = 0.4;
/** Share of writes that delete one of the writer's single-write keys (its second and last write). */
const SINGLE_DELETE_SHARE = 0.1;

/**
 * When a node's clients pause: [start, end) ms into the fault phase, busy 0.5-3 s then quiet
 * 0.5-3 s. A stream that goes quiet is what real meshes see between bursts, and where a hot path
 * that forgets a failed batch shows it: no next batch comes soon to expose the failure.
 */
function lullsOf(seed: number, node: number, durationMs: number): [number, number][] {
  const rng = new Rng((seed * 131 + node) ^ 0x27d4eb2f);
  const lulls: [number, number][] = [];
  for (let t = rng.int(500, 3000); t < durationMs; t += rng.int(500, 3000)) {
    const end = t + rng.int(500, 3000);
    lulls.push([t, end]);
    t = end;
  }
  return lulls;
}

function content(rng: Rng, id: number, node: string): Buffer {
  const roll = rng.next();
  const padLength =
    roll < 0.7 ? rng.int(0, 20) : roll < 0.95 ? rng.int(100, 1000) : rng.int(5000, 20000);
  return Buffer.from(JSON.stringify({ id, node, pad: 'p'.repeat(padLength) }));
}

/** Runs one seeded scenario and checks it. Never throws for a failed check: see `violations`. */
export async function runScenario(
  seed: number,
  options: ScenarioOptions = {},
): Promise<ScenarioResult> {
  const started = Date.now();
  const durationMs = options.durationMs ?? 30_000;
  const nodes = options.nodes ?? 3;
  const keyCount = options.keys ?? 40;
  const log = options.log ?? (() => undefined);
  const hotPathOnly = options.hotPathOnly === true;
  const schedule = makeSchedule(seed, {
    nodes,
    durationMs,
    ...(options.noWipe === true ? { noWipe: true } : {}),
    ...(hotPathOnly ? { hotPathOnly: true } : {}),
  });
  const injected = countByKind([]);
  const violations: Violation[] = [];
  const history = new History();
  // With the cold path on, `away-past-ttl` can occur: every run of that mode purges tombstones
  // (a 2 s TTL), so acknowledged collection and the purge horizon are tested under every fault.
  const cluster = await ChaosCluster.start(
    nodes,
    hotPathOnly
      ? { coldPath: false }
      : { coldPath: true, tombstoneTtl: AWAY_TOMBSTONE_TTL, maxClockSkew: AWAY_MAX_CLOCK_SKEW },
  );
  let localConnsKilled = 0;
  let phaseStartedAt = 0;
  const stores: SyncStore[] = [];
  let convergeMs: number | undefined;
  let keptDir: string | undefined;
  try {
    for (let i = 0; i < nodes; i++) {
      stores.push(
        await SyncStore.connect({
          redisUrl: cluster.redis[i]!.url,
          nodeId: nodeName(i),
          commandTimeoutMs: 2_000,
        }),
      );
    }
    const gates = Array.from({ length: nodes }, () => new Gate());
    let writing = true;
    const phaseStart = Date.now();
    phaseStartedAt = phaseStart;
    const writer = async (i: number, w: number): Promise<void> => {
      const rng = new Rng((seed * 31 + i * 7 + w) ^ 0x5bd1e995);
      const store = stores[i]!;
      const gate = gates[i]!;
      const lulls = lullsOf(seed, i, durationMs);
      const singles: string[] = [];
      let written = 0;
      while (writing) {
        await gate.wait();
        const now = Date.now() - phaseStart;
        const lull = lulls.find(([start, end]) => start <= now && now < end);
        if (lull !== undefined) await sleep(Math.min(lull[1], durationMs) - now);
        if (!writing) break;
        const roll = rng.next();
        let key: string;
        let del: boolean;
        if (roll < SINGLE_WRITE_SHARE) {
          key = `chaos.once.${nodeName(i)}.${w}.${written++}`;
          del = false;
          singles.push(key);
        } else if (roll < SINGLE_WRITE_SHARE + SINGLE_DELETE_SHARE && singles.length > 0) {
          key = singles.splice(rng.int(0, singles.length - 1), 1)[0]!;
          del = true;
        } else {
          key = `chaos.k${rng.int(0, keyCount - 1)}`;
          del = rng.chance(0.2);
        }
        const id = history.ops.length;
        const body = del ? undefined : content(rng, id, nodeName(i));
        const op = history.begin(i, nodeName(i), key, body);
        gate.enter();
        try {
          const result = body === undefined ? await store.delete(key) : await store.put(key, body);
          op.status = 'ok';
          op.record = result.record;
        } catch {
          op.status = 'failed';
        } finally {
          gate.leave();
        }
        await sleep(rng.int(5, 40));
      }
    };
    const writers: Promise<void>[] = [];
    for (let i = 0; i < nodes; i++)
      for (let w = 0; w < (options.writersPerNode ?? 2); w++) writers.push(writer(i, w));

    const locks = new Locks();
    const runFault = async (fault: Fault): Promise<void> => {
      await sleep(phaseStart + fault.atMs - Date.now());
      await locks.with(resourcesOf(fault), async () => {
        const holdUntil = Date.now() + fault.durationMs;
        switch (fault.kind) {
          case 'partition':
            cluster.partition(fault.a, fault.b, fault.mode);
            await sleep(holdUntil - Date.now());
            cluster.heal(fault.a, fault.b);
            break;
          case 'latency':
            cluster.setLatencyInto(fault.node, fault.ms);
            await sleep(holdUntil - Date.now());
            cluster.setLatencyInto(fault.node, 0);
            break;
          case 'cut':
            cluster.proxies[fault.from]![fault.to]!.cutMidReply(fault.bytes, fault.connections);
            break;
          case 'local-conn-kill':
            while (Date.now() < holdUntil) {
              // While the Redis is down (a concurrent restart) there is nothing to kill.
              localConnsKilled += await cluster
                .killLocalEngineConnections(fault.node)
                .catch(() => 0);
              await sleep(Math.min(fault.everyMs, holdUntil - Date.now()));
            }
            break;
          case 'trim':
            await cluster.command(fault.node, ['XTRIM', 'cdc', 'MAXLEN', '0']);
            break;
          case 'corrupt':
            await cluster.command(fault.node, [
              'XADD',
              'cdc',
              '*',
              'op',
              'PUT',
              'key',
              `chaos.corrupt.${fault.atMs}`,
              'hash',
              '0'.repeat(64),
              'data',
              '{"corrupt":true}',
            ]);
            break;
          case 'engine-kill':
          case 'engine-restart':
            await cluster.killEngine(
              fault.node,
              fault.kind === 'engine-kill' ? 'SIGKILL' : 'SIGTERM',
            );
            await sleep(holdUntil - Date.now());
            await cluster.startEngine(fault.node);
            break;
          case 'redis-restart':
            await cluster.killRedis(fault.node);
            await sleep(holdUntil - Date.now());
            await cluster.restartRedis(fault.node, false);
            break;
          case 'away-past-ttl': {
            const gate = gates[fault.node]!;
            gate.close();
            try {
              await gate.drained();
              await cluster.killEngine(fault.node, fault.engineSignal);
              await cluster.killRedis(fault.node);
              await sleep(holdUntil - Date.now());
              // The deletes it missed are gone from the hot path: only a repair can bring them.
              for (let j = 0; j < nodes; j++) {
                if (j !== fault.node) await cluster.command(j, ['XTRIM', 'cdc', 'MAXLEN', '0']);
              }
              await cluster.restartRedis(fault.node, false);
            } finally {
              gate.open();
            }
            await sleep(fault.engineLagMs);
            await cluster.startEngine(fault.node);
            break;
          }
          case 'redis-wipe': {
            const gate = gates[fault.node]!;
            gate.close();
            try {
              await gate.drained();
              await cluster.killRedis(fault.node);
              await excuseUnreplicated(fault.node, history, stores);
              await sleep(holdUntil - Date.now());
              await cluster.restartRedis(fault.node, true);
            } finally {
              gate.open();
            }
            break;
          }
        }
        injected[fault.kind]++;
      });
    };
    const faultRuns = schedule.map((fault) =>
      runFault(fault).catch((error: unknown) => {
        log(`  fault not injected: ${describeFault(fault)}: ${String(error)}`);
      }),
    );
    await sleep(phaseStart + durationMs - Date.now());
    writing = false;
    for (const g of gates) g.open();
    await Promise.all(writers);
    await Promise.all(faultRuns);
    try {
      await cluster.healAll();
    } catch (error) {
      violations.push({
        kind: 'unsettled',
        detail: `could not heal the cluster: ${String(error)}`,
      });
    }
    const healedAt = Date.now();
    log(`  healed at ${((healedAt - started) / 1000).toFixed(1)}s; waiting for convergence`);

    const keys = history.keys();
    const corruptKeys = schedule
      .filter((f) => f.kind === 'corrupt')
      .map((f) => `chaos.corrupt.${f.atMs}`);
    const deadline = healedAt + (options.convergeTimeoutMs ?? 60_000);
    let last: Snapshot[] = [];
    for (;;) {
      last = await Promise.all(stores.map((s) => snapshotOf(s, keys)));
      if (last.every((s) => s.ok && s.text === last[0]!.text && s.root === last[0]!.root)) {
        convergeMs = Date.now() - healedAt;
        break;
      }
      if (Date.now() > deadline) break;
      await sleep(500);
    }
    if (convergeMs === undefined) {
      violations.push(...divergence(last, keys));
      // Diverged: say which node lost which write (the others may hold it).
      for (const [i, snapshot] of last.entries()) {
        if (snapshot.ok) violations.push(...onNode(i, checkHistory(history, finalsOf(snapshot))));
      }
    } else {
      violations.push(...checkHistory(history, finalsOf(last[0]!)));
    }
    for (let i = 0; i < nodes; i++) {
      const leaked = await stores[i]!.getRecords(corruptKeys).catch(() => []);
      for (const r of leaked)
        violations.push({
          kind: 'phantom',
          key: r.key,
          detail: `a corrupt entry was applied on ${nodeName(i)}`,
        });
    }
  } catch (error) {
    violations.push({ kind: 'unsettled', detail: `harness error: ${String(error)}` });
  } finally {
    await Promise.allSettled(stores.map((s) => s.close()));
    await cluster.stop();
    // After stop: every event the engines printed until they exited is counted.
    if (hotPathOnly) violations.push(...repairsInHotPathOnly(cluster.events));
    for (const leak of await cluster.leftovers()) violations.push({ kind: 'leak', detail: leak });
    if (violations.length === 0 && options.keep !== true) cluster.removeDir();
    else keptDir = cluster.dir;
  }
  const counts = history.counts();
  return {
    seed,
    mode: hotPathOnly ? 'hot-path-only' : 'default',
    ok: violations.length === 0,
    schedule,
    injected,
    violations,
    writes: { ...counts, total: history.ops.length },
    events: cluster.events,
    localConnsKilled,
    purgedInFaultPhase: cluster.purges
      .filter((p) => p.at < phaseStartedAt + durationMs)
      .reduce((sum, p) => sum + p.purged, 0),
    phaseStartedAt,
    convergeMs,
    totalMs: Date.now() - started,
    keptDir,
  };
}

/**
 * What no hot-path-only run may report: a hot path that found a gap (no fault of that mode removes
 * stream entries) or a repair that changed something (gaps and resyncs still start one with
 * `cold_path.enabled: false`, and whatever it applied is what the hot path had lost).
 */
function repairsInHotPathOnly(events: EngineEventCounts): Violation[] {
  const out: Violation[] = [];
  if (events.gaps > 0) {
    out.push({
      kind: 'repaired',
      detail: `${events.gaps} stream gap(s) reported with no trim or wipe: each started a repair`,
    });
  }
  if (events.repairs > 0) {
    out.push({
      kind: 'repaired',
      detail: `${events.repairs} repair(s) with the cold path off applied ${events.repairedRecords} record(s) (or deferred some): the hot path had not delivered them`,
    });
  }
  return out;
}

/**
 * Before node `wiped` loses its data: its acknowledged writes that no other node holds (nor
 * anything newer of the key, nor, for a delete, the key's purge) cannot survive, so they are
 * excused from the check.
 */
async function excuseUnreplicated(
  wiped: number,
  history: History,
  stores: readonly SyncStore[],
): Promise<void> {
  const mine = history.ops.filter(
    (op) =>
      op.node === wiped &&
      op.status === 'ok' &&
      op.excused === undefined &&
      op.record !== undefined,
  );
  const keys = [...new Set(mine.map((op) => op.key))];
  const others = stores.filter((_, i) => i !== wiped);
  const elsewhere: StoredRecord[][] = await Promise.all(others.map((s) => s.getRecords(keys)));
  const horizons = await Promise.all(
    others.map(async (s) => (await s.tombstones.gcState()).horizon),
  );
  for (const op of mine) {
    const replicated = elsewhere.some(
      (records, j) =>
        records.some((r) => r.key === op.key && compareVersions(r, op.record!) >= 0) ||
        // A delete whose key a node purged (no version left, its horizon past the delete): it
        // reached every peer before the purge (PROTOCOL §6), and that node refuses anything older.
        (op.deleted &&
          op.record!.updatedAt < horizons[j]! &&
          !records.some((r) => r.key === op.key)),
    );
    if (!replicated) op.excused = `not replicated before ${nodeName(wiped)} was wiped`;
  }
}

/** At most this many violations of one node are listed; the rest are counted. */
const PER_NODE_LIMIT = 20;

function onNode(i: number, found: readonly Violation[]): Violation[] {
  const out = found
    .slice(0, PER_NODE_LIMIT)
    .map((v) => ({ ...v, detail: `on ${nodeName(i)}: ${v.detail}` }));
  if (found.length > PER_NODE_LIMIT) {
    const kinds = countKinds(found.slice(PER_NODE_LIMIT));
    out.push({
      kind: found[PER_NODE_LIMIT]!.kind,
      detail: `on ${nodeName(i)}: ${found.length - PER_NODE_LIMIT} more (${kinds})`,
    });
  }
  return out;
}

function countKinds(violations: readonly Violation[]): string {
  const counts = new Map<string, number>();
  for (const v of violations) counts.set(v.kind, (counts.get(v.kind) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${k} ${n}`).join(', ');
}

function finalsOf(snapshot: Snapshot): Map<string, StoredRecord> {
  return new Map(snapshot.records.map((r) => [r.key, r]));
}

interface Snapshot {
  readonly ok: boolean;
  readonly records: StoredRecord[];
  readonly text: string;
  readonly root: string;
}

async function snapshotOf(store: SyncStore, keys: readonly string[]): Promise<Snapshot> {
  try {
    const records = (await store.getRecords(keys)).sort((a, b) =>
      a.key < b.key ? -1 : a.key > b.key ? 1 : 0,
    );
    const text = JSON.stringify(
      records.map((r) => ({ ...r, content: r.content.toString('base64') })),
    );
    return { ok: true, records, text, root: await store.merkleRoot() };
  } catch (error) {
    return { ok: false, records: [], text: String(error), root: '' };
  }
}

function divergence(snapshots: readonly Snapshot[], keys: readonly string[]): Violation[] {
  const out: Violation[] = [];
  for (const [i, s] of snapshots.entries()) {
    if (!s.ok) out.push({ kind: 'diverged', detail: `${nodeName(i)} unreadable: ${s.text}` });
  }
  const show = (r: StoredRecord | undefined): string =>
    r === undefined
      ? 'absent'
      : `${r.deleted ? 'del' : r.contentHash.slice(0, 8)}@${r.updatedAt}/v${r.version}/${r.origin}`;
  let differing = 0;
  for (const key of keys) {
    const per = snapshots.map((s) => s.records.find((r) => r.key === key));
    const first = per[0];
    const same = per.every(
      (r) =>
        (r === undefined) === (first === undefined) &&
        (r === undefined || compareVersions(r, first!) === 0),
    );
    if (!same) {
      differing++;
      if (differing <= 10) out.push({ kind: 'diverged', key, detail: per.map(show).join(' | ') });
    }
  }
  if (differing > 10) out.push({ kind: 'diverged', detail: `${differing - 10} more keys differ` });
  if (differing === 0 && snapshots.every((s) => s.ok)) {
    out.push({
      kind: 'merkle',
      detail: `records identical but roots differ: ${snapshots.map((s) => s.root.slice(0, 12)).join(' ')}`,
    });
  }
  return out;
}

/** The report of a failed scenario: seed, schedule, violations, and how to replay it. */
export function formatFailure(result: ScenarioResult): string {
  const lines = [
    `chaos seed ${result.seed}${result.mode === 'hot-path-only' ? ' (hot path only)' : ''} FAILED (${result.violations.length} violation(s): ${countKinds(result.violations)})`,
    `replay: npm run test:chaos -- --seed ${result.seed}${result.mode === 'hot-path-only' ? ' --hot-path-only' : ''}`,
    'schedule:',
    ...result.schedule.map((f) => `  ${describeFault(f)}`),
    'violations:',
    ...result.violations
      .slice(0, 40)
      .map((v) => `  [${v.kind}]${v.key !== undefined ? ` ${v.key}` : ''} ${v.detail}`),
  ];
  if (result.keptDir !== undefined) lines.push(`engine logs kept in ${result.keptDir}`);
  return lines.join('\n');
}

/** One summary line of a scenario. */
export function formatSummary(result: ScenarioResult): string {
  const faults = Object.entries(result.injected)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k}=${n}`)
    .join(' ');
  return (
    `seed ${result.seed}${result.mode === 'hot-path-only' ? ' (hot path only)' : ''}: ${result.ok ? 'ok' : 'FAILED'} in ${(result.totalMs / 1000).toFixed(1)}s; ` +
    `writes ${result.writes.total} (ok ${result.writes.ok}, failed ${result.writes.failed}, excused ${result.writes.excused}); ` +
    `faults ${faults}${result.localConnsKilled > 0 ? ` (${result.localConnsKilled} local conns killed)` : ''}; gaps ${result.events.gaps}, repairs ${result.events.repairs} (${result.events.repairedRecords} records); ` +
    `acks ${result.events.acks}, tombstones purged ${result.events.purged} (${result.purgedInFaultPhase} during faults), old records refused ${result.events.refusedOld}; ` +
    `converged ${result.convergeMs === undefined ? 'never' : `${result.convergeMs} ms`} after heal`
  );
}
