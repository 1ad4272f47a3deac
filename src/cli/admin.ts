/**
 * `status`, `repair`, `pause`, `resume`, `resync`: talk to a running daemon over its HTTP server.
 */
import { request } from 'node:http';
import { parseDuration } from '../config/units.js';
import type { EngineHealth } from '../observability/health.js';
import { formatHealth } from '../observability/health.js';
import { redactSecrets } from '../observability/redact.js';
import type { Io, ParsedArgs } from './args.js';
import { CliError, UsageError, flag, positionals, stringOption, write } from './args.js';
import { EXIT } from './commands.js';
import { loadConfig } from './target.js';

const DEFAULT_URL = 'http://127.0.0.1:9090';

/** Environment variable holding the admin token. */
export const TOKEN_ENV = 'REPLICATION_ENGINE_TOKEN';

interface Daemon {
  readonly url: URL;
  readonly token: string | undefined;
  readonly timeoutMs: number;
}

/** A wildcard bind address is reached on loopback. */
function reachableHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '[::1]';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

function daemonOf(args: ParsedArgs, io: Io): Daemon {
  const file = stringOption(args, 'config');
  const given = stringOption(args, 'url');
  if (file !== undefined && given !== undefined) {
    throw new UsageError('give either --url or --config, not both');
  }
  let base = given ?? DEFAULT_URL;
  let token = stringOption(args, 'token') ?? (io.env[TOKEN_ENV] || undefined);
  if (file !== undefined) {
    const config = loadConfig(file);
    if (!config.http.enabled) {
      throw new CliError(`${file}: http.enabled is false: the daemon serves no HTTP`, EXIT.usage);
    }
    base = `http://${reachableHost(config.http.host)}:${config.http.port}`;
    token ??= config.http.token;
  }
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new UsageError(`--url: expected an http:// URL, found ${JSON.stringify(base)}`);
  }
  if (url.protocol !== 'http:') {
    throw new UsageError(`--url: expected an http:// URL, found ${JSON.stringify(base)}`);
  }
  const timeoutText = stringOption(args, 'timeout');
  const timeoutMs = timeoutText === undefined ? 10_000 : parseDuration(timeoutText, 's');
  if (timeoutMs === undefined || timeoutMs <= 0) {
    throw new UsageError(
      `--timeout: expected a duration such as "5s", found ${JSON.stringify(timeoutText)}`,
    );
  }
  return { url, token, timeoutMs };
}

interface Answer {
  readonly status: number;
  readonly body: string;
}

/** One request; a network failure or timeout is "unreachable" (exit 2). */
function call(daemon: Daemon, method: 'GET' | 'POST', path: string): Promise<Answer> {
  const url = new URL(path, daemon.url);
  return new Promise((resolve, reject) => {
    const unreachable = (why: string): void =>
      reject(new CliError(`cannot reach the daemon at ${daemon.url.origin}: ${why}`, EXIT.usage));
    const req = request(
      url,
      {
        method,
        headers: {
          accept: 'application/json',
          ...(daemon.token !== undefined && { authorization: `Bearer ${daemon.token}` }),
        },
        timeout: daemon.timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', (error) => unreachable(error.message));
      },
    );
    req.on('timeout', () => {
      req.destroy();
      unreachable(`no answer within ${daemon.timeoutMs} ms`);
    });
    req.on('error', (error: NodeJS.ErrnoException) => unreachable(error.code ?? error.message));
    req.end();
  });
}

function parseJson(answer: Answer, what: string): unknown {
  try {
    return JSON.parse(answer.body) as unknown;
  } catch {
    throw new CliError(
      `${what}: the answer (HTTP ${answer.status}) is not JSON: is this a replication-engine daemon?`,
      EXIT.usage,
    );
  }
}

function isHealth(value: unknown): value is EngineHealth {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { healthy?: unknown }).healthy === 'boolean' &&
    Array.isArray((value as { peers?: unknown }).peers)
  );
}

/** `status`. */
export async function statusCommand(args: ParsedArgs, io: Io): Promise<number> {
  positionals(args, []);
  const daemon = daemonOf(args, io);
  const answer = await call(daemon, 'GET', '/health');
  const health = parseJson(answer, '/health');
  if (!isHealth(health)) {
    throw new CliError(
      `/health (HTTP ${answer.status}) is not an engine health report`,
      EXIT.usage,
    );
  }
  const text = flag(args, 'json') ? JSON.stringify(health, null, 2) : formatHealth(health);
  await write(io.stdout, `${redactSecrets(text)}\n`);
  return health.healthy ? EXIT.ok : EXIT.failure;
}

interface RepairChangeJson {
  readonly key: string;
  readonly action: string;
  readonly local: { readonly version: number; readonly origin: string } | null;
  readonly peer: { readonly version: number; readonly origin: string; readonly updated_at: number };
}

function repairSummary(report: Record<string, unknown>, dryRun: boolean): string {
  const n = (name: string): number => (typeof report[name] === 'number' ? report[name] : 0);
  if (report['in_sync'] === true) return 'in sync: the Merkle roots are equal, nothing to repair';
  const changes = Array.isArray(report['changes']) ? (report['changes'] as RepairChangeJson[]) : [];
  const lines = [
    dryRun
      ? `dry run: ${changes.length} key(s) would change (${n('divergent_keys')} divergent, ${n('deferred')} deferred to later cycles)`
      : `repaired: ${n('applied')} pulled of ${n('divergent_keys')} that differed (${n('fetched')} fetched, ${n('deferred')} deferred)`,
  ];
  for (const change of changes.slice(0, 50)) {
    const local =
      change.local === null ? 'absent' : `v${change.local.version} ${change.local.origin}`;
    lines.push(
      `  ${change.action.padEnd(6)} ${change.key}  (here: ${local}; peer: v${change.peer.version} ${change.peer.origin})`,
    );
  }
  if (changes.length > 50) lines.push(`  … and ${changes.length - 50} more (see --json)`);
  return lines.join('\n');
}

/** `repair`, `pause`, `resume`, `resync`. */
export async function adminCommand(
  action: 'repair' | 'pause' | 'resume' | 'resync',
  args: ParsedArgs,
  io: Io,
): Promise<number> {
  positionals(args, []);
  const peer = stringOption(args, 'peer');
  if (peer === undefined || peer === '') throw new UsageError('--peer ID is required');
  const daemon = daemonOf(args, io);
  const dryRun = action === 'repair' && flag(args, 'dry-run');
  const path = `/peers/${encodeURIComponent(peer)}/${action}${dryRun ? '?dry_run=1' : ''}`;
  const answer = await call(daemon, 'POST', path);
  const body = parseJson(answer, path) as Record<string, unknown> | null;
  if (answer.status !== 200) {
    const message =
      body !== null && typeof body['error'] === 'string' ? body['error'] : `HTTP ${answer.status}`;
    throw new CliError(`${action} ${peer}: ${message} (HTTP ${answer.status})`, EXIT.failure);
  }
  let text: string;
  if (flag(args, 'json')) text = JSON.stringify(body, null, 2);
  else if (action === 'repair') text = repairSummary(body ?? {}, dryRun);
  else if (action === 'resync') text = `${peer}: cursor reset; repair started`;
  else text = `${peer}: ${action === 'pause' ? 'paused' : 'resumed'}`;
  await write(io.stdout, `${text}\n`);
  return EXIT.ok;
}
