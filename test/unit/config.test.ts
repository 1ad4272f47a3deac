import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../src/errors.js';
import {
  ConfigValidationError,
  defaultConfig,
  loadConfigFile,
  parseConfig,
  parseDuration,
  parseSize,
  resolveConfig,
} from '../../src/config/index.js';
import type { ResolvedConfig } from '../../src/config/index.js';

const SEED_EXAMPLE = fileURLToPath(new URL('../fixtures/seed-example.yaml', import.meta.url));

function parse(text: string, env: Record<string, string> = {}): ResolvedConfig {
  return parseConfig(text, { env, sourceName: 'node.yaml' });
}

/** Parses `text`, expecting a ConfigError; returns its message. */
function failure(text: string, env: Record<string, string> = {}): ConfigError {
  try {
    parse(text, env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(error.code, 'CONFIG_INVALID');
    return error;
  }
  assert.fail('expected the config to be rejected');
}

const yaml = (lines: string[]): string => `${lines.join('\n')}\n`;

describe('config defaults', () => {
  it('fills in every seed default from a file with only local_node_id', () => {
    const config = parse('replication:\n  local_node_id: "uk.node.london-1"\n');
    assert.deepEqual(config, {
      replication: {
        localNodeId: 'uk.node.london-1',
        hotPath: {
          enabled: true,
          batchSize: 100,
          blockTimeoutMs: 5000,
          adaptiveBatchSize: false,
          minBatchSize: 50,
          maxBatchSize: 1000,
          maxBatchBytes: 16 * 1024 * 1024,
          rateLimitEnabled: false,
          rateLimitPerSec: 10_000,
          rateLimitBurst: 1000,
        },
        coldPath: {
          enabled: true,
          intervalMs: 60_000,
          maxItemsPerCycle: 1000,
          backoffBaseMs: 5000,
          backoffMaxMs: 300_000,
        },
        peerHealth: { enabled: true, pingIntervalMs: 30_000, idleThresholdMs: 60_000 },
        slo: {
          maxStreamReadLatencyMs: 100,
          maxPeerOpLatencyMs: 500,
          maxBatchFlushLatencyMs: 200,
          maxReplicationLagMs: 30_000,
        },
        peers: [],
        cursor: { sqlitePath: 'replication_cursors.db', walMode: true },
      },
      local: {
        redisUrl: 'redis://127.0.0.1:6379',
        displayUrl: 'redis://127.0.0.1:6379',
        redisPrefix: '',
      },
      store: {
        cdcMaxlen: 100_000,
        changeFeed: true,
        changeFeedMaxlen: 100_000,
        tombstoneTtlMs: 7 * 24 * 3600 * 1000,
        relay: false,
        maxItemBytes: 64 * 1024 * 1024,
        conflictLog: false,
        maxMemoryBytes: 0,
        maxClockSkewMs: 5 * 60 * 1000,
        partitions: 16,
        waitReplicas: 0,
        waitTimeoutMs: 1000,
      },
      http: { enabled: true, host: '127.0.0.1', port: 9090 },
    });
  });

  it('defaultConfig and resolveConfig give the same defaults, deep-frozen', () => {
    const config = defaultConfig('n1');
    assert.deepEqual(config, parse('replication:\n  local_node_id: n1\n'));
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.replication.hotPath));
    assert.ok(Object.isFrozen(config.replication.peers));
    assert.throws(() => {
      (config.http as { port: number }).port = 1;
    }, TypeError);
  });

  it('treats an empty value as the default', () => {
    const config = parse(yaml(['replication:', '  local_node_id: n1', '  settings:', 'store:']));
    assert.equal(config.replication.hotPath.batchSize, 100);
    assert.equal(config.store.cdcMaxlen, 100_000);
  });

  it('accepts options built in code', () => {
    const config = resolveConfig({
      replication: {
        local_node_id: 'n1',
        settings: { hot_path: { block_timeout: 250 } },
        peers: [{ node_id: 'n2', redis_url: 'redis://127.0.0.1:7000' }],
      },
      store: { max_item_bytes: '512KB' },
      http: { port: 0 },
    });
    assert.equal(config.replication.hotPath.blockTimeoutMs, 250_000);
    assert.equal(config.replication.peers[0]?.nodeId, 'n2');
    assert.equal(config.store.maxItemBytes, 512_000);
    assert.equal(config.http.port, 0);
  });

  it('reports every error in one pass: the cross-field checks too when a value is refused', () => {
    const text = [
      'replication:',
      '  local_node_id: n1',
      '  settings:',
      '    hot_path:',
      '      batch_size: 10',
      '      block_timeout: soon',
      '  peers:',
      '    - node_id: n2',
      '      redis_url: redis://127.0.0.1:7000',
      'store:',
      '  max_item_bytes: lots',
      '',
    ].join('\n');
    assert.throws(
      () => parseConfig(text, { sourceName: 'node.yaml' }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigValidationError);
        const paths = error.issues.map((i) => i.path);
        assert.deepEqual(paths, [
          'replication.settings.hot_path.batch_size',
          'replication.settings.hot_path.block_timeout',
          'store.max_item_bytes',
        ]);
        assert.match(error.issues[0]!.message, /at least min_batch_size \(50\)/);
        assert.equal(error.issues[0]!.position?.line, 5);
        return true;
      },
    );
  });

  it('reports problems of options built in code by path, without a line', () => {
    assert.throws(
      () => resolveConfig({ replication: { local_node_id: 'n1', settings: { hot_path: 5 } } }),
      (error: unknown) =>
        error instanceof ConfigValidationError &&
        error.path === 'replication.settings.hot_path' &&
        error.message === 'replication.settings.hot_path: expected a mapping, found 5',
    );
  });
});

