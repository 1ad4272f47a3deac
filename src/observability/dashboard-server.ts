/**
 * A dashboard of its own on loopback, for nodes that run without an admin server (the demo's
 * three nodes on one page). Read-only: `GET /` and `GET /dashboard.json`, nothing else.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { ReplicationError } from '../errors.js';
import { DashboardFeed, serveDashboard, type DashboardSource } from './dashboard.js';

/** Options of {@link startDashboardServer}. */
export interface DashboardServerOptions {
  /** The nodes, shown side by side in this order. */
  readonly sources: readonly DashboardSource[];
  /** @default 0 (a free port) */
  readonly port?: number;
  /** Sampling period. @default 1000 */
  readonly intervalMs?: number;
}

/** A running dashboard server. */
export interface DashboardServer {
  /** `http://127.0.0.1:<port>/`. */
  readonly url: string;
  /** Stops sampling and listening, cutting open connections. Idempotent. */
  close(): Promise<void>;
}

/**
 * Serves the dashboard of `sources` on 127.0.0.1 (loopback only: it asks for no token).
 * @throws ReplicationError code `HTTP_LISTEN` when the port cannot be bound.
 */
export async function startDashboardServer(
  options: DashboardServerOptions,
): Promise<DashboardServer> {
  const feeds = options.sources.map(
    (source) =>
      new DashboardFeed(source, {
        ...(options.intervalMs !== undefined && { intervalMs: options.intervalMs }),
      }),
  );
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://dashboard.invalid');
    const answer = async (): Promise<void> => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (!(await serveDashboard(res, url, feeds))) {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      }
    };
    answer().catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5_000;
  const port = options.port ?? 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(
        new ReplicationError('HTTP_LISTEN', `cannot listen on 127.0.0.1:${port}: ${err.message}`, {
          cause: err,
        }),
      ),
    );
    server.listen(port, '127.0.0.1', () => resolve());
  });
  for (const feed of feeds) feed.start();
  const address = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${address.port}/`,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        for (const feed of feeds) feed.stop();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
