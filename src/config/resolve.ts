/**
 * From options (parsed YAML or built in code) to the frozen {@link ResolvedConfig} the code runs on:
 * schema validation, the rules that span fields, URLs, TLS files, and the camelCase `…Ms` shape.
 */
import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { ConfigValidationError, formatPath, showValue } from './issues.js';
import type { ConfigIssue, ConfigPath, ConfigSource } from './issues.js';
import { configSchema } from './schema.js';
import { formatDuration } from './units.js';
import type { ParsedConfig } from './schema.js';
import type {
  ResolvedConfig,
  ResolvedHotPath,
  ResolvedLocal,
  ResolvedPeer,
  ResolvedTls,
} from './types.js';
import { fromZodIssue } from './zod-issues.js';
import type { RawIssue } from './zod-issues.js';

type ParsedReplication = ParsedConfig['replication'];
type ParsedTls = NonNullable<ParsedReplication['peers'][number]['tls']>;

/** Collects problems, then throws them all at once. */
class Problems {
  readonly raw: RawIssue[] = [];

  add(path: ConfigPath, message: string): void {
    this.raw.push({ path, message });
  }

  throwIfAny(source: ConfigSource): void {
    if (this.raw.length === 0) return;
    const issues: ConfigIssue[] = this.raw.map(({ path, message }) => {
      const position = source.locate?.(path);
      return { path: formatPath(path), message, ...(position && { position }) };
    });
    // Stable: problems without a position keep their order, after the located ones.
    issues.sort(
      (a, b) =>
        (a.position?.offset ?? Number.MAX_SAFE_INTEGER) -
        (b.position?.offset ?? Number.MAX_SAFE_INTEGER),
    );
    throw new ConfigValidationError(issues, source.name);
  }
}

/**
 * The path of the first value that contains itself, or undefined. A YAML alias inside the mapping
 * it names (`&x` with `k: *x` or `<<: *x` in it) makes such an object; found by the config fuzzer,
 * it overflowed the stack of every walk below. Shared values that are not cycles are fine.
 */
function cyclePath(
  value: unknown,
  ancestors: object[] = [],
  path: ConfigPath = [],
): ConfigPath | undefined {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return undefined;
  if (ancestors.includes(value)) return path;
  ancestors.push(value);
  const entries: [string | number, unknown][] = Array.isArray(value)
    ? value.map((child, i): [number, unknown] => [i, child])
    : Object.entries(value);
  for (const [key, child] of entries) {
    const found = cyclePath(child, ancestors, [...path, key]);
    if (found !== undefined) return found;
  }
  ancestors.pop();
  return undefined;
}

/** YAML's empty value (`key:`) means "use the default", as if the key were absent. */
function dropNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropNulls);
  if (value === null || typeof value !== 'object' || Buffer.isBuffer(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    if (child !== null && child !== undefined) out[key] = dropNulls(child);
  }
  return out;
}

/** Freezes every object and array below `value` (Buffers cannot be frozen and are left alone). */
export function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return value;
  for (const child of Object.values(value)) deepFreeze(child);
  return Object.freeze(value);
}

interface RedisTarget {
  readonly useTls: boolean;
  readonly displayUrl: string;
  /** host:port/db, to recognise two URLs naming the same database. */
  readonly identity: string;
}

const REDIS_URL_EXPECTED = 'expected a redis:// or rediss:// URL';

/**
 * A malformed Redis URL as an error message may show it: scheme, host and port only. Its
 * credentials, path and query are hidden, since in a malformed URL a password can sit anywhere.
 */