describe('the seed README example', () => {
  it('loads as is', () => {
    const config = loadConfigFile(SEED_EXAMPLE, {});
    assert.equal(config.replication.localNodeId, 'uk.node.london-1');
    assert.equal(config.replication.hotPath.adaptiveBatchSize, true);
    assert.equal(config.replication.hotPath.rateLimitEnabled, true);
    assert.equal(config.replication.slo.maxReplicationLagMs, 60_000);
    assert.equal(config.replication.slo.maxPeerOpLatencyMs, 500);
    assert.equal(config.replication.peerHealth.idleThresholdMs, 60_000);
    assert.equal(config.replication.coldPath.backoffMaxMs, 300_000);
    assert.equal(config.replication.cursor.sqlitePath, '/var/lib/redsqrl/replication_cursors.db');
    const [manchester, edinburgh] = config.replication.peers;
    assert.equal(manchester?.nodeId, 'uk.node.manchester-1');
    assert.equal(manchester?.tls, undefined);
    assert.equal(manchester?.circuitResetTimeoutMs, 30_000);
    assert.equal(edinburgh?.nodeId, 'uk.node.edinburgh-1');
    assert.equal(edinburgh?.priority, 1);
    assert.deepEqual(edinburgh?.tls, { rejectUnauthorized: true });
    assert.equal(edinburgh?.redisUrl, 'rediss://user:pass@peer2:6379');
    assert.equal(edinburgh?.displayUrl, 'rediss://user:***@peer2:6379');
  });
});

