/**
 * A mesh of real nodes for tests: one redis-server, one SyncStore and one ReplicationEngine per
 * node, each with its own temp dir for the SQLite cursors. Everything is stopped by `stop()`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../../src/config/index.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import { ReplicationEngine } from '../../src/engine/engine.js';
import { createLogger } from '../../src/observability/logger.js';
import { SyncStore } from '../../src/store/sync-store.js';
import { startRedis, type RedisServer, type RedisServerOptions } from './redis-server.js';

export interface MeshNode {
  readonly id: string;
  readonly redis: RedisServer;
  readonly store: SyncStore;
  readonly dir: string;
  engine: ReplicationEngine;
  config: ResolvedConfig;
}

export interface MeshOptions {
  readonly nodes?: number;
  /** `settings` of the replication section, in YAML (snake_case) form. */
  readonly settings?: Record<string, unknown>;
  /** `store` section. */
  readonly store?: Record<string, unknown>;
  readonly redis?: RedisServerOptions;
  /** Start the engines (default true). */
  readonly start?: boolean;
}

export interface Mesh {
  readonly nodes: MeshNode[];
  /** A fresh engine for node i from its current config (after stopping the old one). */
  restartEngine(i: number): Promise<void>;
  /** The config of node i, built from the mesh's options plus `overrides` of `settings`. */
  configFor(i: number, settings?: Record<string, unknown>): ResolvedConfig;
  stop(): Promise<void>;
}

const FAST_DEFAULTS = {
  hot_path: { block_timeout: '1s' },
  cold_path: { enabled: false },
  peer_health: { ping_interval_sec: 1, idle_threshold_sec: 2 },
};

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] =
      typeof v === 'object' &&
      v !== null &&
      !Array.isArray(v) &&
      typeof prev === 'object' &&
      prev !== null
        ? merge(prev as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

export function nodeId(i: number): string {
  return `node-${String.fromCharCode(97 + i)}`;
}

export async function startMesh(options: MeshOptions = {}): Promise<Mesh> {
  const count = options.nodes ?? 2;
  const servers = await Promise.all(
    Array.from({ length: count }, () => startRedis(options.redis ?? {})),
  );
  const logger = createLogger({
    level: (process.env['LOG_LEVEL'] as 'silent' | undefined) ?? 'silent',
  });
  const nodes: MeshNode[] = [];
  const configFor = (
    i: number,
    settings: Record<string, unknown> = {},
    dirOf?: string,
  ): ResolvedConfig => {
    const dir = dirOf ?? nodes[i]!.dir;
    return resolveConfig({
      replication: {
        local_node_id: nodeId(i),
        settings: merge(merge(FAST_DEFAULTS, options.settings ?? {}), settings),
        peers: servers
          .map((s, j) => ({ node_id: nodeId(j), redis_url: s.url }))
          .filter((_, j) => j !== i),
        cursor: { sqlite_path: join(dir, 'cursors.db') },
      },
      local: { redis_url: servers[i]!.url },
      store: options.store ?? {},
      http: { enabled: false },
    });
  };
  const dirs = Array.from({ length: count }, () => mkdtempSync(join(tmpdir(), 'repl-node-')));
  for (let i = 0; i < count; i++) {
    const config = configFor(i, {}, dirs[i]);
    const store = await SyncStore.connect({
      redisUrl: servers[i]!.url,
      nodeId: nodeId(i),
      store: config.store,
    });
    const engine = new ReplicationEngine(config, store, {
      logger: logger.child({ node: nodeId(i) }),
    });
    nodes.push({ id: nodeId(i), redis: servers[i]!, store, dir: dirs[i]!, engine, config });
  }
  if (options.start !== false) await Promise.all(nodes.map((n) => n.engine.start()));
  return {
    nodes,
    configFor: (i, settings) => configFor(i, settings),
    async restartEngine(i) {
      const node = nodes[i]!;
      await node.engine.stop();
      node.engine = new ReplicationEngine(node.config, node.store, {
        logger: logger.child({ node: node.id }),
      });
      await node.engine.start();
    },
    async stop() {
      await Promise.allSettled(nodes.map((n) => n.engine.stop()));
      await Promise.allSettled(nodes.map((n) => n.store.close()));
      await Promise.allSettled(servers.map((s) => s.stop()));
      for (const n of nodes) rmSync(n.dir, { recursive: true, force: true });
    },
  };
}

/** Every record (tombstones included) of a store, as comparable plain objects sorted by key. */
export async function snapshot(store: SyncStore, keys: readonly string[]): Promise<unknown[]> {
  const records = await store.getRecords(keys);
  return records
    .map((r) => ({ ...r, content: r.content.toString('base64') }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * Writes `n` keys `prefix.i` on node `node` of `mesh`, 100 at a time, each a small JSON document
 * (`{ k, payload }`, about 230 bytes); returns the keys in order.
 */
export async function writeMany(
  mesh: Mesh,
  node: number,
  n: number,
  prefix = 'k',
): Promise<string[]> {
  const keys: string[] = [];
  const store = mesh.nodes[node]!.store;
  for (let i = 0; i < n; i += 100) {
    const batch = Array.from({ length: Math.min(100, n - i) }, (_, j) => `${prefix}.${i + j}`);
    await Promise.all(batch.map((k) => store.put(k, { k, payload: 'x'.repeat(200) })));
    keys.push(...batch);
  }
  return keys;
}