function shownUrl(url: URL): string {
  const hidden =
    (url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '';
  return JSON.stringify(`${url.protocol}//${url.host}${hidden ? '/***' : ''}`);
}

/** Checks a Redis URL; `displayUrl` is the URL with its password replaced by `***`. */
function checkRedisUrl(raw: string, path: ConfigPath, problems: Problems): RedisTarget | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // Which part of text that is not a URL is a password cannot be known: show only the scheme.
    const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(raw)?.[0] ?? '';
    problems.add(
      path,
      `${REDIS_URL_EXPECTED}, found "${scheme}***" (not a valid URL; the rest is hidden, as it may hold a password)`,
    );
    return undefined;
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    problems.add(path, `${REDIS_URL_EXPECTED}, found ${shownUrl(url)}`);
    return undefined;
  }
  if (url.hostname === '') {
    problems.add(path, `expected a URL with a host, found ${shownUrl(url)}`);
    return undefined;
  }
  if (url.pathname !== '' && url.pathname !== '/' && !/^\/\d+$/.test(url.pathname)) {
    problems.add(
      path,
      `expected nothing or a database number after the host (e.g. "/0"), found path ${JSON.stringify(url.pathname.length > 12 ? `${url.pathname.slice(0, 3)}…` : url.pathname.replace(/[^/\d]/g, '*'))}`,
    );
    return undefined;
  }
  const db = url.pathname.length > 1 ? url.pathname.slice(1) : '0';
  const identity = `${url.hostname.toLowerCase()}:${url.port || '6379'}/${Number(db)}`;
  if (url.password !== '') url.password = '***';
  return { useTls: url.protocol === 'rediss:', displayUrl: url.href, identity };
}

function readTlsFile(
  file: string | undefined,
  path: ConfigPath,
  baseDir: string,
  problems: Problems,
): Buffer | undefined {
  if (file === undefined) return undefined;
  const absolute = resolvePath(baseDir, file);
  const shown = absolute === file ? JSON.stringify(file) : `${JSON.stringify(file)} (${absolute})`;
  try {
    return readFileSync(absolute);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'file not found'
        : code === 'EACCES'
          ? 'permission denied reading'
          : code === 'EISDIR'
            ? 'expected a file, found a directory'
            : `cannot read (${code ?? 'error'})`;
    problems.add(path, `${why}: ${shown}`);
    return undefined;
  }
}

function resolveTls(
  options: ParsedTls | undefined,
  target: RedisTarget,
  path: ConfigPath,
  baseDir: string,
  problems: Problems,
): ResolvedTls | undefined {
  if (!target.useTls) {
    if (options !== undefined) {
      problems.add(path, 'TLS options need a rediss:// URL, but the redis_url is redis://');
    }
    return undefined;
  }
  const tls = options ?? { reject_unauthorized: true };
  if ((tls.cert_file === undefined) !== (tls.key_file === undefined)) {
    const missing = tls.cert_file === undefined ? 'cert_file' : 'key_file';
    problems.add([...path, missing], 'missing (mutual TLS needs both cert_file and key_file)');
  }
  const ca = readTlsFile(tls.ca_file, [...path, 'ca_file'], baseDir, problems);
  const cert = readTlsFile(tls.cert_file, [...path, 'cert_file'], baseDir, problems);
  const key = readTlsFile(tls.key_file, [...path, 'key_file'], baseDir, problems);
  return {
    rejectUnauthorized: tls.reject_unauthorized,
    ...(ca && { ca }),
    ...(cert && { cert }),
    ...(key && { key }),
    ...(tls.servername !== undefined && { servername: tls.servername }),
  };
}

function resolveHotPath(
  hot: ParsedReplication['settings']['hot_path'],
  path: ConfigPath,
  problems: Problems,
): ResolvedHotPath {
  const { batch_size: batch, min_batch_size: min, max_batch_size: max } = hot;
  if (min > max) {
    problems.add(
      [...path, 'min_batch_size'],
      `expected at most max_batch_size (${max}), found ${min}`,
    );
  } else if (batch < min) {
    problems.add(
      [...path, 'batch_size'],
      `expected at least min_batch_size (${min}), found ${batch}`,
    );
  } else if (batch > max) {
    problems.add(
      [...path, 'batch_size'],
      `expected at most max_batch_size (${max}), found ${batch}`,
    );
  }
  return {
    enabled: hot.enabled,
    batchSize: batch,
    blockTimeoutMs: hot.block_timeout,
    adaptiveBatchSize: hot.adaptive_batch_size,
    minBatchSize: min,
    maxBatchSize: max,
    maxBatchBytes: hot.max_batch_bytes,
    rateLimitEnabled: hot.rate_limit_enabled,
    rateLimitPerSec: hot.rate_limit_per_sec,
    rateLimitBurst: hot.rate_limit_burst,
  };
}