describe('durations and sizes', () => {
  it('parses units and bare numbers', () => {
    assert.equal(parseDuration('250ms', 's'), 250);
    assert.equal(parseDuration('5s', 's'), 5000);
    assert.equal(parseDuration('2m', 's'), 120_000);
    assert.equal(parseDuration('1h', 's'), 3_600_000);
    assert.equal(parseDuration('7d', 's'), 604_800_000);
    assert.equal(parseDuration('1h30m', 's'), 5_400_000);
    assert.equal(parseDuration('1.5s', 's'), 1500);
    assert.equal(parseDuration(30, 's'), 30_000);
    assert.equal(parseDuration(30, 'ms'), 30);
    assert.equal(parseDuration('30', 'ms'), 30);
    for (const bad of ['', '5 parsecs', '-1s', 's', '5x', -1, Number.NaN, true, null]) {
      assert.equal(parseDuration(bad, 's'), undefined, String(bad));
    }
    assert.equal(parseSize('64MiB'), 64 * 1024 * 1024);
    assert.equal(parseSize('512KB'), 512_000);
    assert.equal(parseSize('512kib'), 512 * 1024);
    assert.equal(parseSize(1024), 1024);
    for (const bad of ['64 furlongs', '1.5B', -1, 1.5, '']) {
      assert.equal(parseSize(bad), undefined, String(bad));
    }
  });

  it('reads a bare number as seconds for _sec, block_timeout and tombstone_ttl, ms for _ms', () => {
    const config = parse(
      yaml([
        'replication:',
        '  local_node_id: n1',
        '  settings:',
        '    hot_path:',
        '      block_timeout: 2',
        '    cold_path:',
        '      interval_sec: "2m"',
        '      backoff_base_sec: 1',
        '      backoff_max_sec: 2m',
        '    slo:',
        '      max_stream_read_latency_ms: 50',
        '      max_peer_op_latency_ms: "1s"',
        '      max_replication_lag_sec: 45',
        'store:',
        '  tombstone_ttl: 86400',
      ]),
    );
    assert.equal(config.replication.hotPath.blockTimeoutMs, 2000);
    assert.equal(config.replication.coldPath.intervalMs, 120_000);
    assert.equal(config.replication.coldPath.backoffBaseMs, 1000);
    assert.equal(config.replication.coldPath.backoffMaxMs, 120_000);
    assert.equal(config.replication.slo.maxStreamReadLatencyMs, 50);
    assert.equal(config.replication.slo.maxPeerOpLatencyMs, 1000);
    assert.equal(config.replication.slo.maxReplicationLagMs, 45_000);
    assert.equal(config.store.tombstoneTtlMs, 86_400_000);
  });

  it('rejects a malformed duration with its path and line', () => {
    const error = failure(
      yaml([
        'replication:',
        '  local_node_id: n1',
        '  settings:',
        '    hot_path:',
        '      block_timeout: 5 parsecs',
      ]),
    );
    assert.equal(
      error.message,
      'node.yaml:5:7 replication.settings.hot_path.block_timeout: expected a duration such as ' +
        '"5s", "250ms", "2m", "1h", "7d", or a number of seconds, found "5 parsecs"',
    );
  });

  it('rejects a backoff base above its maximum', () => {
    const error = failure(
      yaml([
        'replication:',
        '  local_node_id: n1',
        '  settings:',
        '    cold_path:',
        '      backoff_base_sec: 1',
        '      backoff_max_sec: 250ms',
      ]),
    );
    assert.equal(
      error.message,
      'node.yaml:5:7 replication.settings.cold_path.backoff_base_sec: expected at most ' +
        'backoff_max_sec (250ms), found 1s',
    );
  });

  it('rejects a tombstone_ttl that does not outlive a repair cycle', () => {
    const error = failure(
      yaml(['replication:', '  local_node_id: n1', 'store:', '  tombstone_ttl: 1m']),
    );
    assert.match(
      error.message,
      /^node\.yaml:4:3 store\.tombstone_ttl: expected more than replication\.settings\.cold_path\.interval_sec.*found 1m$/,
    );
  });

  it('rejects a size out of range', () => {
    const error = failure(
      yaml(['replication:', '  local_node_id: n1', 'store:', '  max_item_bytes: 1GiB']),
    );
    assert.equal(
      error.message,
      'node.yaml:4:3 store.max_item_bytes: expected a byte size from 1 to 512MiB, found "1GiB"',
    );
  });
});

