/**
 * PeerLink's connections against a real redis-server: nothing of a closed link survives, even a
 * reader replaced (to cut a blocked XREAD short) an instant before the close.
 */
import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import { resolveConfig } from '../../src/config/resolve.js';
import { PeerLink } from '../../src/engine/peer-link.js';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { eventually, startRedis, type RedisServer } from '../helpers/redis-server.js';

let server: RedisServer;

before(async () => {
  server = await startRedis();
});

after(async () => {
  await server.stop();
});

/** The names of the connections open on the server, ours excluded. */
async function connectionNames(): Promise<string[]> {
  const client = createClient({ url: server.url });
  await client.connect();
  try {
    const list = await client.sendCommand<string>(['CLIENT', 'LIST']);
    return list
      .split('\n')
      .filter((line) => !line.includes(' cmd=client|list'))
      .map((line) => /name=(\S*)/.exec(line)?.[1] ?? '')
      .filter((name) => name !== '');
  } finally {
    client.destroy();
  }
}

function newLink(): PeerLink {
  const config = resolveConfig({
    replication: {
      local_node_id: 'node-b',
      peers: [{ node_id: 'node-a', redis_url: server.url }],
      cursor: { sqlite_path: ':memory:' },
    },
    local: { redis_url: `${server.url}/1` },
  });
  return new PeerLink(
    config.replication.peers[0]!,
    createMetrics(),
    createLogger({ level: 'silent' }),
    { peerHealth: () => config.replication.peerHealth, slo: () => config.replication.slo },
    { onUp: () => undefined, onDown: () => undefined },
  );
}

describe('PeerLink', () => {
  it('leaves no connection behind when closed right after replacing its reader', async () => {
    for (let round = 0; round < 20; round++) {
      const link = newLink();
      link.start();
      await eventually(() => link.connected, 'link up');
      link.resetReader(); // a new reader starts connecting...
      await link.close(); // ...and the link closes before it is up
    }
    await eventually(
      async () => !(await connectionNames()).some((n) => n.startsWith('replication-engine-')),
      'no link connection left open',
    );
  });
});
