/**
 * The demo's mesh: three redis-servers and three nodes replicating each other, in one temp dir,
 * and the reads the narration shows (document counts, Merkle roots, replication counts). With
 * `cluster`, one node ({@link CLUSTER_NODE}) keeps its store on a 3-master Redis Cluster instead
 * (`redis-server --cluster-enabled yes` on free ports, joined by `redis-cli --cluster create`),
 * which the other two tail and repair from as a cluster peer.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../config/index.js';
import type { ResolvedConfig } from '../config/types.js';
import { startNode } from '../node/node.js';
import type { RunningNode } from '../node/node.js';
import { startDashboardServer } from '../observability/dashboard-server.js';
import type { DashboardServer } from '../observability/dashboard-server.js';
import type { Logger } from '../observability/logger.js';
import { PartitionedStore } from '../store/partitioned-store.js';
import { startRedisCluster, type RedisCluster } from './redis-cluster.js';
import { killAllRedis, startRedisProcess } from './redis-process.js';
import type { RedisProcess } from './redis-process.js';

/** One node of the demo. */
export interface DemoNode {
  readonly id: string;
  readonly redis: RedisProcess;
  readonly node: RunningNode;
}

/** What one node holds. */
export interface NodeSnapshot {
  readonly id: string;
  readonly documents: number;
  readonly tombstones: number;
  readonly root: string;
}

export const DEMO_NODE_IDS = ['london', 'paris', 'tokyo'] as const;

/** The node on a Redis Cluster with `demo --cluster` (not tokyo: its Redis is killed and revived). */
export const CLUSTER_NODE = 'paris';

/** Options of {@link DemoMesh}. */
export interface DemoMeshOptions {
  /** {@link CLUSTER_NODE}'s store on a 3-master Redis Cluster. @default false */
  readonly cluster?: boolean;
}

function demoConfig(
  id: string,
  redis: RedisProcess,
  peers: readonly { id: string; redis: RedisProcess }[],
  dir: string,
): ResolvedConfig {
  return resolveConfig({
    replication: {
      local_node_id: id,
      settings: {
        hot_path: { block_timeout: '500ms' },
        cold_path: { interval_sec: 3, backoff_base_sec: 1, backoff_max_sec: 2 },
        peer_health: { ping_interval_sec: 1, idle_threshold_sec: 2 },
      },
      peers: peers.map((p) => ({
        node_id: p.id,
        redis_url: p.redis.url,
        circuit_failure_threshold: 3,
        circuit_reset_timeout_sec: 1,
      })),
      cursor: { sqlite_path: join(dir, 'cursors.db') },
    },
    local: { redis_url: redis.url },
    http: { enabled: false },
  });
}

/** The demo's processes and files; {@link DemoMesh.close} removes them all. */
export class DemoMesh {
  readonly root: string;
  /** Each node's Redis (for the cluster node: the cluster's first server, its seed). */
  readonly redis: RedisProcess[] = [];
  readonly nodes: DemoNode[] = [];
  /** {@link CLUSTER_NODE}'s Redis Cluster, with `cluster`. */
  cluster: RedisCluster | undefined;
  readonly #options: DemoMeshOptions;
  #dashboard: DashboardServer | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: DemoMeshOptions = {}) {
    this.#options = options;
    this.root = mkdtempSync(join(tmpdir(), 'replication-engine-demo-'));
  }

  /** True with `cluster`: {@link CLUSTER_NODE} runs on a Redis Cluster. */
  get withCluster(): boolean {
    return this.#options.cluster === true;
  }

  /** Starts one redis-server per node (a Redis Cluster for {@link CLUSTER_NODE} with `cluster`). */
  async startRedis(): Promise<void> {
    for (const id of DEMO_NODE_IDS) {
      const dir = join(this.root, id);
      mkdirSync(dir);
      if (this.#options.cluster === true && id === CLUSTER_NODE) {
        this.cluster = await startRedisCluster(dir);
        this.redis.push(this.cluster.servers[0]!);
      } else {
        this.redis.push(await startRedisProcess(dir));
      }
    }
  }

  /** Starts the three nodes, each with the other two as peers. */
  async startNodes(logger: Logger): Promise<void> {
    const all = DEMO_NODE_IDS.map((id, i) => ({ id, redis: this.redis[i]! }));
    for (const { id, redis } of all) {
      const config = demoConfig(
        id,
        redis,
        all.filter((p) => p.id !== id),
        join(this.root, id),
      );
      const node = await startNode(config, {
        logger: logger.child({ node: id }),
        connectTimeoutMs: 10_000,
      });
      this.nodes.push({ id, redis, node });
    }
  }

  /** Serves the live dashboard of the nodes, side by side on one page; resolves with its URL. */
  async startDashboard(): Promise<string> {
    this.#dashboard = await startDashboardServer({
      sources: this.nodes.map(({ node }) => ({
        health: () => node.engine.health(),
        metrics: node.metrics,
      })),
    });
    return this.#dashboard.url;
  }

  /** The node named `id`. */
  get(id: string): DemoNode {
    const found = this.nodes.find((n) => n.id === id);
    if (found === undefined) throw new Error(`no demo node ${id}`);
    return found;
  }

  /** Documents, tombstones and Merkle root of every node. */
  snapshot(): Promise<NodeSnapshot[]> {
    return Promise.all(this.nodes.map((n) => snapshotOf(n)));
  }

  /** What node `id` holds now. */
  snapshotOf(id: string): Promise<NodeSnapshot> {
    return snapshotOf(this.get(id));
  }

  /** Stops the dashboard and the nodes, kills the redis-servers, removes the temp dir. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#dashboard?.close();
      await Promise.allSettled(this.nodes.map((n) => n.node.stop(3000)));
      await Promise.allSettled(this.redis.map((r) => r.kill()));
      await this.cluster?.kill().catch(() => undefined);
      killAllRedis();
      rmSync(this.root, { recursive: true, force: true });
    })();
    return this.#closing;
  }

  /** Last resort on exit paths: kill and remove synchronously. */
  closeNow(): void {
    killAllRedis();
    rmSync(this.root, { recursive: true, force: true });
  }
}

function text(value: unknown): string {
  return Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
}

async function snapshotOf({ id, node }: DemoNode): Promise<NodeSnapshot> {
  const root = await node.store.merkleRoot();
  if (node.store instanceof PartitionedStore) {
    // Keys spread over the shards: counted partition by partition, not by one SCAN.
    const documents = await node.store.count();
    const all = await node.store.count({ includeDeleted: true });
    return { id, documents, tombstones: all - documents, root };
  }
  const keys = node.store.keys;
  let items = 0;
  let cursor = '0';
  do {
    const reply = await node.redis.sendCommand([
      'SCAN',
      cursor,
      'MATCH',
      `${keys.prefix}item:*`,
      'COUNT',
      '1000',
    ]);
    const [next, found] = reply as [unknown, unknown[]];
    cursor = text(next);
    items += found.length;
  } while (cursor !== '0');
  const tombstones = Number(await node.redis.sendCommand(['ZCARD', keys.tombstones]));
  return { id, documents: items - tombstones, tombstones, root };
}

/** Events applied by `node` from each peer (replication_cdc_events_applied_total). */
export async function appliedByPeer(node: RunningNode): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const sample of (await node.metrics.cdcEventsAppliedTotal.get()).values) {
    const peer = String(sample.labels['peer_id'] ?? '?');
    out.set(peer, (out.get(peer) ?? 0) + sample.value);
  }
  return out;
}