describe('environment interpolation', () => {
  it('substitutes set variables, defaults and escapes', () => {
    const config = parse(
      yaml([
        'replication:',
        '  local_node_id: ${NODE_ID}',
        '  peers:',
        '    - node_id: peer-${REGION:-eu}',
        '      redis_url: "redis://replicator:${PEER_PASSWORD}@peer1:6379"',
        'local:',
        '  redis_prefix: "$${literal}"',
        'http:',
        '  port: ${HTTP_PORT}',
        '  token: ${ADMIN_TOKEN:-}',
        '  enabled: ${HTTP_ON:-false}',
      ]),
      { NODE_ID: 'uk.node.london-1', PEER_PASSWORD: 'hunter2', HTTP_PORT: '9191' },
    );
    assert.equal(config.replication.localNodeId, 'uk.node.london-1');
    assert.equal(config.replication.peers[0]?.nodeId, 'peer-eu');
    assert.equal(config.replication.peers[0]?.redisUrl, 'redis://replicator:hunter2@peer1:6379');
    assert.equal(config.replication.peers[0]?.displayUrl, 'redis://replicator:***@peer1:6379');
    assert.equal(config.local.redisPrefix, '${literal}');
    assert.equal(config.http.port, 9191);
    assert.equal(config.http.token, undefined);
    assert.equal(config.http.enabled, false);
  });

  it('treats an unquoted value that interpolates to nothing as absent', () => {
    const config = parse(
      yaml([
        'replication:',
        '  local_node_id: n1',
        'http:',
        '  port: ${HTTP_PORT:-}',
        '  host: ${HOST}',
      ]),
      { HOST: '' },
    );
    assert.equal(config.http.port, 9090);
    assert.equal(config.http.host, '127.0.0.1');
  });

  it('keeps a quoted interpolated value a string', () => {
    const error = failure(
      yaml(['replication:', '  local_node_id: n1', 'http:', '  port: "${HTTP_PORT}"']),
      { HTTP_PORT: '9191' },
    );
    assert.equal(error.message, 'node.yaml:4:3 http.port: expected a number, found "9191"');
  });

  it('names an unset variable and the path where it is used', () => {
    const error = failure(
      yaml([
        'replication:',
        '  local_node_id: n1',
        '  peers:',
        '    - node_id: n2',
        '      redis_url: "redis://u:${PEER_PASSWORD}@peer1:6379"',
      ]),
    );
    assert.equal(error.path, 'replication.peers[0].redis_url');
    assert.equal(
      error.message,
      'node.yaml:5:7 replication.peers[0].redis_url: environment variable PEER_PASSWORD is not ' +
        'set (write ${PEER_PASSWORD:-default} to give a default)',
    );
  });

  it('does not interpolate options built in code', () => {
    const config = resolveConfig({
      replication: { local_node_id: 'n1' },
      local: { redis_prefix: '${X}' },
    });
    assert.equal(config.local.redisPrefix, '${X}');
  });
});

