/**
 * Which config a command works on: a YAML file (`-c`), or a node named on the command line
 * (`--redis URL --prefix P --node-id ID`).
 */
import { loadConfigFile, resolveConfig } from '../config/index.js';
import type { ResolvedConfig } from '../config/types.js';
import { ConfigError } from '../errors.js';
import type { ParsedArgs } from './args.js';
import { CliError, UsageError, stringOption } from './args.js';
import { EXIT } from './commands.js';

/** Loads a config file; a bad file is a {@link CliError} with exit code 2 and the file's message. */
export function loadConfig(path: string): ResolvedConfig {
  try {
    return loadConfigFile(path);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new CliError(`invalid config:\n${error.message}`, EXIT.usage);
    }
    throw error;
  }
}

/** Node id of the CLI's reads when none is given (it is only an origin for writes). */
const READER_ID = 'replication-engine-cli';

/**
 * The node `put`/`get`/`del` talk to: `-c FILE`, or `--redis` (plus `--prefix`, `--node-id`).
 * `needsNodeId`: writes need the node id, since it becomes the origin of the change.
 */
export function targetConfig(args: ParsedArgs, needsNodeId: boolean): ResolvedConfig {
  const file = stringOption(args, 'config');
  const redis = stringOption(args, 'redis');
  const prefix = stringOption(args, 'prefix');
  const nodeId = stringOption(args, 'node-id');
  if (file !== undefined) {
    if (redis !== undefined || prefix !== undefined || nodeId !== undefined) {
      throw new UsageError('give either --config or --redis/--prefix/--node-id, not both');
    }
    return loadConfig(file);
  }
  if (redis === undefined) {
    throw new UsageError('which node? give --config FILE, or --redis URL');
  }
  if (needsNodeId && nodeId === undefined) {
    throw new UsageError('--node-id ID is required with --redis (it is the origin of the write)');
  }
  try {
    return resolveConfig({
      replication: { local_node_id: nodeId ?? READER_ID },
      local: { redis_url: redis, redis_prefix: prefix ?? '' },
    });
  } catch (error) {
    if (error instanceof ConfigError) {
      const message = error.message
        .replace(/^local\.redis_url\b/m, '--redis')
        .replace(/^local\.redis_prefix\b/m, '--prefix')
        .replace(/^replication\.local_node_id\b/m, '--node-id');
      throw new UsageError(message);
    }
    throw error;
  }
}
