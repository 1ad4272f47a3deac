/**
 * A TCP fault proxy on `node:net` for fault-injection tests: sits on one link (an engine to one
 * peer's Redis) and can partition it, heal it, slow it down, or cut connections in the middle of a
 * reply. Loopback only; it forwards bytes and never looks inside them.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

/** How a partition treats the connections that are already open. */
export type PartitionMode =
  /** Stop forwarding silently, in both directions: the bytes wait, as on a cut cable, until heal. */
  | 'drop'
  /** Destroy both sockets at once (the client sees ECONNRESET or a close). */
  | 'reset';

/** Where the proxy forwards to. */
export interface FaultProxyOptions {
  readonly targetPort: number;
  /** @default '127.0.0.1' */
  readonly targetHost?: string;
  /** Port to listen on (e.g. to come back on the same one); a free port by default. */
  readonly listenPort?: number;
}

/** What the proxy has done so far. */
export interface FaultProxyStats {
  /** Connections accepted and forwarded. */
  readonly accepted: number;
  /** Connections refused (reset at once) during a partition. */
  readonly refused: number;
  /** Connections destroyed by a `reset` partition. */
  readonly reset: number;
  /** Connections cut in the middle of a reply. */
  readonly cut: number;
  /** Connections open now. */
  readonly open: number;
}

/** One direction of one connection: an ordered queue that applies the latency. */
class Pipe {
  private readonly queue: { due: number; chunk: Buffer }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private lastDue = 0;

  constructor(
    private readonly dst: Socket,
    private readonly latencyMs: () => number,
  ) {}

  push(chunk: Buffer): void {
    const latency = this.latencyMs();
    if (latency <= 0 && this.queue.length === 0) {
      this.dst.write(chunk);
      return;
    }
    // Never overtake an earlier chunk, even when the latency was lowered in between.
    const due = Math.max(Date.now() + latency, this.lastDue);
    this.lastDue = due;
    this.queue.push({ due, chunk });
    this.schedule();
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    const head = this.queue[0];
    if (head === undefined) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        const now = Date.now();
        while (this.queue[0] !== undefined && this.queue[0].due <= now) {
          const { chunk } = this.queue.shift()!;
          if (!this.dst.destroyed) this.dst.write(chunk);
        }
        this.schedule();
      },
      Math.max(0, head.due - Date.now()),
    );
  }

  close(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
  }
}

interface Connection {
  readonly client: Socket;
  readonly server: Socket;
  readonly up: Pipe;
  readonly down: Pipe;
  /** Bytes left before this connection is cut, when armed. */
  cutAfter: number | undefined;
  cutting: boolean;
}

/**
 * A TCP proxy with faults. Create it with {@link FaultProxy.start}; point the client at
 * {@link FaultProxy.url}.
 */
export class FaultProxy {
  readonly #server: Server;
  readonly #targetHost: string;
  readonly #targetPort: number;
  readonly #connections = new Set<Connection>();
  #partition: PartitionMode | undefined;
  #latencyMs = 0;
  #cutsArmed: { bytes: number; left: number } | undefined;
  #closed: Promise<void> | undefined;
  #stats = { accepted: 0, refused: 0, reset: 0, cut: 0 };
  /** The port the proxy listens on (127.0.0.1). */
  readonly port: number;

