/**
 * `run -c FILE`: the daemon. The config is validated before anything connects; SIGTERM/SIGINT
 * drain and exit 0 (a second signal exits 1 at once); SIGHUP reloads the file live.
 */
import type { ResolvedConfig } from '../config/types.js';
import { ConfigError } from '../errors.js';
import { describeError } from '../redis/connect.js';
import { startNode } from '../node/node.js';
import type { RunningNode } from '../node/node.js';
import { createLogger } from '../observability/logger.js';
import type { LogLevel, Logger } from '../observability/logger.js';
import type { Io, ParsedArgs } from './args.js';
import { UsageError, positionals, stringOption, write } from './args.js';
import { EXIT, PROGRAM } from './commands.js';
import { loadConfig } from './target.js';
import { loadConfigFile } from '../config/index.js';

const LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** Environment variable for the default log level. */
export const LOG_LEVEL_ENV = 'REPLICATION_ENGINE_LOG_LEVEL';

/** How long a drain may take before connections are cut. */
const DRAIN_TIMEOUT_MS = 15_000;

function logLevel(args: ParsedArgs, io: Io): LogLevel {
  const given = stringOption(args, 'log-level') ?? (io.env[LOG_LEVEL_ENV] || 'info');
  if (!(LEVELS as readonly string[]).includes(given)) {
    throw new UsageError(
      `--log-level: expected one of ${LEVELS.join(', ')}, found ${JSON.stringify(given)}`,
    );
  }
  return given as LogLevel;
}

/** A short, credential-free summary of a config for the start and reload lines. */
function describeConfig(config: ResolvedConfig): Record<string, unknown> {
  return {
    node_id: config.replication.localNodeId,
    local: config.local.displayUrl,
    peers: config.replication.peers.map((p) => ({ node_id: p.nodeId, url: p.displayUrl })),
    http: config.http.enabled ? `${config.http.host}:${config.http.port}` : 'disabled',
  };
}

/** Runs the daemon until a signal stops it; resolves with the exit code. */
export async function runCommand(args: ParsedArgs, io: Io): Promise<number> {
  positionals(args, []);
  const file = stringOption(args, 'config');
  if (file === undefined) throw new UsageError('--config FILE is required');
  const level = logLevel(args, io);
  const config = loadConfig(file);
  const logger = createLogger({ level });
  logger.info({ config_file: file, ...describeConfig(config) }, 'starting');
  return serve(file, config, logger, io);
}

async function serve(
  file: string,
  config: ResolvedConfig,
  logger: Logger,
  io: Io,
): Promise<number> {
  const aborter = new AbortController();
  let node: RunningNode | undefined;
  let starting: Promise<RunningNode | undefined> = Promise.resolve(undefined);
  let signals = 0;
  let reloading: Promise<void> = Promise.resolve();
  let done!: (code: number) => void;
  const finished = new Promise<number>((resolve) => (done = resolve));

  const shutdown = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting without draining');
      done(EXIT.failure);
      return;
    }
    logger.info({ signal }, 'shutting down: draining');
    aborter.abort();
    // A signal during start aborts the wait for the local Redis, or stops what did start.
    const stopping = starting.then((started) => started?.stop(DRAIN_TIMEOUT_MS));
    stopping.then(
      () => {
        logger.info('stopped');
        done(EXIT.ok);
      },
      (error: unknown) => {
        logger.error({ err: describeError(error) }, 'shutdown failed');
        done(EXIT.failure);
      },
    );
  };

  const reload = (): void => {
    reloading = reloading.then(async () => {
      if (node === undefined || signals > 0) return;
      let next: ResolvedConfig;
      try {
        next = loadConfigFile(file);
      } catch (error) {
        const message = error instanceof ConfigError ? error.message : describeError(error);
        logger.error(
          { config_file: file, err: message },
          'reload rejected: invalid config; the running config stays',
        );
        return;
      }
      try {
        await node.reload(next);
        logger.info({ config_file: file, ...describeConfig(next) }, 'reloaded');
      } catch (error) {
        logger.error(
          { config_file: file, err: describeError(error) },
          'reload rejected; the running config stays',
        );
      }
    });
  };

  const onTerm = (): void => shutdown('SIGTERM');
  const onInt = (): void => shutdown('SIGINT');
  const onHup = (): void => {
    logger.info({ config_file: file }, 'SIGHUP: reloading the config');
    reload();
  };
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('SIGHUP', onHup);

  starting = startNode(config, { logger, signal: aborter.signal }).then(
    (started) => {
      node = started;
      if (signals === 0) {
        logger.info(
          { node_id: config.replication.localNodeId, http: started.admin?.url ?? 'disabled' },
          'running',
        );
      }
      return started;
    },
    (error: unknown) => {
      if (signals === 0) {
        const reason = describeError(error);
        logger.fatal({ err: reason }, 'failed to start');
        // Also a sentence for the person at the terminal (or journalctl), not only a JSON field.
        write(io.stderr, `${PROGRAM} run: failed to start: ${reason}\n`).then(
          () => done(EXIT.failure),
          () => done(EXIT.failure),
        );
      }
      return undefined;
    },
  );
  const code = await finished;
  process.off('SIGTERM', onTerm);
  process.off('SIGINT', onInt);
  process.off('SIGHUP', onHup);
  return code;
}