function resolveLocal(
  local: ParsedConfig['local'],
  baseDir: string,
  problems: Problems,
): { resolved: ResolvedLocal; identity: string | undefined } {
  const urlPath = ['local', 'redis_url'];
  const target = checkRedisUrl(local.redis_url, urlPath, problems);
  const tls = target && resolveTls(local.tls, target, ['local', 'tls'], baseDir, problems);
  return {
    resolved: {
      redisUrl: local.redis_url,
      displayUrl: target?.displayUrl ?? '',
      redisPrefix: local.redis_prefix,
      ...(local.cluster !== undefined && { cluster: local.cluster }),
      ...(tls && { tls }),
    },
    identity: target && `${target.identity} ${local.redis_prefix}`,
  };
}

function resolvePeers(
  replication: ParsedReplication,
  localIdentity: string | undefined,
  baseDir: string,
  problems: Problems,
): ResolvedPeer[] {
  const seen = new Map<string, number>();
  return replication.peers.map((peer, index): ResolvedPeer => {
    const path = ['replication', 'peers', index];
    const idPath = [...path, 'node_id'];
    const first = seen.get(peer.node_id);
    if (first !== undefined) {
      problems.add(
        idPath,
        `duplicate peer node_id ${showValue(peer.node_id, idPath)} (also replication.peers[${first}])`,
      );
    } else {
      seen.set(peer.node_id, index);
    }
    if (peer.node_id === replication.local_node_id) {
      problems.add(
        idPath,
        `${showValue(peer.node_id, idPath)} is this node's own local_node_id; a node does not replicate from itself`,
      );
    }
    const urlPath = [...path, 'redis_url'];
    const target = checkRedisUrl(peer.redis_url, urlPath, problems);
    if (target && localIdentity === `${target.identity} ${peer.redis_prefix}`) {
      problems.add(
        urlPath,
        "expected another node's Redis, found this node's own (same database and redis_prefix as local)",
      );
    }
    const tls = target && resolveTls(peer.tls, target, [...path, 'tls'], baseDir, problems);
    return {
      nodeId: peer.node_id,
      redisUrl: peer.redis_url,
      displayUrl: target?.displayUrl ?? '',
      redisPrefix: peer.redis_prefix,
      ...(peer.cluster !== undefined && { cluster: peer.cluster }),
      priority: peer.priority,
      circuitFailureThreshold: peer.circuit_failure_threshold,
      circuitResetTimeoutMs: peer.circuit_reset_timeout_sec,
      ...(tls && { tls }),
    };
  });
}

function build(parsed: ParsedConfig, baseDir: string, problems: Problems): ResolvedConfig {
  const { replication, store, http } = parsed;
  const { settings } = replication;
  const cold = settings.cold_path;
  if (cold.backoff_base_sec > cold.backoff_max_sec) {
    problems.add(
      ['replication', 'settings', 'cold_path', 'backoff_base_sec'],
      `expected at most backoff_max_sec (${formatDuration(cold.backoff_max_sec)}), found ${formatDuration(cold.backoff_base_sec)}`,
    );
  }
  if (cold.enabled && store.tombstone_ttl <= cold.interval_sec) {
    problems.add(
      ['store', 'tombstone_ttl'],
      'expected more than replication.settings.cold_path.interval_sec, or deletes missed by ' +
        `the hot path could be undone by repairs; found ${formatDuration(store.tombstone_ttl)}`,
    );
  }
  const local = resolveLocal(parsed.local, baseDir, problems);
  return {
    replication: {
      localNodeId: replication.local_node_id,
      hotPath: resolveHotPath(settings.hot_path, ['replication', 'settings', 'hot_path'], problems),
      coldPath: {
        enabled: cold.enabled,
        intervalMs: cold.interval_sec,
        maxItemsPerCycle: cold.max_items_per_cycle,
        backoffBaseMs: cold.backoff_base_sec,
        backoffMaxMs: cold.backoff_max_sec,
      },
      peerHealth: {
        enabled: settings.peer_health.enabled,
        pingIntervalMs: settings.peer_health.ping_interval_sec,
        idleThresholdMs: settings.peer_health.idle_threshold_sec,
      },
      slo: {
        maxStreamReadLatencyMs: settings.slo.max_stream_read_latency_ms,
        maxPeerOpLatencyMs: settings.slo.max_peer_op_latency_ms,
        maxBatchFlushLatencyMs: settings.slo.max_batch_flush_latency_ms,
        maxReplicationLagMs: settings.slo.max_replication_lag_sec,
      },
      peers: resolvePeers(replication, local.identity, baseDir, problems),
      cursor: {
        sqlitePath: replication.cursor.sqlite_path,
        walMode: replication.cursor.wal_mode,
      },
    },
    local: local.resolved,
    store: {
      cdcMaxlen: store.cdc_maxlen,
      changeFeed: store.change_feed,
      changeFeedMaxlen: store.change_feed_maxlen,
      tombstoneTtlMs: store.tombstone_ttl,
      relay: store.relay,
      maxItemBytes: store.max_item_bytes,
      conflictLog: store.conflict_log,
      maxMemoryBytes: store.max_memory_bytes,
      maxClockSkewMs: store.max_clock_skew,
      partitions: store.partitions,
      waitReplicas: store.wait_replicas,
      waitTimeoutMs: store.wait_timeout,
    },
    http: {
      enabled: http.enabled,
      host: http.host,
      port: http.port,
      // An empty token (e.g. `${ADMIN_TOKEN:-}`) means none, never "the empty string opens it".
      ...(http.token !== undefined && http.token !== '' && { token: http.token }),
    },
  };
}

