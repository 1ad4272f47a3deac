/**
 * `redis-server` child processes for the demo: free loopback ports, one directory each, append-only
 * persistence (so a killed server comes back with its data), and a process exit hook that kills
 * every child still running, whatever happens.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';

/** A redis-server child. */
export interface RedisProcess {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** The pid of the running server, if any. */
  readonly pid: number | undefined;
  /** SIGKILL (a crash); resolves once the process is gone. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and directory. */
  restart(): Promise<void>;
}

const live = new Set<ChildProcess>();
let hooked = false;

/** Kills every redis-server this process started; synchronous, for exit paths. */
export function killAllRedis(): void {
  for (const child of live) child.kill('SIGKILL');
  live.clear();
}

/** A TCP port free right now on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address === null || typeof address === 'string') reject(new Error('no free port'));
        else resolve(address.port);
      });
    });
  });
}

/** True when something accepts TCP connections on 127.0.0.1:`port`. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * True once the Redis on 127.0.0.1:`port` answers PING (PONG, or NOAUTH when it wants a password):
 * not while it refuses connections or is still LOADING its data.
 */
export function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH'));
    });
    socket.once('error', () => done(false));
  });
}

/** Ports a first start tries before it gives up. */
const START_ATTEMPTS = 5;

/** The server exited before it answered (its port, or its cluster bus port, was taken). */
class ExitedAtStart extends Error {}

/**
 * Starts `redis-server` on a free port with its files in `dir` (and any extra `--flag value`
 * `args`); resolves once it accepts connections.
 * @throws Error when redis-server is not on PATH or exits at start.
 */
export async function startRedisProcess(
  dir: string,
  options: { readonly args?: readonly string[]; readonly appendfsync?: 'always' | 'no' } = {},
): Promise<RedisProcess> {
  if (!hooked) {
    hooked = true;
    process.once('exit', killAllRedis);
  }
  let port = await freePort();
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    const proc = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'yes',
        '--appendfsync',
        options.appendfsync ?? 'always',
        '--daemonize',
        'no',
        '--logfile',
        join(dir, 'redis.log'),
        ...(options.args ?? []),
      ],
      { stdio: 'ignore' },
    );
    live.add(proc);
    child = proc;
    let failure: Error | undefined;
    proc.once('error', (error: NodeJS.ErrnoException) => {
      failure =
        error.code === 'ENOENT'
          ? new Error('redis-server is not on PATH: install Redis (e.g. apt install redis-server)')
          : error;
    });
    proc.once('exit', () => {
      live.delete(proc);
      failure ??= new ExitedAtStart(
        `redis-server on port ${port} exited at start (see ${dir}/redis.log)`,
      );
    });
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (failure !== undefined) throw failure;
      if (await answersPing(port)) return;
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not start`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  const kill = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGKILL');
    await exited;
  };

  // A port free when asked can be taken before the server binds it (or, for a cluster node, the
  // bus port 10,000 above it can be in use): the first start tries other ports.
  for (let attempt = 1; ; attempt++) {
    try {
      await launch();
      break;
    } catch (error) {
      if (!(error instanceof ExitedAtStart) || attempt >= START_ATTEMPTS) throw error;
      port = await freePort();
    }
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    get pid() {
      return child?.pid;
    },
    kill,
    restart: async () => {
      await kill();
      await launch();
    },
  };
}
