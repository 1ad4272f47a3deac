/**
 * A real Redis Cluster of `redis-server --cluster-enabled yes` children on free loopback ports,
 * joined by `redis-cli --cluster create`, for the demo (`demo --cluster`) and the tests. Each
 * server keeps its files (append-only data, `nodes.conf`) in its own directory, so a killed one
 * comes back with its data and its place in the cluster.
 */
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startRedisProcess, type RedisProcess } from './redis-process.js';

const run = promisify(execFile);

/** Options of {@link startRedisCluster}. */
export interface RedisClusterOptions {
  /** Master shards. @default 3 (the fewest `redis-cli --cluster create` accepts) */
  readonly masters?: number;
  /** Replicas of each master. @default 0 */
  readonly replicasPerMaster?: number;
  /**
   * How long a master may be unreachable before its replica takes over (`cluster-node-timeout`).
   * @default 2000
   */
  readonly nodeTimeoutMs?: number;
  /** `appendfsync` of every server. @default 'always' */
  readonly appendfsync?: 'always' | 'no';
}

/** A running cluster. */
export interface RedisCluster {
  /** Every server, masters first as created (roles change on failover: ask {@link roles}). */
  readonly servers: readonly RedisProcess[];
  /** A seed URL (the first server); a cluster client discovers the rest. */
  readonly url: string;
  /** The current role of each server, by port. */
  roles(): Promise<Map<number, 'master' | 'slave'>>;
  /** Resolves once every slot is served and every running server reports `cluster_state:ok`. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** SIGKILLs every server. */
  kill(): Promise<void>;
}

/** Asks the server on `port` (a `redis-cli` call), trimmed. */
export async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-p', String(port), ...args], { timeout: 30_000 });
  return stdout.trim();
}

/**
 * Starts `masters × (1 + replicasPerMaster)` servers under `dir` and joins them into one cluster;
 * resolves once it is healthy.
 * @throws Error when redis-server or redis-cli is missing, or the cluster does not form.
 */
export async function startRedisCluster(
  dir: string,
  options: RedisClusterOptions = {},
): Promise<RedisCluster> {
  const masters = options.masters ?? 3;
  const replicas = options.replicasPerMaster ?? 0;
  const count = masters * (1 + replicas);
  const servers: RedisProcess[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const own = join(dir, `node-${i}`);
      mkdirSync(own, { recursive: true });
      servers.push(
        await startRedisProcess(own, {
          appendfsync: options.appendfsync ?? 'always',
          args: [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            'nodes.conf',
            '--cluster-node-timeout',
            String(options.nodeTimeoutMs ?? 2000),
          ],
        }),
      );
    }
    await run(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...servers.map((s) => `127.0.0.1:${s.port}`),
        '--cluster-replicas',
        String(replicas),
        '--cluster-yes',
      ],
      { timeout: 60_000 },
    );
  } catch (error) {
    await Promise.all(servers.map((s) => s.kill()));
    throw error;
  }

  const cluster: RedisCluster = {
    servers,
    url: servers[0]!.url,
    async roles() {
      const roles = new Map<number, 'master' | 'slave'>();
      for (const server of servers) {
        if (server.pid === undefined) continue;
        const info = await redisCli(server.port, 'ROLE').catch(() => '');
        const role = info.split('\n')[0];
        if (role === 'master' || role === 'slave') roles.set(server.port, role);
      }
      return roles;
    },
    async waitHealthy(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (await healthy(servers)) return;
        if (Date.now() > deadline) {
          throw new Error(`the Redis Cluster on ${cluster.url} did not become healthy`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    async kill() {
      await Promise.all(servers.map((s) => s.kill()));
    },
  };
  await cluster.waitHealthy();
  // Replicas attach a few seconds after `--cluster create`; until then a write has none.
  const deadline = Date.now() + 30_000;
  while (!(await replicasOnline(servers, replicas))) {
    if (Date.now() > deadline)
      throw new Error(`the replicas of ${cluster.url} did not come online`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return cluster;
}

/** Every master has `replicas` replicas in state `online`. */
async function replicasOnline(
  servers: readonly RedisProcess[],
  replicas: number,
): Promise<boolean> {
  if (replicas === 0) return true;
  for (const server of servers) {
    const info = await redisCli(server.port, 'INFO', 'replication').catch(() => '');
    if (!/role:master/.test(info)) continue;
    if ((info.match(/state=online/g) ?? []).length < replicas) return false;
  }
  return true;
}

/** Every running server says `cluster_state:ok` and knows all 16,384 slots as assigned. */
async function healthy(servers: readonly RedisProcess[]): Promise<boolean> {
  for (const server of servers) {
    if (server.pid === undefined) continue;
    const info = await redisCli(server.port, 'CLUSTER', 'INFO').catch(() => '');
    if (!/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info)) return false;
  }
  return true;
}
