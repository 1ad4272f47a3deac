/**
 * A chaos cluster: per node a persistent redis-server, an engine in its own process (so it can be
 * kill -9'd), and a fault proxy on every engine → peer Redis link. The test process talks to each
 * node's Redis directly, as the applications would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import type { WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createClient } from '@redis/client';
import { canConnect } from '../../src/cli/redis-process.js';
import { FaultProxy } from '../../src/testing/fault-proxy.js';
import { startRedis, type RedisServer } from '../helpers/redis-server.js';
import { nodeName } from './schedule.js';

const NODE_PROCESS = fileURLToPath(new URL('./node-process.ts', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

function adminClient(url: string) {
  const client = createClient({
    url,
    commandOptions: { timeout: 5_000 },
    socket: { reconnectStrategy: () => 100 },
  });
  client.on('error', () => undefined);
  return client;
}

type AdminClient = ReturnType<typeof adminClient>;

/** What the engines reported on stdout, summed over the run. */
export interface EngineEventCounts {
  gaps: number;
  repairs: number;
  repairedRecords: number;
  /** Live records refused by repairs as purged deletes (from a peer not in sync since the horizon). */
  refusedOld: number;
  /** Repairs that ended acknowledged (`gc:acked` recorded, PROTOCOL §6). */
  acks: number;
  /** Tombstones purged (acknowledged by every peer). */
  purged: number;
  peerDowns: number;
  starts: number;
}

/** One engine process. */
interface EngineProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
}

/** How the engines of a cluster run. */
export interface ClusterOptions {
  /**
   * Scheduled cold-path cycles (`cold_path.enabled`). Off, only the hot path replicates; a gap or
   * a resync still starts a repair (src/engine/cold-path.ts), which the caller must watch for in
   * {@link ChaosCluster.events}. @default true
   */
  readonly coldPath?: boolean;
  /**
   * `store.tombstone_ttl` and `store.max_clock_skew` of every engine (e.g. `'2s'`, `'200ms'`): short,
   * tombstones are purged during the run, so a node away longer than the TTL comes back to a mesh
   * that purged deletes it missed. @default the config's defaults (7 days, 5 minutes)
   */
  readonly tombstoneTtl?: string;
  readonly maxClockSkew?: string;
}

/** Settings of every engine, in YAML (snake_case) form. */
function engineSettings(options: ClusterOptions) {
  return {
    hot_path: { block_timeout: '1s', batch_size: 100 },
    cold_path: {
      enabled: options.coldPath ?? true,
      interval_sec: 1,
      max_items_per_cycle: 1000,
      backoff_base_sec: 1,
      backoff_max_sec: 2,
    },
    peer_health: { ping_interval_sec: 1, idle_threshold_sec: 2 },
  };
}

/** The CLIENT SETNAME of an engine's connection to its own Redis (as `startNode` names it). */
export function localClientName(i: number): string {
  return `replication-engine:${nodeName(i)}`;
}

export class ChaosCluster {
  readonly dir: string;
  readonly redis: RedisServer[];
  /** proxies[i][j]: engine i → Redis j (undefined on the diagonal). */
  readonly proxies: (FaultProxy | undefined)[][];
  readonly events: EngineEventCounts = {
    gaps: 0,
    repairs: 0,
    repairedRecords: 0,
    refusedOld: 0,
    acks: 0,
    purged: 0,
    peerDowns: 0,
    starts: 0,
  };
  /** Every purge an engine reported: when (its clock) and how many tombstones. */
  readonly purges: { readonly at: number; readonly purged: number }[] = [];
  readonly #engines: (EngineProcess | undefined)[];
  readonly #logs: WriteStream[];
  readonly #admins: AdminClient[];
  readonly #pids = new Set<number>();
  readonly #options: ClusterOptions;
  #stopped: Promise<void> | undefined;

