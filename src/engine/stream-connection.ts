/**
 * The connection a peer's CDC stream is read on (the PeerLink's reader, issue 19): a socket of its
 * own, parsed by {@link BoundedRespParser}, so a hostile peer's huge entries are skipped as they
 * stream in instead of being received whole (node-redis gathers every reply whole before handing
 * it out). It does what the node-redis reader did for the hot path and nothing more: TCP or TLS
 * (`rediss://`, the peer's `tls` options), `AUTH` with the URL's user and password, `SELECT` of
 * the URL's db, `CLIENT SETNAME`, a connect timeout, replies in order (RESP2), commands refused at
 * once while not ready (no offline queue), and reconnecting forever with the same jittered backoff
 * once it has connected. Read deadlines, aborts and the circuit breaker stay with its callers
 * (RedisPeerStream, PeerLink.run).
 */
import net from 'node:net';
import tls from 'node:tls';
import type { ResolvedTls } from '../config/types.js';
import {
  BoundedRespParser,
  RespError,
  RespProtocolError,
  UNBOUNDED,
  type ParsedReply,
  type ReplyBounds,
} from './bounded-resp.js';
import { reconnectDelay } from '../redis/connect.js';

/** Options for {@link StreamConnection}. */
export interface StreamConnectionOptions {
  /** `redis[s]://[user:password@]host[:port][/db]`. */
  readonly url: string;
  readonly tls?: ResolvedTls | undefined;
  /** Shown as CLIENT SETNAME. */
  readonly name?: string;
  /** @default 5000 (the socket and the handshake together) */
  readonly connectTimeoutMs?: number;
  /** @default 100 */
  readonly reconnectBaseMs?: number;
  /** @default 5000 */
  readonly reconnectMaxMs?: number;
  readonly onError?: (error: Error) => void;
  readonly onReady?: () => void;
  readonly onEnd?: () => void;
}

/** The read buffer of a plain TCP connection (net's `onread`). */
const READ_BUFFER_BYTES = 64 * 1024;

interface Pending {
  /** The reply's bounds, or what gives them when its first byte arrives. */
  readonly bounds: ReplyBounds | (() => ReplyBounds);
  readonly resolve: (reply: ParsedReply) => void;
  readonly reject: (error: Error) => void;
}

/** Where a URL points and how to log in. Never logged (it holds the password). */
interface Target {
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly db: number | undefined;
}

function parseTarget(url: string): Target {
  const u = new URL(url);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new TypeError(`not a Redis URL (${u.protocol})`);
  }
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : undefined;
  if (db !== undefined && !Number.isInteger(db)) throw new TypeError('invalid db in the URL path');
  return {
    host: u.hostname.replace(/^\[([0-9a-f:]+)\]$/i, '$1'),
    port: u.port === '' ? 6379 : Number(u.port),
    tls: u.protocol === 'rediss:',
    username: u.username === '' ? undefined : decodeURIComponent(u.username),
    password: u.password === '' ? undefined : decodeURIComponent(u.password),
    db,
  };
}

