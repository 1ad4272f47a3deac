import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import { FaultProxy } from '../../src/testing/fault-proxy.js';
import { eventually, startRedis, type RedisServer } from '../helpers/redis-server.js';

/** A raw RESP connection: lets a test see exactly which bytes arrive and when. */
interface Raw {
  readonly socket: Socket;
  /** Everything received so far. */
  received(): Buffer;
  /** Resolves when the socket closed (by either side). */
  readonly closed: Promise<'close' | 'error'>;
}

function rawConnect(port: number): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    const closed = new Promise<'close' | 'error'>((r) => {
      socket.once('error', () => r('error'));
      socket.once('close', () => r('close'));
    });
    socket.once('connect', () =>
      resolve({ socket, received: () => Buffer.concat(chunks), closed }),
    );
    socket.once('error', reject);
  });
}

function resp(...args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

describe('FaultProxy against a real redis-server', () => {
  let redis: RedisServer;
  const proxies: FaultProxy[] = [];
  const sockets: Socket[] = [];

  const proxy = async (): Promise<FaultProxy> => {
    const p = await FaultProxy.start({ targetPort: redis.port });
    proxies.push(p);
    return p;
  };
  const raw = async (p: FaultProxy): Promise<Raw> => {
    const r = await rawConnect(p.port);
    sockets.push(r.socket);
    return r;
  };

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await Promise.all(proxies.map((p) => p.close()));
    await redis.stop();
  });

  it('forwards a Redis client transparently', async () => {
    const p = await proxy();
    const client = createClient({ url: p.url });
    client.on('error', () => undefined);
    await client.connect();
    try {
      await client.set('fp:a', 'hello');
      assert.equal(await client.get('fp:a'), 'hello');
      assert.equal(p.stats().accepted, 1);
    } finally {
      client.destroy();
    }
  });

  it("partition 'reset' destroys open connections and refuses new ones until heal", async () => {
    const p = await proxy();
    const open = await raw(p);
    open.socket.write(resp('PING'));
    await eventually(() => open.received().toString() === '+PONG\r\n', 'PONG');
    p.partition('reset');
    assert.equal(await open.closed, 'close');
    const refused: Raw | Error = await raw(p).catch((e: unknown) =>
      e instanceof Error ? e : new Error(String(e)),
    );
    if (!(refused instanceof Error)) {
      // The handshake may complete before the proxy resets it: then the socket dies at once.
      assert.notEqual(await refused.closed, undefined);
      assert.equal(refused.received().length, 0);
    }
    assert.ok(p.stats().refused >= 1);
    assert.equal(p.stats().reset, 1);
    p.heal();
    const after = await raw(p);
    after.socket.write(resp('PING'));
    await eventually(() => after.received().toString() === '+PONG\r\n', 'PONG after heal');
  });

  it("partition 'drop' holds bytes silently and delivers them after heal", async () => {
    const p = await proxy();
    const open = await raw(p);
    p.partition('drop');
    open.socket.write(resp('SET', 'fp:drop', 'v1'));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(open.received().length, 0, 'no reply during the partition');
    const direct = createClient({ url: redis.url });
    await direct.connect();
    try {
      assert.equal(await direct.get('fp:drop'), null, 'the command did not reach Redis');
      p.heal();
      await eventually(() => open.received().toString() === '+OK\r\n', 'reply after heal');
      assert.equal(await direct.get('fp:drop'), 'v1');
    } finally {
      direct.destroy();
    }
  });

  it('adds latency to each chunk in both directions, keeping order', async () => {
    const p = await proxy();
    const open = await raw(p);
    p.setLatency(150);
    const start = Date.now();
    for (let i = 0; i < 5; i++) open.socket.write(resp('ECHO', `m${i}`));
    const expected = [0, 1, 2, 3, 4].map((i) => `$2\r\nm${i}\r\n`).join('');
    await eventually(() => open.received().toString() === expected, 'five echoes in order');
    const elapsed = Date.now() - start;
    assert.ok(elapsed >= 290, `round trip took ${elapsed} ms, expected ≥ 300 ms`);
    p.setLatency(0);
    const t2 = Date.now();
    open.socket.write(resp('PING'));
    await eventually(() => open.received().toString().endsWith('+PONG\r\n'), 'fast PONG');
    assert.ok(Date.now() - t2 < 150);
  });

  it('cuts a connection after N bytes of the next reply', async () => {
    const p = await proxy();
    const value = 'x'.repeat(100_000);
    const direct = createClient({ url: redis.url });
    await direct.connect();
    await direct.set('fp:big', value);
    direct.destroy();
    const open = await raw(p);
    p.cutMidReply(1000);
    open.socket.write(resp('GET', 'fp:big'));
    await open.closed;
    assert.equal(open.received().length, 1000);
    assert.equal(p.stats().cut, 1);
    // Only the next connection is cut: a new one gets the whole reply.
    const next = await raw(p);
    next.socket.write(resp('GET', 'fp:big'));
    const whole = `$${value.length}\r\n${value}\r\n`.length;
    await eventually(() => next.received().length === whole, 'whole reply');
  });

  it('makes a Redis client fail the command it cut, then reconnect and work', async () => {
    const p = await proxy();
    const client = createClient({ url: p.url, socket: { reconnectStrategy: () => 50 } });
    client.on('error', () => undefined);
    await client.connect();
    try {
      await client.set('fp:c', 'y'.repeat(50_000));
      p.cutMidReply(10);
      await assert.rejects(client.get('fp:c'));
      await eventually(async () => {
        try {
          return (await client.get('fp:c'))?.length === 50_000;
        } catch {
          return false;
        }
      }, 'client works again');
    } finally {
      client.destroy();
    }
  });

  it('close() ends every connection and stops listening', async () => {
    const p = await proxy();
    const open = await raw(p);
    await p.close();
    await open.closed;
    await assert.rejects(rawConnect(p.port));
    await p.close();
  });
});