/**
 * Validates options shaped like the YAML file (snake_case; durations as `"5s"` or numbers) and
 * resolves them: defaults filled in, durations in milliseconds, TLS files read, deep-frozen.
 * @throws {ConfigValidationError} (a `ConfigError`) naming the path of every bad field.
 */
export function resolveConfig(options: unknown, source: ConfigSource = {}): ResolvedConfig {
  const problems = new Problems();
  const cycle = cyclePath(options);
  if (cycle !== undefined) {
    problems.add(cycle, 'an alias refers to a mapping or list that contains it (a cycle)');
    problems.throwIfAny(source);
  }
  const input = dropNulls(options ?? {});
  const result = configSchema.safeParse(input);
  if (!result.success) {
    for (const issue of result.error.issues) problems.raw.push(...fromZodIssue(issue, input));
    // Every error in one pass: the cross-field checks run too, on the config without the values
    // already refused (their defaults stand in), and report what concerns only other values.
    const refused = problems.raw.map((p) => p.path);
    const rest = withoutPaths(input, refused);
    const retry = rest === undefined ? undefined : configSchema.safeParse(rest);
    if (retry?.success === true) {
      const more = new Problems();
      build(retry.data, source.baseDir ?? process.cwd(), more);
      for (const p of more.raw) {
        if (!refused.some((r) => overlaps(r, p.path))) problems.raw.push(p);
      }
    }
    problems.throwIfAny(source);
  }
  const parsed = result.data as ParsedConfig;
  const config = build(parsed, source.baseDir ?? process.cwd(), problems);
  problems.throwIfAny(source);
  return deepFreeze(config);
}

/** `value` with the values at `paths` removed (undefined when one is the whole config). */
function withoutPaths(value: unknown, paths: readonly ConfigPath[]): unknown {
  if (paths.some((p) => p.length === 0)) return undefined;
  const copy = copyTree(value) as Record<string | number, unknown>;
  for (const path of paths) {
    let node: unknown = copy;
    for (const key of path.slice(0, -1)) {
      node =
        typeof node === 'object' && node !== null
          ? (node as Record<string, unknown>)[key]
          : undefined;
    }
    // A refused value inside binary data (YAML !!binary) goes with the whole value's path.
    if (typeof node !== 'object' || node === null || ArrayBuffer.isView(node)) continue;
    const last = path[path.length - 1]!;
    if (Array.isArray(node) && typeof last === 'number') node.splice(last, 1, undefined);
    else delete (node as Record<string | number, unknown>)[last];
  }
  return dropNulls(copy);
}

/** A copy of the mappings and lists of `value`; scalars and binary data are shared, not copied. */
function copyTree(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(copyTree);
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, copyTree(v)]));
}

/** True when one path is the other or lies under it. */
function overlaps(a: ConfigPath, b: ConfigPath): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The configuration with every default, for a node with no peers. */
export function defaultConfig(localNodeId: string): ResolvedConfig {
  return resolveConfig({ replication: { local_node_id: localNodeId } });
}