/** RESP2 encoding of a command. */
function encode(args: readonly (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = typeof arg === 'string' ? Buffer.from(arg) : arg;
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** A reconnecting RESP2 connection whose replies are parsed within bounds. */
export class StreamConnection {
  readonly #options: StreamConnectionOptions;
  readonly #target: Target;
  #socket: net.Socket | undefined;
  #parser: BoundedRespParser;
  /** Commands sent and not answered, oldest first (replies come in order). */
  #pending: Pending[] = [];
  #open = false;
  #ready = false;
  #destroyed = false;
  #retries = 0;
  #reconnectTimer: NodeJS.Timeout | undefined;

  constructor(options: StreamConnectionOptions) {
    this.#options = options;
    this.#target = parseTarget(options.url);
    this.#parser = this.#newParser();
  }

  /** Connecting, connected or reconnecting (not destroyed, and connect was called). */
  get isOpen(): boolean {
    return this.#open;
  }

  /** Connected and logged in: commands are accepted. */
  get isReady(): boolean {
    return this.#ready;
  }

  /**
   * Connects and logs in; resolves once ready. A failure rejects (the caller retries); once it has
   * been ready, a lost connection is reconnected in the background.
   */
  async connect(): Promise<void> {
    if (this.#destroyed) throw new Error('the connection was destroyed');
    if (this.#open) throw new Error('the connection is already open');
    this.#open = true;
    try {
      await this.#establish();
    } catch (error) {
      this.#open = false;
      throw error;
    }
  }

  /**
   * Sends `args` and parses its reply within `bounds` (a function is asked when the reply's first
   * byte arrives, for bounds that depend on the replies before it); rejects at once when not ready, with the
   * error reply's text for an error reply, and when the connection is lost or destroyed first.
   * With `timeoutMs`, a reply that has not come by then rejects; the socket stays (as node-redis
   * did), and the reply, when it comes, is read and dropped in its turn, so the replies after it
   * stay in step. A server busy for longer (a long script) then answers the next command at once,
   * instead of a replaced socket reconnecting with backoff; a dead socket is found by TCP
   * keepalive, or replaced by the caller (PeerLink.resetReader).
   */
  send(
    args: readonly (string | Buffer)[],
    bounds: ReplyBounds | (() => ReplyBounds) = UNBOUNDED,
    timeoutMs?: number,
  ): Promise<ParsedReply> {
    const socket = this.#socket;
    if (!this.#ready || socket === undefined) {
      return Promise.reject(new Error('the connection is not ready'));
    }
    const reply = this.#write(socket, args, bounds);
    if (timeoutMs === undefined) return reply;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`${String(args[0])} did not return within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    return Promise.race([reply, deadline]).finally(() => clearTimeout(timer));
  }

  /** Closes at once: pending commands reject, nothing reconnects. Idempotent, never throws. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    const wasOpen = this.#open;
    this.#open = false;
    this.#ready = false;
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    this.#drop(new Error('the connection was closed'));
    if (wasOpen) this.#options.onEnd?.();
  }

  #newParser(): BoundedRespParser {
    return new BoundedRespParser(
      (reply) => this.#reply(reply),
      () => {
        const bounds = this.#pending[0]?.bounds ?? UNBOUNDED;
        return typeof bounds === 'function' ? bounds() : bounds;
      },
    );
  }

  #reply(reply: ParsedReply): void {
    const pending = this.#pending.shift();
    if (pending === undefined) throw new RespProtocolError('a reply that no command asked for');
    if (reply.value instanceof RespError) pending.reject(reply.value);
    else pending.resolve(reply);
  }

  #write(
    socket: net.Socket,
    args: readonly (string | Buffer)[],
    bounds: ReplyBounds | (() => ReplyBounds),
  ): Promise<ParsedReply> {
    return new Promise<ParsedReply>((resolve, reject) => {
      this.#pending.push({ bounds, resolve, reject });
      socket.write(encode(args));
    });
  }

  /** Opens a socket and logs in, within the connect timeout. */
  async #establish(): Promise<void> {
    const t = this.#target;
    const o = this.#options;
    const timeoutMs = o.connectTimeoutMs ?? 5000;
    const socket = t.tls
      ? tls.connect({
          host: t.host,
          port: t.port,
          rejectUnauthorized: o.tls?.rejectUnauthorized ?? true,
          ...(o.tls?.ca !== undefined ? { ca: o.tls.ca } : {}),
          ...(o.tls?.cert !== undefined ? { cert: o.tls.cert } : {}),
          ...(o.tls?.key !== undefined ? { key: o.tls.key } : {}),
          ...(o.tls?.servername !== undefined
            ? { servername: o.tls.servername }
            : net.isIP(t.host) === 0
              ? { servername: t.host }
              : {}),
        })
      : net.connect({
          host: t.host,
          port: t.port,
          // One read buffer for the connection's life: what the parser skips is never allocated
          // (TLS has no such option: there each read is a buffer of its own, garbage once parsed).
          onread: {
            buffer: Buffer.allocUnsafeSlow(READ_BUFFER_BYTES),
            callback: (bytes: number, buffer: Uint8Array): boolean => {
              this.#feed(socket, Buffer.from(buffer.buffer, buffer.byteOffset, bytes), true);
              return true;
            },
          },
        });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 5000);
    this.#socket = socket;
    this.#parser = this.#newParser();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('connection timeout')), timeoutMs);
    });
    deadline.catch(() => undefined);
    try {
      const opened = new Promise<void>((resolve, reject) => {
        socket.once(t.tls ? 'secureConnect' : 'connect', () => resolve());
        socket.once('error', reject);
        socket.once('close', () => reject(new Error('connection closed while connecting')));
      });
      await Promise.race([opened, deadline]);
      this.#attach(socket);
      const login = async (): Promise<void> => {
        if (t.password !== undefined) {
          await this.#write(
            socket,
            t.username !== undefined ? ['AUTH', t.username, t.password] : ['AUTH', t.password],
            UNBOUNDED,
          );
        }
        if (t.db !== undefined && t.db !== 0) {
          await this.#write(socket, ['SELECT', String(t.db)], UNBOUNDED);
        }
        if (o.name !== undefined) {
          await this.#write(socket, ['CLIENT', 'SETNAME', o.name], UNBOUNDED);
        }
      };
      await Promise.race([
        login(),
        deadline,
        new Promise<never>((_, reject) => {
          socket.once('close', () => reject(new Error('connection closed while logging in')));
        }),
      ]);
    } catch (error) {
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      socket.destroy();
      if (this.#socket === socket) this.#socket = undefined;
      this.#drop(error instanceof Error ? error : new Error(String(error)));
      throw error;
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
    if (this.#destroyed || this.#socket !== socket) {
      socket.destroy();
      throw new Error('the connection was closed while connecting');
    }
    this.#retries = 0;
    this.#ready = true;
    o.onReady?.();
  }

  /** Feeds the socket to the parser; a lost socket fails what is pending and reconnects. */
  #attach(socket: net.Socket): void {
    socket.removeAllListeners('error');
    socket.on('data', (chunk: Buffer) => this.#feed(socket, chunk, false));
    socket.on('error', (error: Error) => {
      if (this.#socket === socket && !this.#destroyed) this.#options.onError?.(error);
    });
    socket.on('close', () => this.#lost(socket));
  }

  #feed(socket: net.Socket, chunk: Buffer, reused: boolean): void {
    if (this.#socket !== socket) return;
    try {
      this.#parser.write(chunk, reused);
    } catch (error) {
      // Out of step with the server (or a reply nobody asked for): nothing after it can be
      // trusted, so the socket goes.
      socket.destroy(error instanceof Error ? error : new Error(String(error)));
    }
  }

  #lost(socket: net.Socket): void {
    if (this.#socket !== socket) return;
    this.#socket = undefined;
    const wasReady = this.#ready;
    this.#ready = false;
    this.#drop(new Error('the connection was lost'));
    if (this.#destroyed || !wasReady) return;
    this.#options.onError?.(new Error('the connection was lost'));
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#destroyed) return;
    const delay = reconnectDelay(
      this.#retries,
      this.#options.reconnectBaseMs ?? 100,
      this.#options.reconnectMaxMs ?? 5000,
    );
    this.#retries += 1;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#establish().catch((error: unknown) => {
        if (this.#destroyed) return;
        this.#options.onError?.(error instanceof Error ? error : new Error(String(error)));
        this.#scheduleReconnect();
      });
    }, delay);
  }

  /** Rejects every pending command and ends the socket. */
  #drop(error: Error): void {
    const pending = this.#pending;
    this.#pending = [];
    this.#parser.reset();
    for (const p of pending) p.reject(error);
    const socket = this.#socket;
    if (socket !== undefined && this.#destroyed) {
      this.#socket = undefined;
      socket.destroy();
    }
  }
}
