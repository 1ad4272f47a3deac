/**
 * Structured JSON-lines logging (pino) with credentials redacted.
 *
 * Levels, from most to least verbose:
 * - `trace`: every stream read and batch (very verbose; never in production).
 * - `debug`: per-batch and per-cycle details, admin HTTP requests, pings of idle peers.
 * - `info`: lifecycle (start, stop, reload), peers connecting and disconnecting, repairs that
 *   changed something, admin actions (pause, resume, resync, repair). The default.
 * - `warn`: recoverable trouble: SLO violations, retries, circuit opening, quarantined entries,
 *   stream gaps, backpressure.
 * - `error`: an operation failed and will be retried (a flush, a cursor write, a repair cycle).
 * - `fatal`: the engine moved to `failed`.
 * - `silent`: nothing.
 */
import { pino, stdSerializers, type DestinationStream, type LevelWithSilent } from 'pino';

import { REDACTED, redactSecrets, redactUrl } from './redact.js';

export { redactSecrets, redactUrl } from './redact.js';

/** The logger every component receives: a pino logger. */
export type Logger = pino.Logger;

/** A pino level name, or `silent`. */
export type LogLevel = LevelWithSilent;

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** @default 'info' */
  readonly level?: LogLevel;
  /** Where JSON lines go. @default stdout */
  readonly destination?: DestinationStream;
  /** The `name` field of every line. @default 'replication-engine' */
  readonly name?: string;
}

const URL_KEYS = new Set(['url', 'redisUrl', 'redis_url', 'displayUrl', 'display_url']);

/** Field paths whose values are secrets (the whole value) or URLs (the password only). */
export const REDACT_PATHS: readonly string[] = [
  'password',
  'token',
  'secret',
  'authorization',
  'redisUrl',
  'redis_url',
  'url',
  '*.password',
  '*.token',
  '*.secret',
  '*.redisUrl',
  '*.redis_url',
  '*.url',
  '*.*.password',
  '*.*.token',
  '*.*.redisUrl',
  '*.*.redis_url',
  'headers.authorization',
  'headers.cookie',
  '*.headers.authorization',
  '*.headers.cookie',
];

function censor(value: unknown, path: string[]): unknown {
  const key = path[path.length - 1] ?? '';
  if (URL_KEYS.has(key) && typeof value === 'string') return redactUrl(value);
  return REDACTED;
}

interface SerializedError {
  message?: unknown;
  stack?: unknown;
  [key: string]: unknown;
}

/** pino's error serializer, with credentials in the message and stack masked. */
function errSerializer(err: Error): SerializedError {
  const out = stdSerializers.err(err) as SerializedError;
  if (typeof out.message === 'string') out.message = redactSecrets(out.message);
  if (typeof out.stack === 'string') out.stack = redactSecrets(out.stack);
  return out;
}

/** A JSON-lines logger with credential redaction: `level` is a string, `time` ISO 8601. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const config: pino.LoggerOptions = {
    name: options.name ?? 'replication-engine',
    level: options.level ?? 'info',
    redact: { paths: [...REDACT_PATHS], censor },
    serializers: { err: errSerializer, error: errSerializer },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    hooks: {
      // Messages are free text and may quote a URL: mask credentials in them too.
      logMethod(args, method) {
        const masked = args.map((a) => (typeof a === 'string' ? redactSecrets(a) : a));
        method.apply(this, masked as Parameters<typeof method>);
      },
    },
  };
  return options.destination === undefined ? pino(config) : pino(config, options.destination);
}

/** A child of `logger` whose every line carries `peer_id`. */
export function peerLogger(logger: Logger, peerId: string): Logger {
  return logger.child({ peer_id: peerId });
}