describe('config errors', () => {
  it('an alias inside the mapping it names (a cycle) is a ConfigError with its path, not a crash', () => {
    // Found by the config fuzzer: `&x` then `<<: *x` made a circular object that overflowed the stack.
    for (const [text, path, line] of [
      ['&x\n<<: *x\n', '["<<"]', 2],
      ['&x\n    <<: *x\n', '["<<"]', 2],
      [
        yaml(['replication: &r', '  local_node_id: n1', '  settings:', '    again: *r']),
        'replication.settings.again',
        4,
      ],
    ] as const) {
      const error = failure(text);
      assert.equal(error.path, path);
      assert.match(error.message, new RegExp(`^node\\.yaml:${line}:\\d+ .*a cycle`));
    }
    // Options built in code: the same, without a line.
    const options: Record<string, Record<string, unknown>> = {
      replication: { local_node_id: 'n1' },
    };
    options['replication']!['self'] = options;
    assert.throws(
      () => resolveConfig(options),
      (error: unknown) =>
        error instanceof ConfigValidationError && error.path === 'replication.self',
    );
    // The same mapping aliased twice, with no cycle, is fine.
    const shared = parse(
      yaml([
        'replication:',
        '  local_node_id: n1',
        '  peers:',
        '    - { node_id: a, redis_url: "rediss://a:6379", tls: &tls { servername: peers.example } }',
        '    - { node_id: b, redis_url: "rediss://b:6379", tls: *tls }',
      ]),
    );
    assert.deepEqual(
      shared.replication.peers.map((p) => p.tls?.servername),
      ['peers.example', 'peers.example'],
    );
  });

  it('unknown key, with a suggestion', () => {
    const error = failure(
      yaml([
        'replication:',
        '  local_node_id: n1',
        '  settings:',
        '    hot_path:',
        '      batchsize: 10',
      ]),
    );
    assert.equal(error.path, 'replication.settings.hot_path.batchsize');
    assert.equal(
      error.message,
      'node.yaml:5:7 replication.settings.hot_path.batchsize: unknown option "batchsize" ' +
        '(did you mean "batch_size"?)',
    );
  });

  it('unknown top-level key lists the known ones', () => {
    const error = failure(yaml(['replication:', '  local_node_id: n1', 'metrics:', '  port: 1']));
    assert.equal(
      error.message,
      'node.yaml:3:1 metrics: unknown option "metrics" at the top level; expected one of: ' +
        'replication, local, store, http',
    );
  });

  it('wrong type', () => {
    const error = failure(
      yaml([
        'replication:',
        '  local_node_id: n1',
        '  settings:',
        '    cold_path:',
        '      enabled: "yes"',
        '      max_items_per_cycle: many',
      ]),
    );
    assert.equal(
      error.message,
      [
        'node.yaml:5:7 replication.settings.cold_path.enabled: expected a boolean (true or false), found "yes"',
        'node.yaml:6:7 replication.settings.cold_path.max_items_per_cycle: expected a number, found "many"',
      ].join('\n'),
    );
    assert.equal(error.path, 'replication.settings.cold_path.enabled');
  });

  it('out of range', () => {
    const error = failure(
      yaml([
        'replication:',
        '  local_node_id: n1',
        '  settings:',
        '    hot_path:',
        '      batch_size: 0',
        'http:',
        '  port: 70000',
      ]),
    );
    assert.match(
      error.message,
      /^node\.yaml:5:7 replication\.settings\.hot_path\.batch_size: expected a number ≥ 1, found 0$/m,
    );
    assert.match(
      error.message,
      /^node\.yaml:7:3 http\.port: expected a number ≤ 65535, found 70000$/m,
    );
  });

  it('duplicate peer ids', () => {
    const error = failure(
      yaml([
        'replication:',
        '  local_node_id: n1',
        '  peers:',
        '    - node_id: n2',
        '      redis_url: redis://a:6379',
        '    - node_id: n3',
        '      redis_url: redis://b:6379',
        '    - node_id: n2',
        '      redis_url: redis://c:6379',
      ]),
    );
    assert.equal(error.path, 'replication.peers[2].node_id');
    assert.equal(
      error.message,
      'node.yaml:8:7 replication.peers[2].node_id: duplicate peer node_id "n2" (also replication.peers[0])',
    );
  });

  it('own local_node_id among the peers', () => {
    const error = failure(
      yaml([
        'replication:',
        '  local_node_id: n1',
        '  peers:',
        '    - node_id: n1',
        '      redis_url: redis://a:6379',
      ]),
    );
    assert.equal(
      error.message,
      'node.yaml:4:7 replication.peers[0].node_id: "n1" is this node\'s own local_node_id; a node ' +
        'does not replicate from itself',
    );
  });

  it('a peer pointing at the local Redis and prefix', () => {
    const error = failure(
      yaml([
        'replication:',
        '  local_node_id: n1',
        '  peers:',
        '    - node_id: n2',
        '      redis_url: redis://127.0.0.1',
      ]),
    );
    assert.match(
      error.message,
      /^node\.yaml:5:7 replication\.peers\[0\]\.redis_url: expected another node's Redis/,
    );
  });

  it('bad URL scheme', () => {
    const error = failure(
      yaml([
        'replication:',
        '  local_node_id: n1',
        '  peers:',
        '    - node_id: n2',
        '      redis_url: "http://x"',
      ]),
    );
    assert.equal(
      error.message,
      'node.yaml:5:7 replication.peers[0].redis_url: expected a redis:// or rediss:// URL, found "http://x"',
    );
  });

  it('unparseable URL', () => {
    const error = failure(
      yaml(['replication:', '  local_node_id: n1', 'local:', '  redis_url: "redis://host:99999"']),
    );
    assert.equal(
      error.message,
      'node.yaml:4:3 local.redis_url: expected a redis:// or rediss:// URL, found ' +
        '"redis://***" (not a valid URL; the rest is hidden, as it may hold a password)',
    );
  });

  it('an unparseable URL never shows a password it may hold (found by the config fuzzer)', () => {
    const error = failure(
      yaml([
        'replication:',
        '  local_node_id: n1',
        'local:',
        '  redis_url: rediss://user:s3cret-pw',
      ]),
    );
    assert.ok(!error.message.includes('s3cret-pw'), error.message);
    assert.match(error.message, /local\.redis_url: .*"rediss:\/\/\*\*\*" \(not a valid URL/);
  });

  it('min_batch_size above max_batch_size names min_batch_size', () => {
    const error = failure(
      yaml([
        'replication:',
        '  local_node_id: n1',
        '  settings:',
        '    hot_path:',
        '      min_batch_size: 500',
        '      max_batch_size: 200',
      ]),
    );
    assert.equal(
      error.message,
      'node.yaml:5:7 replication.settings.hot_path.min_batch_size: expected at most ' +
        'max_batch_size (200), found 500',
    );
  });

  it('batch_size outside min..max names batch_size', () => {
    const error = failure(
      yaml([
        'replication:',
        '  local_node_id: n1',
        '  settings:',
        '    hot_path:',
        '      batch_size: 2000',
      ]),
    );
    assert.equal(
      error.message,
      'node.yaml:5:7 replication.settings.hot_path.batch_size: expected at most max_batch_size ' +
        '(1000), found 2000',
    );
  });

  it('missing local_node_id', () => {
    const error = failure(yaml(['replication:', '  peers: []']));
    assert.equal(error.path, 'replication.local_node_id');
    assert.equal(
      error.message,
      'node.yaml:1:1 replication.local_node_id: missing (expected a string)',
    );
  });

  it('missing replication section', () => {
    const error = failure('');
    assert.equal(error.message, 'node.yaml:1:1 replication: missing (expected a mapping)');
  });

  it('YAML syntax error', () => {
    const error = failure(yaml(['replication:', '  local_node_id: [n1', 'http:', '  port: 1']));
    assert.match(error.message, /^node\.yaml:3:1: invalid YAML: /);
  });

  it('duplicate YAML key', () => {
    const error = failure(yaml(['replication:', '  local_node_id: n1', '  local_node_id: n2']));
    assert.match(error.message, /^node\.yaml:3:3: invalid YAML: Map keys must be unique/);
  });
});

describe('TLS', () => {
  const dir = mkdtempSync(join(tmpdir(), 'config-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'ca.pem'), 'CA');
  writeFileSync(join(dir, 'client.pem'), 'CERT');
  writeFileSync(join(dir, 'client.key'), 'KEY');

  it('reads the files, relative to the config file', () => {
    const file = join(dir, 'node.yaml');
    writeFileSync(
      file,
      yaml([
        'replication:',
        '  local_node_id: n1',
        '  peers:',
        '    - node_id: n2',
        '      redis_url: rediss://peer:6380',
        '      tls:',
        '        ca_file: ca.pem',
        '        cert_file: client.pem',
        `        key_file: ${join(dir, 'client.key')}`,
        '        servername: peer.example',
        'local:',
        '  redis_url: rediss://127.0.0.1:6380',
        '  tls:',
        '    reject_unauthorized: false',
      ]),
    );
    const config = loadConfigFile(file, {});
    const tls = config.replication.peers[0]?.tls;
    assert.equal(tls?.ca?.toString(), 'CA');
    assert.equal(tls?.cert?.toString(), 'CERT');
    assert.equal(tls?.key?.toString(), 'KEY');
    assert.equal(tls?.servername, 'peer.example');
    assert.equal(tls?.rejectUnauthorized, true);
    assert.deepEqual(config.local.tls, { rejectUnauthorized: false });
  });

  it('names the option and the file that does not exist', () => {
    const error = failure(
      yaml([
        'replication:',
        '  local_node_id: n1',
        '  peers:',
        '    - node_id: n2',
        '      redis_url: rediss://peer:6380',
        '      tls:',
        `        ca_file: ${join(dir, 'missing.pem')}`,
      ]),
    );
    assert.equal(error.path, 'replication.peers[0].tls.ca_file');
    assert.equal(
      error.message,
      `node.yaml:7:9 replication.peers[0].tls.ca_file: file not found: "${join(dir, 'missing.pem')}"`,
    );
  });

  it('needs both cert_file and key_file', () => {
    const error = failure(
      yaml([
        'replication:',
        '  local_node_id: n1',
        'local:',
        '  redis_url: rediss://127.0.0.1:6380',
        '  tls:',
        `    cert_file: ${join(dir, 'client.pem')}`,
      ]),
    );
    assert.equal(
      error.message,
      'node.yaml:5:3 local.tls.key_file: missing (mutual TLS needs both cert_file and key_file)',
    );
  });

  it('refuses tls options on a redis:// URL', () => {
    const error = failure(
      yaml([
        'replication:',
        '  local_node_id: n1',
        '  peers:',
        '    - node_id: n2',
        '      redis_url: redis://peer:6379',
        '      tls:',
        '        reject_unauthorized: false',
      ]),
    );
    assert.match(
      error.message,
      /^node\.yaml:6:7 replication\.peers\[0\]\.tls: TLS options need a rediss:\/\/ URL/,
    );
  });
});

describe('secrets', () => {
  const password = 'Sup3r-s3cret!pw';

  it('never shows a URL password in an error message', () => {
    const urls = [
      `http://user:${password}@peer:6379`,
      `redis://user:${password}@peer:99999`,
      `redis://user:${password}@peer:6379/not-a-db`,
      `redis://user:${password.slice(0, 4)} ${password.slice(4)}@peer/x y`,
      `redis://user:${password}/x@peer`,
      `redis://user:${password}@`,
    ];
    for (const url of urls) {
      const viaEnv = failure(
        yaml([
          'replication:',
          '  local_node_id: n1',
          '  peers:',
          '    - node_id: n2',
          '      redis_url: ${PEER_URL}',
        ]),
        { PEER_URL: url },
      );
      assert.match(viaEnv.message, /replication\.peers\[0\]\.redis_url: expected/);
      for (const part of [password, password.slice(4)]) {
        assert.ok(!viaEnv.message.includes(part), viaEnv.message);
      }
    }
  });

  it('never shows a token or password option in an error message', () => {
    const error = failure(
      yaml(['replication:', '  local_node_id: n1', 'http:', `  token: [${password}]`]),
    );
    assert.equal(error.message, 'node.yaml:4:3 http.token: expected a string, found a list');
    const numeric = failure(
      yaml(['replication:', '  local_node_id: n1', 'http:', '  token: 123456']),
    );
    assert.equal(numeric.message, 'node.yaml:4:3 http.token: expected a string, found "***"');
  });

  it('never shows a URL password in displayUrl', () => {
    const config = parse(
      yaml([
        'replication:',
        '  local_node_id: n1',
        '  peers:',
        '    - node_id: n2',
        `      redis_url: "rediss://:${password}@peer:6380/2"`,
        'local:',
        `  redis_url: "redis://admin:${password}@127.0.0.1:6379"`,
      ]),
    );
    assert.equal(config.replication.peers[0]?.displayUrl, 'rediss://:***@peer:6380/2');
    assert.equal(config.local.displayUrl, 'redis://admin:***@127.0.0.1:6379');
    assert.ok(!JSON.stringify(config.replication.peers[0]?.displayUrl).includes(password));
  });

  it('reports a missing config file', () => {
    assert.throws(
      () => loadConfigFile('/nonexistent/node.yaml', {}),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message === '/nonexistent/node.yaml: cannot read the config file (no such file)',
    );
  });
});
