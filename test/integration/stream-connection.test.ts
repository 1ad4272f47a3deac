/**
 * The hot path's reader connection (StreamConnection, issue 19) against a real redis-server: it
 * logs in with the URL's user and password, selects the URL's db and names itself, as the
 * node-redis reader did; a wrong password fails the connect without showing it; a killed
 * connection fails what was pending and comes back by itself; destroy leaves nothing open; and an
 * entry over the bound comes back with that value's size only, a read over its budget cut short.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import { Dropped, type RespValue } from '../../src/engine/bounded-resp.js';
import { entriesOf, replyBounds } from '../../src/engine/peer-stream.js';
import { StreamConnection } from '../../src/engine/stream-connection.js';
import { eventually, startRedis, type RedisServer } from '../helpers/redis-server.js';

let server: RedisServer;
let admin: ReturnType<typeof createClient>;
const PASSWORD = 'p@ss:w/rd';

before(async () => {
  server = await startRedis();
  admin = createClient({ url: server.url });
  await admin.connect();
  await admin.sendCommand([
    'ACL',
    'SETUSER',
    'reader',
    'on',
    `>${PASSWORD}`,
    '%R~cdc',
    '-@all',
    '+client|setname',
    '+select',
    '+xrange',
    '+xread',
  ]);
});

after(async () => {
  await admin.close();
  await server.stop();
});

function url(db: number, password = PASSWORD): string {
  return `redis://reader:${encodeURIComponent(password)}@127.0.0.1:${server.port}/${db}`;
}

async function clientNames(): Promise<string[]> {
  const list = await admin.sendCommand<string>(['CLIENT', 'LIST']);
  return [...list.matchAll(/name=(\S*)/g)].map((m) => m[1]!).filter((n) => n !== '');
}

describe('StreamConnection', () => {
  it('logs in with the URL, selects its db, names itself, and reads', async () => {
    await admin.sendCommand(['SELECT', '3']);
    await admin.sendCommand(['XADD', 'cdc', '1-1', 'op', 'PUT', 'key', 'in-db-3']);
    await admin.sendCommand(['SELECT', '0']);
    let ready = 0;
    const conn = new StreamConnection({ url: url(3), name: 'sc-login', onReady: () => ready++ });
    await conn.connect();
    assert.equal(conn.isReady, true);
    assert.equal(ready, 1);
    assert.ok((await clientNames()).includes('sc-login'));
    const reply = await conn.send(['XRANGE', 'cdc', '-', '+']);
    assert.equal(entriesOf(reply.value, 1, 1024)[0]?.fields[3]?.toString(), 'in-db-3');
    conn.destroy();
    assert.equal(conn.isOpen, false);
    await eventually(async () => !(await clientNames()).includes('sc-login'), 'closed');
  });

  it('fails to connect with a wrong password, and never shows it', async () => {
    const conn = new StreamConnection({ url: url(0, 'wrong-secret') });
    await assert.rejects(conn.connect(), (error: Error) => {
      assert.match(error.message, /WRONGPASS|invalid/i);
      assert.doesNotMatch(error.message, /wrong-secret/);
      return true;
    });
    assert.equal(conn.isOpen, false);
    assert.equal(conn.isReady, false);
    conn.destroy();
  });

  it('fails what is pending when killed, reconnects by itself, and reads again', async () => {
    const errors: string[] = [];
    let ready = 0;
    const conn = new StreamConnection({
      url: url(0),
      name: 'sc-kill',
      reconnectBaseMs: 10,
      onError: (e) => errors.push(e.message),
      onReady: () => ready++,
    });
    await conn.connect();
    const blocked = conn.send(['XREAD', 'BLOCK', '10000', 'STREAMS', 'cdc', '$']);
    // Handled before the kill: the read may fail before the kill's own reply arrives.
    const lost = assert.rejects(blocked, /lost/);
    await admin.sendCommand(['CLIENT', 'KILL', 'USER', 'reader']);
    await lost;
    await eventually(() => ready === 2 && conn.isReady, 'reconnected');
    assert.ok(errors.length > 0);
    const reply = await conn.send(['XRANGE', 'cdc', '-', '+']);
    assert.ok(Array.isArray(reply.value));
    // Destroyed with a read pending: it rejects at once, and nothing reconnects.
    const pending = conn.send(['XREAD', 'BLOCK', '10000', 'STREAMS', 'cdc', '$']);
    conn.destroy();
    await assert.rejects(pending, /closed/);
    await assert.rejects(conn.send(['XRANGE', 'cdc', '-', '+']), /not ready/);
    await eventually(async () => !(await clientNames()).includes('sc-kill'), 'nothing left open');
  });

  it('skips a value over the bound and cuts a read over its budget, on real replies', async () => {
    await admin.sendCommand(['DEL', 'cdc']);
    const big = Buffer.alloc(5 * 1024 * 1024, 9);
    const small = Buffer.alloc(300 * 1024, 1);
    await admin.sendCommand(['XADD', 'cdc', '1-0', 'op', 'PUT', 'key', 'big', 'data', big]);
    for (let i = 1; i <= 5; i++) {
      await admin.sendCommand([
        'XADD',
        'cdc',
        `${i + 1}-0`,
        'op',
        'PUT',
        'key',
        `s${i}`,
        'data',
        small,
      ]);
    }
    const conn = new StreamConnection({ url: url(0) });
    await conn.connect();
    try {
      const bounds = replyBounds({ maxItemBytes: 1024 * 1024, maxBatchBytes: 512 * 1024 }, 1);
      const reply = await conn.send(['XRANGE', 'cdc', '-', '+'], bounds);
      const entries = entriesOf(reply.value, 1, 1024 * 1024);
      // The big one by its size, then small ones until 512 KiB are held: two of 300 KiB.
      assert.deepEqual(
        entries.map((e) => e.id),
        ['1-0', '2-0', '3-0'],
      );
      assert.equal(reply.cut, true);
      assert.ok(reply.keptBytes < 1024 * 1024, `${reply.keptBytes} bytes kept`);
      assert.match(entries[0]!.tooLarge ?? '', /data is 5242880 bytes/);
      assert.deepEqual(
        entries[0]!.fields.map((f) => f.toString()),
        ['op', 'PUT', 'key', 'big', 'data_bytes', '5242880'],
      );
      assert.equal(entries[1]!.tooLarge, undefined);
      assert.equal(entries[1]!.fields[5]!.length, small.length);
      // XREAD (depth 3), the same bounds.
      const xread = await conn.send(
        ['XREAD', 'COUNT', '10', 'STREAMS', 'cdc', '0'],
        replyBounds({ maxItemBytes: 1024 * 1024, maxBatchBytes: 512 * 1024 }, 3),
      );
      assert.deepEqual(
        entriesOf(xread.value, 3, 1024 * 1024).map((e) => e.id),
        ['1-0', '2-0', '3-0'],
      );
      const raw = ((xread.value as RespValue[])[0] as RespValue[])[1] as RespValue[][];
      assert.ok((raw[0]![1] as RespValue[])[5] instanceof Dropped);
    } finally {
      conn.destroy();
    }
  });
});
