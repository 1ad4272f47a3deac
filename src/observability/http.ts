/**
 * The admin HTTP server (node:http only): `/metrics`, `/health`, `/ready`, per-peer control and
 * the live dashboard (`/`, `/dashboard.json`).
 *
 * Admin POSTs need `Authorization: Bearer <http.token>` whenever a token is configured, and are
 * refused outright when the server listens on a non-loopback address without one. The dashboard
 * is open on loopback; elsewhere it needs the token too (Bearer, or Basic with the token as the
 * password, so a browser can ask for it) and is refused without one.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

import { ReplicationError } from '../errors.js';
import { DASHBOARD_DATA_PATH, DashboardFeed, serveDashboard } from './dashboard.js';
import type { EngineHealth } from './health.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { redactSecrets } from './redact.js';

/** The per-peer control surface the engine implements; results are JSON-serialisable. */
export interface AdminApi {
  /** Stops tailing and repairing the peer until resumed. @throws code `UNKNOWN_PEER` */
  pause(peerId: string): Promise<unknown>;
  /** Undoes {@link AdminApi.pause}. @throws code `UNKNOWN_PEER` */
  resume(peerId: string): Promise<unknown>;
  /** Resets the peer's cursor and starts a repair. @throws code `UNKNOWN_PEER` */
  resync(peerId: string): Promise<unknown>;
  /** Runs a repair cycle now; with `dryRun`, lists what it would change. @throws code `UNKNOWN_PEER` */
  repair(peerId: string, options: { readonly dryRun: boolean }): Promise<unknown>;
}

/** Options of {@link startAdminServer}. */
export interface AdminServerOptions {
  /** @default '127.0.0.1' */
  readonly host?: string;
  /** 0 picks a free port (see {@link AdminServer.address}). */
  readonly port: number;
  /** Bearer token for admin POSTs; required for them when `host` is not loopback. */
  readonly token?: string | undefined;
  readonly metrics: Metrics;
  readonly health: () => EngineHealth | Promise<EngineHealth>;
  readonly admin: AdminApi;
  readonly logger: Logger;
  /** How long `close()` lets in-flight requests finish before cutting them. @default 2000 */
  readonly closeTimeoutMs?: number;
  /**
   * Open connections at most. At the cap a new connection closes the oldest idle one (no request
   * in progress), so a flood of idle sockets cannot exhaust file descriptors nor lock probes
   * out; with every connection busy, the new one is refused. @default 128
   */
  readonly maxConnections?: number;
  /** A connection with no request in progress is closed after this long. @default 10_000 */
  readonly idleTimeoutMs?: number;
}

/** A running admin server. */
export interface AdminServer {
  /** The address actually bound (the real port when 0 was asked for). */
  readonly address: { readonly host: string; readonly port: number };
  /** `http://host:port`. */
  readonly url: string;
  /** Stops listening, closes idle keep-alive sockets and, after the timeout, busy ones. Idempotent. */
  close(): Promise<void>;
}

/** Default of {@link AdminServerOptions.maxConnections}. */
export const MAX_CONNECTIONS = 128;

/** Largest request body accepted; the API takes none. */
export const MAX_BODY_BYTES = 64 * 1024;

const ACTIONS = new Set(['pause', 'resume', 'resync', 'repair']);

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

/** Whether `host` (a bind address or name) only accepts connections from this machine. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return (
    h === 'localhost' ||
    h === '::1' ||
    /^127(\.\d{1,3}){3}$/.test(h) ||
    /^::ffff:127(\.\d{1,3}){3}$/.test(h)
  );
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant-time comparison (over digests, so lengths never leak either). */
function tokenMatches(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  // Every string is passed through redactSecrets: a credential never leaves in a body.
  const text = JSON.stringify(body ?? null, (_key, value: unknown) =>
    typeof value === 'string' ? redactSecrets(value) : value,
  );
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(text);
}

/** Reads and discards the body, refusing more than {@link MAX_BODY_BYTES}. */
function drainBody(req: IncomingMessage): Promise<void> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) {
    return Promise.reject(new HttpError(413, 'BODY_TOO_LARGE', 'request body too large'));
  }
  return new Promise((resolve, reject) => {
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        req.pause();
        reject(new HttpError(413, 'BODY_TOO_LARGE', 'request body too large'));
      }
    });
    req.on('end', () => resolve());
    req.on('error', reject);
  });
}