  private constructor(server: Server, port: number, options: FaultProxyOptions) {
    this.#server = server;
    this.port = port;
    this.#targetHost = options.targetHost ?? '127.0.0.1';
    this.#targetPort = options.targetPort;
    server.on('connection', (socket) => this.#accept(socket));
  }

  /** Starts a proxy listening on 127.0.0.1; resolves once it accepts connections. */
  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const server = createServer({ noDelay: true });
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.listenPort ?? 0, '127.0.0.1', () => {
        server.off('error', reject);
        const address = server.address();
        if (address === null || typeof address === 'string') reject(new Error('no port'));
        else resolve(address.port);
      });
    });
    return new FaultProxy(server, port, options);
  }

  /** `redis://127.0.0.1:<port>`: the URL a Redis client uses to go through the proxy. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** The partition in force, if any. */
  get partitioned(): PartitionMode | undefined {
    return this.#partition;
  }

  /** Counters of what the proxy has done. */
  stats(): FaultProxyStats {
    return { ...this.#stats, open: this.#connections.size };
  }

  /**
   * Partitions the link: new connections are reset at once; open ones are held silently
   * (`drop`) or destroyed (`reset`).
   */
  partition(mode: PartitionMode): void {
    this.#partition = mode;
    for (const conn of [...this.#connections]) {
      if (mode === 'reset') {
        this.#stats.reset++;
        this.#destroy(conn);
      } else {
        conn.client.pause();
        conn.server.pause();
      }
    }
  }

  /** Ends a partition: held connections forward again (the bytes they held arrive late). */
  heal(): void {
    this.#partition = undefined;
    for (const conn of this.#connections) {
      conn.client.resume();
      conn.server.resume();
    }
  }

  /** Delays every chunk by `ms`, in both directions, keeping their order; 0 removes it. */
  setLatency(ms: number): void {
    this.#latencyMs = Math.max(0, ms);
  }

  /** The latency in force, in ms. */
  get latencyMs(): number {
    return this.#latencyMs;
  }

  /**
   * Arms a cut: the next `connections` connections that receive a reply from the server have it
   * cut after `bytes` bytes (those are forwarded, then both sockets are destroyed).
   */
  cutMidReply(bytes: number, connections = 1): void {
    this.#cutsArmed = { bytes: Math.max(0, bytes), left: connections };
  }

  /** Heals, removes latency and disarms cuts. */
  reset(): void {
    this.heal();
    this.setLatency(0);
    this.#cutsArmed = undefined;
  }

  /** Destroys every open connection (as a restart of the link would). */
  dropConnections(): void {
    for (const conn of [...this.#connections]) this.#destroy(conn);
  }

  /** Stops listening and destroys every connection. Safe to call twice. */
  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.dropConnections();
    });
    return this.#closed;
  }

  #accept(client: Socket): void {
    if (this.#partition !== undefined || this.#closed !== undefined) {
      this.#stats.refused++;
      client.on('error', () => undefined);
      client.resetAndDestroy();
      return;
    }
    this.#stats.accepted++;
    client.setNoDelay(true);
    const server = connect({ host: this.#targetHost, port: this.#targetPort, noDelay: true });
    const conn: Connection = {
      client,
      server,
      up: new Pipe(server, () => this.#latencyMs),
      down: new Pipe(client, () => this.#latencyMs),
      cutAfter: undefined,
      cutting: false,
    };
    this.#connections.add(conn);
    client.on('data', (chunk: Buffer) => conn.up.push(chunk));
    server.on('data', (chunk: Buffer) => this.#downstream(conn, chunk));
    const end = (): void => this.#destroy(conn);
    client.on('error', end);
    server.on('error', end);
    client.on('close', end);
    server.on('close', end);
  }

  #downstream(conn: Connection, chunk: Buffer): void {
    const armed = this.#cutsArmed;
    if (conn.cutAfter === undefined && armed !== undefined && armed.left > 0) {
      conn.cutAfter = armed.bytes;
      armed.left--;
      if (armed.left === 0) this.#cutsArmed = undefined;
    }
    if (conn.cutAfter === undefined) {
      conn.down.push(chunk);
      return;
    }
    if (conn.cutting) return;
    const take = Math.min(conn.cutAfter, chunk.length);
    conn.cutAfter -= take;
    if (take > 0) conn.down.push(chunk.subarray(0, take));
    if (conn.cutAfter === 0 && take < chunk.length) {
      conn.cutting = true;
      this.#stats.cut++;
      // Let the partial reply (and its latency) reach the client first, then cut.
      const latency = this.#latencyMs;
      setTimeout(() => this.#destroy(conn), latency + 5);
      conn.server.pause();
    }
  }

  #destroy(conn: Connection): void {
    if (!this.#connections.delete(conn)) return;
    conn.up.close();
    conn.down.close();
    conn.client.destroy();
    conn.server.destroy();
  }
}
