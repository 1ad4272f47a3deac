/**
 * No log floods: a warning that repeats while its condition lasts is logged once when it starts,
 * at most once per interval while it lasts, and once when it ends with how long and how many. The
 * cold path's tree upkeep, which fails every 250 ms while the local Redis is down, uses it (it
 * logged 137 lines in 35 s before).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { resolveConfig } from '../../src/config/index.js';
import { ColdPath } from '../../src/engine/cold-path.js';
import { PeerLink } from '../../src/engine/peer-link.js';
import type { PeerStream } from '../../src/engine/peer-stream.js';
import { StreamReader } from '../../src/engine/stream-reader.js';
import { createLogger, type Logger } from '../../src/observability/logger.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { RepeatingWarning } from '../../src/observability/repeating-warning.js';
import type { LocalStore } from '../../src/engine/local-store.js';
import { ZERO_HASH } from '../../src/store/merkle-hash.js';

interface Line {
  readonly level: string;
  readonly msg: string;
  readonly [field: string]: unknown;
}

function capturingLogger(): { logger: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const logger = createLogger({
    level: 'info',
    destination: { write: (text: string) => lines.push(JSON.parse(text) as Line) },
  });
  return { logger, lines };
}

async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('RepeatingWarning', () => {
  it('137 failures in 35 s make three lines: the start, one while it lasts, the end', () => {
    const { logger, lines } = capturingLogger();
    let now = 1_000_000;
    const warning = new RepeatingWarning(logger, 'refreshing failed', {
      recovered: 'refreshing works again',
      now: () => now,
    });
    for (let i = 0; i < 137; i++) {
      warning.fail({ err: `boom ${i}` });
      now += 250;
    }
    assert.equal(warning.failures, 137);
    now = 1_000_000 + 35_000;
    warning.ok();
    warning.ok(); // nothing more: it already ended
    assert.deepEqual(
      lines.map((l) => [l.level, l.msg]),
      [
        ['warn', 'refreshing failed'],
        ['warn', 'refreshing failed (still failing after 30.0s, 121 failures)'],
        ['info', 'refreshing works again: back after 35.0s, 137 failures'],
      ],
    );
    assert.equal(lines[0]!['err'], 'boom 0');
    assert.equal(lines[2]!['last_err'], 'boom 136');
    assert.equal(lines[2]!['failing_ms'], 35_000);
    assert.equal(warning.active, false);
  });

  it('starts afresh after it ended', () => {
    const { logger, lines } = capturingLogger();
    const warning = new RepeatingWarning(logger, 'x failed', { now: () => 5_000 });
    warning.fail();
    warning.ok();
    warning.fail();
    assert.deepEqual(
      lines.map((l) => l.msg),
      ['x failed', 'x failed: recovered: back after 0ms, 1 failure', 'x failed'],
    );
  });
});

describe('ColdPath tree upkeep while the local store fails', () => {
  it('logs the failure once while it lasts and once when it ends', async () => {
    let failing = true;
    let refreshes = 0;
    const store: LocalStore = {
      apply: () => Promise.resolve([]),
      isCurrent: () => Promise.resolve(false),
      getRecords: () => Promise.resolve([]),
      shouldAcceptWrites: () => Promise.resolve(true),
      merkleRoot: () => {
        refreshes += 1;
        return failing
          ? Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:6379'))
          : Promise.resolve(ZERO_HASH);
      },
      merkleChildren: () => Promise.resolve([]),
      merkleLeaves: () => Promise.resolve([]),
      merkleChildrenMany: (paths) => Promise.resolve(paths.map(() => [])),
      merkleLeavesMany: (buckets) => Promise.resolve(buckets.map(() => [])),
      refreshMerkle: () => Promise.resolve(),
      quarantine: () => Promise.resolve(),
      keepsFrames: false,
    };
    const config = resolveConfig({
      replication: {
        local_node_id: 'node-b',
        peers: [{ node_id: 'node-a', redis_url: 'redis://127.0.0.1:1' }],
      },
    });
    const peer = config.replication.peers[0]!;
    const { logger, lines } = capturingLogger();
    const cold = new ColdPath({
      localNodeId: 'node-b',
      settings: () => config.replication.coldPath,
      maxItemBytes: config.store.maxItemBytes,
      store,
      metrics: createMetrics(),
      logger,
      peer: () => ({
        link: {} as PeerLink,
        config: peer,
        catchingUp: () => false,
        paused: () => true,
      }),
      peers: () => [peer],
      onReport: () => undefined,
    });
    const about = (): Line[] =>
      lines.filter((l) => l.msg.startsWith('refreshing the local Merkle'));
    cold.start();
    try {
      await until(() => refreshes >= 6, 'six failed refreshes (250 ms apart)');
      assert.deepEqual(
        about().map((l) => l.msg),
        ['refreshing the local Merkle tree failed'],
        'one line for six failures',
      );
      failing = false;
      await until(() => about().length === 2, 'the recovery line');
      assert.match(
        about()[1]!.msg,
        /^refreshing the local Merkle tree works again: back after \d+(\.\d)?m?s, \d+ failures$/,
      );
    } finally {
      await cold.stop();
    }
  });
});

describe('slow peer operations and stream reads (no log flood)', () => {
  it('a peer operation over its SLO, 40 times: logged once, then once when fast again', async () => {
    const { logger, lines } = capturingLogger();
    const config = resolveConfig({
      replication: {
        local_node_id: 'node-b',
        settings: { slo: { max_peer_op_latency_ms: 1 } },
        peers: [{ node_id: 'node-a', redis_url: 'redis://127.0.0.1:1' }],
        cursor: { sqlite_path: ':memory:' },
      },
    });
    const link = new PeerLink(
      config.replication.peers[0]!,
      createMetrics(),
      logger,
      { peerHealth: () => config.replication.peerHealth, slo: () => config.replication.slo },
      { onUp: () => undefined, onDown: () => undefined },
    );
    const slow = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 5));
    for (let i = 0; i < 40; i++) await link.run('fetch', slow);
    await link.run('fetch', () => Promise.resolve());
    const slo = lines.filter((l) => /SLO/.test(l.msg)).map((l) => l.msg);
    assert.deepEqual(slo.length, 2, slo.join('\n'));
    assert.equal(slo[0], 'peer operation exceeded its SLO');
    assert.match(slo[1]!, /^peer operations are within their SLO: back after/);
    assert.match(slo[1]!, /40 failures/);
    await link.close();
  });

  it('a catch-up read over its SLO, 30 times: logged once, then once when fast again', async () => {
    const { logger, lines } = capturingLogger();
    let delayMs = 5;
    const stream: PeerStream = {
      ready: () => Promise.resolve(true),
      range: async (cursor) => {
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        return { entries: [{ id: nextId(cursor), fields: [] }], cut: false };
      },
      tail: () => Promise.resolve({ entries: [], cut: false }),
      info: () => Promise.resolve(undefined),
    };
    const reader = new StreamReader(
      stream,
      'node-a',
      createMetrics(),
      logger,
      null,
      new AbortController().signal,
    );
    let cursor = '0-0';
    // 30 slow reads, then fast ones well within a looser SLO (a read ahead may still be slow).
    for (let i = 0; i < 34; i++) {
      if (i === 30) delayMs = 0;
      const read = await reader.read(cursor, 10, { sloMs: i < 30 ? 1 : 60_000 });
      cursor = read.entries.at(-1)!.id;
    }
    const slo = lines.filter((l) => /SLO/.test(l.msg)).map((l) => l.msg);
    assert.equal(slo.length, 2, slo.join('\n'));
    assert.equal(slo[0], 'stream read exceeded its SLO');
    assert.match(slo[1]!, /^stream reads are within their SLO: back after .*, 3[01] failures/);
  });
});

function nextId(cursor: string): string {
  const [ms, seq] = cursor.split('-').map(Number);
  return `${ms}-${seq! + 1}`;
}