  private constructor(
    dir: string,
    redis: RedisServer[],
    proxies: (FaultProxy | undefined)[][],
    admins: AdminClient[],
    options: ClusterOptions,
  ) {
    this.dir = dir;
    this.#options = options;
    this.redis = redis;
    this.proxies = proxies;
    this.#admins = admins;
    this.#engines = redis.map(() => undefined);
    this.#logs = redis.map((_, i) =>
      createWriteStream(join(dir, `${nodeName(i)}.log`), { flags: 'a' }),
    );
  }

  get size(): number {
    return this.redis.length;
  }

  /** Starts the Redis servers and proxies, writes the configs, and starts every engine. */
  static async start(nodes: number, options: ClusterOptions = {}): Promise<ChaosCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'repl-chaos-'));
    const redis: RedisServer[] = [];
    const admins: AdminClient[] = [];
    const proxies: (FaultProxy | undefined)[][] = [];
    try {
      redis.push(
        ...(await Promise.all(
          Array.from({ length: nodes }, () => startRedis({ persistent: true })),
        )),
      );
      for (let i = 0; i < nodes; i++) {
        const row: (FaultProxy | undefined)[] = [];
        for (let j = 0; j < nodes; j++) {
          row.push(i === j ? undefined : await FaultProxy.start({ targetPort: redis[j]!.port }));
        }
        proxies.push(row);
        const admin = adminClient(redis[i]!.url);
        await admin.connect();
        admins.push(admin);
      }
    } catch (error) {
      for (const a of admins) a.destroy();
      await Promise.allSettled(proxies.flat().map((p) => p?.close() ?? Promise.resolve()));
      await Promise.allSettled(redis.map((r) => r.stop()));
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
    const cluster = new ChaosCluster(dir, redis, proxies, admins, options);
    for (let i = 0; i < nodes; i++) cluster.#writeConfig(i);
    await Promise.all(redis.map((_, i) => cluster.startEngine(i)));
    return cluster;
  }

  #writeConfig(i: number): void {
    const nodeDir = join(this.dir, nodeName(i));
    mkdirSync(nodeDir, { recursive: true });
    const config = {
      replication: {
        local_node_id: nodeName(i),
        settings: engineSettings(this.#options),
        peers: this.redis
          .map((_, j) => j)
          .filter((j) => j !== i)
          .map((j) => ({
            node_id: nodeName(j),
            redis_url: this.proxies[i]![j]!.url,
            circuit_failure_threshold: 5,
            circuit_reset_timeout_sec: 2,
          })),
        cursor: { sqlite_path: join(nodeDir, 'cursors.db') },
      },
      local: { redis_url: this.redis[i]!.url },
      store: {
        ...(this.#options.tombstoneTtl !== undefined
          ? { tombstone_ttl: this.#options.tombstoneTtl }
          : {}),
        ...(this.#options.maxClockSkew !== undefined
          ? { max_clock_skew: this.#options.maxClockSkew }
          : {}),
      },
      http: { enabled: false },
    };
    writeFileSync(join(nodeDir, 'config.json'), JSON.stringify(config, null, 2));
  }

  /** Starts node i's engine process; resolves once it printed `ready`. */
  async startEngine(i: number): Promise<void> {
    if (this.#engines[i] !== undefined) return;
    const log = this.#logs[i]!;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', NODE_PROCESS, join(this.dir, nodeName(i), 'config.json')],
      { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env } },
    );
    if (child.pid !== undefined) this.#pids.add(child.pid);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.#engines[i] = { child, exited };
    this.events.starts++;
    child.stderr.pipe(log, { end: false });
    const lines = createInterface({ input: child.stdout });
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${nodeName(i)} engine not ready in 30 s`)),
        30_000,
      );
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${nodeName(i)} engine exited before ready (${code ?? signal})`));
      });
      lines.on('line', (line) => {
        if (line === 'ready') {
          clearTimeout(timer);
          resolve();
          return;
        }
        log.write(`[event] ${line}\n`);
        this.#count(line);
      });
    });
    try {
      await ready;
    } catch (error) {
      await this.killEngine(i, 'SIGKILL');
      throw error;
    }
  }

  #count(line: string): void {
    try {
      const event = JSON.parse(line) as {
        event?: string;
        applied?: number;
        deferred?: number;
        refusedOld?: number;
        purged?: number;
        at?: number;
      };
      if (event.event === 'gap') this.events.gaps++;
      else if (event.event === 'repair') {
        this.events.repairs++;
        this.events.repairedRecords += event.applied ?? 0;
        this.events.refusedOld += event.refusedOld ?? 0;
      } else if (event.event === 'acked') this.events.acks++;
      else if (event.event === 'purge') {
        this.events.purged += event.purged ?? 0;
        this.purges.push({ at: event.at ?? Date.now(), purged: event.purged ?? 0 });
      } else if (event.event === 'peerDown') this.events.peerDowns++;
    } catch {
      // Not an event line.
    }
  }

  /** Stops node i's engine with `signal` (SIGKILL: a crash; SIGTERM: a drain) and waits for it. */
  async killEngine(i: number, signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
    const engine = this.#engines[i];
    if (engine === undefined) return;
    this.#engines[i] = undefined;
    if (engine.child.exitCode === null && engine.child.signalCode === null) {
      engine.child.kill(signal);
      if (signal === 'SIGTERM') {
        const timer = setTimeout(() => engine.child.kill('SIGKILL'), 15_000);
        await engine.exited;
        clearTimeout(timer);
      } else {
        await engine.exited;
      }
    }
    if (engine.child.pid !== undefined) this.#pids.delete(engine.child.pid);
  }

  /** Whether node i's engine process is alive. */
  engineAlive(i: number): boolean {
    const engine = this.#engines[i];
    return (
      engine !== undefined && engine.child.exitCode === null && engine.child.signalCode === null
    );
  }

  /** Kills node i's Redis (SIGKILL). */
  async killRedis(i: number): Promise<void> {
    await this.redis[i]!.kill();
  }

  /** Starts node i's Redis again; with `wipe`, its data files are removed first. */
  async restartRedis(i: number, wipe: boolean): Promise<void> {
    const server = this.redis[i]!;
    await server.kill();
    if (wipe) {
      rmSync(join(server.dir, 'appendonlydir'), { recursive: true, force: true });
      rmSync(join(server.dir, 'dump.rdb'), { force: true });
    }
    await server.restart();
  }

  /**
   * Kills node i's engine's connections to its own Redis (`CLIENT KILL ID`, found by their
   * {@link localClientName}; the test's clients and peers' links are left alone). Returns how many
   * were killed; 0 while that engine is down or reconnecting.
   */
  async killLocalEngineConnections(i: number): Promise<number> {
    const list = String(await this.command(i, ['CLIENT', 'LIST', 'TYPE', 'normal']));
    const name = localClientName(i);
    let killed = 0;
    for (const line of list.split('\n')) {
      // CLIENT LIST: one client a line, `field=value` pairs; a name never holds a space.
      const id = /^id=(\d+) /.exec(line)?.[1];
      if (id === undefined || / name=(\S*)/.exec(line)?.[1] !== name) continue;
      killed += Number(await this.command(i, ['CLIENT', 'KILL', 'ID', id]));
    }
    return killed;
  }

  /** A raw command on node i's Redis (direct, not through a proxy). */
  async command(i: number, args: string[]): Promise<unknown> {
    return this.#admins[i]!.sendCommand(args);
  }

  /** Partitions nodes a and b (both links). */
  partition(a: number, b: number, mode: 'drop' | 'reset'): void {
    this.proxies[a]![b]!.partition(mode);
    this.proxies[b]![a]!.partition(mode);
  }

  /** Heals a and b. */
  heal(a: number, b: number): void {
    this.proxies[a]![b]!.heal();
    this.proxies[b]![a]!.heal();
  }

  /** Sets the latency of every link into node j. */
  setLatencyInto(j: number, ms: number): void {
    for (let i = 0; i < this.size; i++) this.proxies[i]![j]?.setLatency(ms);
  }

  /** Heals every link, removes latency, and makes sure every Redis and engine runs. */
  async healAll(): Promise<void> {
    for (const p of this.proxies.flat()) p?.reset();
    for (let i = 0; i < this.size; i++) {
      const server = this.redis[i]!;
      if (!(await this.ping(i))) await server.restart();
    }
    for (let i = 0; i < this.size; i++) {
      if (!this.engineAlive(i)) {
        this.#engines[i] = undefined;
        await this.startEngine(i);
      }
    }
  }

  async ping(i: number): Promise<boolean> {
    try {
      await this.#admins[i]!.ping();
      return true;
    } catch {
      return false;
    }
  }

  /** Total entries in the dead-letter streams of node i. */
  async deadLetters(i: number): Promise<number> {
    const keys = (await this.command(i, ['KEYS', 'dlq:*'])) as string[];
    let total = 0;
    for (const key of keys) total += Number(await this.command(i, ['XLEN', key]));
    return total;
  }

  /** Pids of engine processes started and not yet seen to exit. */
  livePids(): number[] {
    return [...this.#pids].filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
  }

  /** Drains every engine, closes proxies and clients, stops Redis, removes the temp dir. */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      await Promise.allSettled(this.#engines.map((_, i) => this.killEngine(i, 'SIGTERM')));
      for (const a of this.#admins) a.destroy();
      await Promise.allSettled(this.proxies.flat().map((p) => p?.close() ?? Promise.resolve()));
      await Promise.allSettled(this.redis.map((r) => r.stop()));
      await Promise.allSettled(this.#logs.map((l) => new Promise((r) => l.end(r))));
    })();
    return this.#stopped;
  }

  /** Removes the run's temp dir (logs and cursors); keep it to debug a failure. */
  removeDir(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Leftovers after {@link stop}: live processes, listening ports or dirs. Empty when clean. */
  async leftovers(): Promise<string[]> {
    const left: string[] = this.livePids().map((pid) => `engine process ${pid} still alive`);
    for (const r of this.redis) {
      if (existsSync(r.dir)) left.push(`redis dir ${r.dir} left`);
      if (await canConnect(r.port)) left.push(`redis-server still listening on ${r.port}`);
    }
    for (const p of this.proxies.flat()) {
      if (p !== undefined && (await canConnect(p.port)))
        left.push(`proxy still listening on ${p.port}`);
    }
    return left;
  }
}