function parseDryRun(value: string | null): boolean {
  if (value === null) return false;
  const v = value.toLowerCase();
  if (v === '' || v === '1' || v === 'true' || v === 'yes') return true;
  if (v === '0' || v === 'false' || v === 'no') return false;
  throw new HttpError(400, 'BAD_REQUEST', 'dry_run must be 1, true, 0 or false');
}

/**
 * Starts the admin server on `host:port`.
 * @throws ReplicationError code `HTTP_LISTEN` when the address cannot be bound.
 */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const host = options.host ?? '127.0.0.1';
  const token = options.token === '' ? undefined : options.token;
  const log = options.logger.child({ component: 'http' });
  const closeTimeoutMs = options.closeTimeoutMs ?? 2000;
  let loopback = isLoopback(host);
  const dashboard = new DashboardFeed({ health: options.health, metrics: options.metrics });

  /** The dashboard: open on loopback; elsewhere the token, as Bearer or as a Basic password. */
  function authorizeDashboard(req: IncomingMessage): void {
    if (loopback) return;
    if (token === undefined) {
      throw new HttpError(
        403,
        'DASHBOARD_DISABLED',
        'the dashboard is disabled: the server listens on a non-loopback address; set http.token to enable it',
      );
    }
    const header = req.headers.authorization ?? '';
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
    const basic = /^Basic\s+(\S+)\s*$/i.exec(header)?.[1];
    const decoded = basic === undefined ? '' : Buffer.from(basic, 'base64').toString('utf8');
    const given = bearer ?? (decoded.includes(':') ? decoded.slice(decoded.indexOf(':') + 1) : '');
    if (given === '' || !tokenMatches(given, token)) {
      throw new HttpError(401, 'UNAUTHORIZED', 'missing or invalid token', {
        'www-authenticate': 'Basic realm="replication-engine", charset="UTF-8"',
      });
    }
  }

  function authorize(req: IncomingMessage): void {
    if (token === undefined) {
      if (loopback) return;
      throw new HttpError(
        403,
        'ADMIN_DISABLED',
        'admin endpoints are disabled: the server listens on a non-loopback address; set http.token to enable them',
      );
    }
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match?.[1] || !tokenMatches(match[1], token)) {
      throw new HttpError(401, 'UNAUTHORIZED', 'missing or invalid bearer token', {
        'www-authenticate': 'Bearer realm="replication-engine"',
      });
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    await drainBody(req);
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://admin.invalid');
    const path = url.pathname;
    const isGet = method === 'GET' || method === 'HEAD';

    if (path === '/' || path === DASHBOARD_DATA_PATH) {
      if (!isGet) {
        throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${path} accepts GET`, {
          allow: 'GET, HEAD',
        });
      }
      authorizeDashboard(req);
      await serveDashboard(res, url, [dashboard]);
      return;
    }

    if (path === '/metrics' || path === '/health' || path === '/ready') {
      if (!isGet) {
        throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${path} accepts GET`, {
          allow: 'GET, HEAD',
        });
      }
      if (path === '/metrics') {
        const text = await options.metrics.registry.metrics();
        res.writeHead(200, {
          'content-type': options.metrics.registry.contentType,
          'cache-control': 'no-store',
        });
        res.end(text);
        return;
      }
      const health = await options.health();
      if (path === '/health') {
        sendJson(res, health.healthy ? 200 : 503, health);
      } else {
        sendJson(res, health.ready ? 200 : 503, { ready: health.ready, state: health.state });
      }
      return;
    }

    const parts = path.split('/');
    if (parts.length === 4 && parts[0] === '' && parts[1] === 'peers' && ACTIONS.has(parts[3]!)) {
      if (method !== 'POST') {
        throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${path} accepts POST`, { allow: 'POST' });
      }
      let peerId: string;
      try {
        peerId = decodeURIComponent(parts[2]!);
      } catch {
        throw new HttpError(400, 'BAD_REQUEST', 'malformed peer id');
      }
      if (peerId === '') throw new HttpError(404, 'NOT_FOUND', 'no such route');
      authorize(req);
      const action = parts[3]!;
      const admin = options.admin;
      let result: unknown;
      if (action === 'repair') {
        const dryRun = parseDryRun(url.searchParams.get('dry_run'));
        log.info({ peer_id: peerId, action, dry_run: dryRun }, 'admin action');
        result = await admin.repair(peerId, { dryRun });
      } else {
        log.info({ peer_id: peerId, action }, 'admin action');
        result =
          action === 'pause'
            ? await admin.pause(peerId)
            : action === 'resume'
              ? await admin.resume(peerId)
              : await admin.resync(peerId);
      }
      sendJson(res, 200, result ?? { ok: true });
      return;
    }
    throw new HttpError(404, 'NOT_FOUND', 'no such route');
  }

  function fail(res: ServerResponse, err: unknown, req: IncomingMessage): void {
    let status = 500;
    let code = 'INTERNAL';
    let message = 'internal error';
    let headers: Readonly<Record<string, string>> = {};
    if (err instanceof HttpError) {
      ({ status, code, message, headers } = err);
    } else if (isCoded(err) && err.code === 'UNKNOWN_PEER') {
      status = 404;
      code = err.code;
      message = err.message;
    } else if (isCoded(err) && err.code === 'ILLEGAL_STATE') {
      status = 409;
      code = err.code;
      message = err.message;
    } else {
      log.error({ err, method: req.method, path: req.url }, 'admin request failed');
      if (err instanceof ReplicationError) code = err.code;
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendJson(res, status, { error: redactSecrets(message), code }, headers);
  }

  const maxConnections = options.maxConnections ?? MAX_CONNECTIONS;
  const idleTimeoutMs = options.idleTimeoutMs ?? 10_000;
  // Insertion order: the first idle socket found is the oldest.
  const sockets = new Set<Socket>();
  const busy = new Set<Socket>();
  let closing: Promise<void> | undefined;
  const server: Server = createServer({ connectionsCheckingInterval: 1000 }, (req, res) => {
    const socket = req.socket;
    busy.add(socket);
    res.once('close', () => busy.delete(socket));
    if (closing !== undefined) res.setHeader('connection', 'close');
    log.debug({ method: req.method, path: req.url }, 'admin request');
    route(req, res).catch((err: unknown) => {
      fail(res, err, req);
      // A body we refused is still arriving: do not keep reading it on this socket.
      if (err instanceof HttpError && err.status === 413) res.on('finish', () => req.destroy());
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  // node:http destroys a timed-out socket unless someone listens: the idle check below decides.
  server.on('timeout', () => undefined);
  let refused = 0;
  server.on('connection', (socket: Socket) => {
    if (sockets.size >= maxConnections) {
      const idle = [...sockets].find((s) => !busy.has(s));
      if (idle === undefined) {
        refused += 1;
        if (refused === 1 || refused % 1000 === 0) {
          log.warn(
            { max_connections: maxConnections, refused },
            'admin server at its connection cap: connection refused',
          );
        }
        socket.destroy();
        return;
      }
      idle.destroy();
      sockets.delete(idle);
    }
    sockets.add(socket);
    // Idle (no request in progress) for too long: closed. A long request (a repair) is not idle.
    socket.setTimeout(idleTimeoutMs, () => {
      if (!busy.has(socket)) socket.destroy();
    });
    socket.on('close', () => {
      sockets.delete(socket);
      busy.delete(socket);
    });
  });
  server.on('clientError', (_err, socket: Socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(
        new ReplicationError(
          'HTTP_LISTEN',
          `cannot listen on ${host}:${options.port}: ${err.message}`,
          {
            cause: err,
          },
        ),
      );
    };
    server.once('error', onError);
    server.listen(options.port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err }, 'admin server error'));
  dashboard.start();

  const info = server.address() as AddressInfo;
  // Decide on what was actually bound ('localhost' may resolve to either family).
  loopback = isLoopback(info.address);
  const address = { host: info.address, port: info.port };
  const url = `http://${info.family === 'IPv6' ? `[${info.address}]` : info.address}:${info.port}`;
  log.info(
    { host: address.host, port: address.port, admin_auth: token !== undefined || !loopback },
    'admin server listening',
  );

  function close(): Promise<void> {
    closing ??= new Promise<void>((resolve) => {
      dashboard.stop();
      const timer = setTimeout(() => {
        for (const socket of sockets) socket.destroy();
      }, closeTimeoutMs);
      timer.unref();
      server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      server.closeIdleConnections();
    });
    return closing;
  }

  return { address, url, close };
}

function isCoded(err: unknown): err is { code: string; message: string } {
  return (
    typeof err === 'object' &&
    err !== null &&
    typeof (err as { code?: unknown }).code === 'string' &&
    typeof (err as { message?: unknown }).message === 'string'
  );
}
