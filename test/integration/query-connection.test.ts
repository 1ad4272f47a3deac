/**
 * A peer's query connection (QueryConnection, issue 19) against a real redis-server: it answers
 * what node-redis did for the readers of a peer (strings, Buffers with AS_BUFFERS, flat hashes,
 * error replies as errors); a value over its command's bound comes back as its size only and is
 * reported; a reply over its bound is refused and the connection goes on; replies sharing a budget
 * are refused once it is spent, to be sent again on their own; and a command past its deadline
 * fails, and the next command is answered in step on the same socket.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import { Dropped } from '../../src/engine/bounded-resp.js';
import { QueryConnection, type QueryCommand } from '../../src/engine/query-connection.js';
import { PeerReplyTooLargeError } from '../../src/errors.js';
import { AS_BUFFERS, AS_STRINGS } from '../../src/store/redis-io.js';
import { eventually, startRedis, type RedisServer } from '../helpers/redis-server.js';

let server: RedisServer;
let admin: ReturnType<typeof createClient>;

before(async () => {
  server = await startRedis();
  admin = createClient({ url: server.url });
  await admin.connect();
});

after(async () => {
  await admin.close();
  await server.stop();
});

const MiB = 1024 * 1024;

async function connect(
  reports: [QueryCommand, number][] = [],
  commandTimeoutMs?: number,
): Promise<QueryConnection> {
  const conn = new QueryConnection({
    url: server.url,
    name: 'qc-test',
    onOversized: (command, values) => reports.push([command, values]),
    ...(commandTimeoutMs !== undefined ? { commandTimeoutMs } : {}),
  });
  await conn.connect();
  return conn;
}

describe('QueryConnection', () => {
  it('answers as node-redis did: strings, Buffers, flat hashes, numbers, errors', async () => {
    await admin.sendCommand(['HSET', 'qc:h', 'f1', 'v1', 'f2', 'v2']);
    await admin.sendCommand(['SET', 'qc:s', 'héllo']);
    const conn = await connect();
    try {
      assert.deepEqual(await conn.sendCommand(['HMGET', 'qc:h', 'f1', 'nope', 'f2'], AS_STRINGS), [
        'v1',
        null,
        'v2',
      ]);
      assert.deepEqual((await conn.sendCommand<string[]>(['HGETALL', 'qc:h'])).sort(), [
        'f1',
        'f2',
        'v1',
        'v2',
      ]);
      assert.equal(await conn.sendCommand(['HLEN', 'qc:h']), 2);
      assert.equal(await conn.sendCommand(['PING']), 'PONG');
      const bytes = await conn.sendCommand<Buffer>(['GETRANGE', 'qc:s', '0', '5'], AS_BUFFERS);
      assert.ok(Buffer.isBuffer(bytes));
      assert.equal(bytes.toString('utf8'), 'héllo');
      const time = await conn.sendCommand<string[]>(['TIME']);
      assert.equal(time.length, 2);
      await assert.rejects(conn.sendCommand(['XINFO', 'STREAM', 'qc:none']), /no such key/i);
    } finally {
      conn.destroy();
    }
  });

  it('skips a node hash over 64 bytes and a field name over 64 KiB unread, and reports them', async () => {
    await admin.sendCommand(['HSET', 'merkle:nodes', 'a', 'ab'.repeat(32), 'b', 'x'.repeat(MiB)]);
    await admin.sendCommand(['HSET', 'qc:bucket', 'x'.repeat(65 * 1024), '1|1|0|h|n', 'k', 't']);
    const reports: [QueryCommand, number][] = [];
    const conn = await connect(reports);
    try {
      const hashes = await conn.sendCommand<unknown[]>(['HMGET', 'merkle:nodes', 'a', 'b']);
      assert.equal(hashes[0], 'ab'.repeat(32));
      assert.ok(hashes[1] instanceof Dropped && hashes[1].bytes === MiB);
      const page = await conn.sendCommand<[string, unknown[]]>(['HSCAN', 'qc:bucket', '0']);
      assert.equal(page[1].filter((v) => v instanceof Dropped).length, 1);
      assert.ok(page[1].includes('k'));
      assert.deepEqual(reports, [
        ['hmget', 1],
        ['hscan', 1],
      ]);
    } finally {
      conn.destroy();
      await admin.sendCommand(['DEL', 'merkle:nodes', 'qc:bucket']);
    }
  });

  it('shows the entries of XINFO STREAM by id, their large values skipped, and reports nothing', async () => {
    await admin.sendCommand(['XADD', 'qc:cdc', '5-1', 'op', 'PUT', 'data', 'y'.repeat(2 * MiB)]);
    const reports: [QueryCommand, number][] = [];
    const conn = await connect(reports);
    try {
      const info = await conn.sendCommand<unknown[]>(['XINFO', 'STREAM', 'qc:cdc']);
      const first = info[info.indexOf('first-entry') + 1] as unknown[];
      assert.equal(first[0], '5-1');
      assert.equal(info[info.indexOf('length') + 1], 1);
      assert.deepEqual(reports, []);
    } finally {
      conn.destroy();
      await admin.sendCommand(['DEL', 'qc:cdc']);
    }
  });

  it('refuses a reply over its bound, reports it, and answers the next command', async () => {
    // 400 fields of 60 KiB: 24 MB, over a page's 16 MiB.
    await admin.sendCommand([
      'EVAL',
      "for i = 1, 400 do redis.call('HSET', KEYS[1], string.rep('z', 61440) .. i, 'v') end",
      '1',
      'qc:big',
    ]);
    const reports: [QueryCommand, number][] = [];
    const conn = await connect(reports);
    try {
      await assert.rejects(
        conn.sendCommand(['HSCAN', 'qc:big', '0', 'COUNT', '1000']),
        (error: unknown) => error instanceof PeerReplyTooLargeError && !error.overBudget,
      );
      assert.deepEqual(reports, [['hscan', 0]]);
      assert.equal(await conn.sendCommand(['HLEN', 'qc:big']), 400);
    } finally {
      conn.destroy();
      await admin.sendCommand(['DEL', 'qc:big']);
    }
  });

  it('refuses the replies of a pipeline past its shared budget, as over budget, not as misbehaving', async () => {
    // Pages of 32 values of 60 KiB (1.9 MB each), sharing a budget of 2 MiB.
    for (let i = 0; i < 4; i++) {
      await admin.sendCommand([
        'EVAL',
        "for i = 1, 32 do redis.call('HSET', KEYS[1], 'f' .. i, string.rep('w', 61440)) end",
        '1',
        `qc:page:${i}`,
      ]);
    }
    const reports: [QueryCommand, number][] = [];
    const conn = await connect(reports);
    try {
      const replyBudget = { remaining: 2 * MiB };
      const results = await Promise.allSettled(
        [0, 1, 2, 3].map((i) =>
          conn.sendCommand(['HSCAN', `qc:page:${i}`, '0', 'COUNT', '1000'], {
            ...AS_STRINGS,
            replyBudget,
          }),
        ),
      );
      const refused = results.filter(
        (r) =>
          r.status === 'rejected' &&
          r.reason instanceof PeerReplyTooLargeError &&
          r.reason.overBudget,
      );
      assert.ok(results[0]!.status === 'fulfilled', 'the first reply fits');
      assert.ok(refused.length >= 1, `${refused.length} refused`);
      assert.equal(refused.length + results.filter((r) => r.status === 'fulfilled').length, 4);
      assert.deepEqual(reports, []);
      // Sent again on its own, a refused one is answered.
      const page = await conn.sendCommand<[string, string[]]>([
        'HSCAN',
        'qc:page:3',
        '0',
        'COUNT',
        '1000',
      ]);
      assert.equal(page[1].length, 64);
    } finally {
      conn.destroy();
      await admin.sendCommand(['DEL', 'qc:page:0', 'qc:page:1', 'qc:page:2', 'qc:page:3']);
    }
  });

  it('fails a command past its deadline, and answers the next one in step on the same socket', async () => {
    const conn = await connect([], 300);
    try {
      const idOf = async (): Promise<number> => conn.sendCommand<number>(['CLIENT', 'ID']);
      const before = await idOf();
      // A blocking pop of nothing answers (nil) after a second: past the deadline.
      await assert.rejects(
        conn.sendCommand(['BLPOP', 'qc:nothing', '1']),
        /did not return within 300 ms/,
      );
      // Once the late reply has come (and been dropped), commands are answered in step again.
      await eventually(
        async () => (await conn.sendCommand(['PING']).catch(() => undefined)) === 'PONG',
        'answered again',
        10_000,
      );
      assert.equal(await idOf(), before, 'the same connection');
    } finally {
      conn.destroy();
    }
  });
});
