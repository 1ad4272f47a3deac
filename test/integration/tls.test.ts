import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resolveConfig } from '../../src/config/index.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import { ReplicationEngine } from '../../src/engine/engine.js';
import { createLogger } from '../../src/observability/logger.js';
import { SyncStore } from '../../src/store/sync-store.js';
import { eventually, freePort, startRedis, type RedisServer } from '../helpers/redis-server.js';
import { makePki, type TestPki } from '../helpers/tls.js';

describe('peers over rediss:// with mutual TLS', () => {
  let pki: TestPki;
  let a: RedisServer;
  let b: RedisServer;
  let dir: string;
  let tlsUrl: string;
  let source: SyncStore;
  let target: SyncStore;

  before(async () => {
    pki = makePki();
    const tlsPort = await freePort();
    // A's Redis speaks TLS only and requires a client certificate signed by the CA.
    a = await startRedis({
      args: [
        '--tls-port',
        String(tlsPort),
        '--tls-cert-file',
        pki.serverCert,
        '--tls-key-file',
        pki.serverKey,
        '--tls-ca-cert-file',
        pki.caFile,
        '--tls-auth-clients',
        'yes',
      ],
    });
    tlsUrl = `rediss://127.0.0.1:${tlsPort}`;
    b = await startRedis();
    dir = mkdtempSync(join(tmpdir(), 'repl-tls-'));
    const tls = { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey, rejectUnauthorized: true };
    source = await SyncStore.connect({ redisUrl: tlsUrl, nodeId: 'node-a', tls });
    target = await SyncStore.connect({ redisUrl: b.url, nodeId: 'node-b' });
  });

  after(async () => {
    await Promise.allSettled([source.close(), target.close()]);
    await Promise.allSettled([a.stop(), b.stop()]);
    rmSync(dir, { recursive: true, force: true });
    pki.remove();
  });

  function config(tls: Record<string, unknown> | undefined, db: string): ResolvedConfig {
    const base = resolveConfig({
      replication: {
        local_node_id: 'node-b',
        settings: { hot_path: { block_timeout: '1s' }, cold_path: { enabled: false } },
        peers: [{ node_id: 'node-a', redis_url: tlsUrl }],
        cursor: { sqlite_path: join(dir, `${db}.db`) },
      },
      local: { redis_url: b.url },
      http: { enabled: false },
    });
    const peer = base.replication.peers[0]!;
    return {
      ...base,
      replication: {
        ...base.replication,
        peers: [
          { ...peer, ...(tls !== undefined ? { tls: { rejectUnauthorized: true, ...tls } } : {}) },
        ],
      },
    };
  }

  it('replicates through a verified, client-authenticated TLS connection', async () => {
    const engine = new ReplicationEngine(
      config({ ca: pki.ca, cert: pki.clientCert, key: pki.clientKey }, 'mtls'),
      target,
      {
        logger: createLogger({ level: 'silent' }),
      },
    );
    await engine.start();
    try {
      await source.put('uk.tls.1', { secure: true });
      await eventually(async () => (await target.get('uk.tls.1')) !== undefined, 'write over TLS');
      assert.equal(engine.health().peers[0]!.connected, true);
    } finally {
      await engine.stop();
    }
  });

  it('refuses a server certificate it cannot verify (verification is on by default)', async () => {
    const lines: string[] = [];
    const engine = new ReplicationEngine(
      config({ cert: pki.clientCert, key: pki.clientKey }, 'noca'),
      target,
      {
        logger: createLogger({
          level: 'warn',
          destination: { write: (s: string) => lines.push(s) },
        }),
      },
    );
    await engine.start();
    try {
      await eventually(
        () => lines.some((l) => /certificate|self.signed|verify/i.test(l)),
        'verification failure logged',
      );
      assert.equal(engine.health().peers[0]!.connected, false);
    } finally {
      await engine.stop();
    }
  });
});
