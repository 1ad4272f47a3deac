/**
 * `put`, `get` and `del`: read and write one node's store by hand.
 */
import type { ResolvedConfig } from '../config/types.js';
import type { StoredRecord } from '../model/record.js';
import { connectLocalStore } from '../node/local-store.js';
import type { SyncStore } from '../store/sync-store.js';
import type { Io, ParsedArgs } from './args.js';
import { CliError, UsageError, flag, positionals, readAll, write } from './args.js';
import { EXIT } from './commands.js';
import { targetConfig } from './target.js';

/** How long the one-shot commands wait for the node's Redis. */
const CONNECT_TIMEOUT_MS = 5000;

async function withStore<T>(
  config: ResolvedConfig,
  body: (store: SyncStore) => Promise<T>,
): Promise<T> {
  let handle;
  try {
    handle = await connectLocalStore(config, {
      clientName: 'replication-engine-cli',
      timeoutMs: CONNECT_TIMEOUT_MS,
    });
  } catch (error) {
    throw new CliError((error as Error).message, EXIT.failure);
  }
  try {
    return await body(handle.store);
  } finally {
    await handle.close();
  }
}

function isJson(bytes: Buffer): boolean {
  try {
    JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    return true;
  } catch {
    return false;
  }
}

/** `put KEY [VALUE]`. */
export async function putCommand(args: ParsedArgs, io: Io): Promise<number> {
  const [key, value] = positionals(args, ['KEY'], ['VALUE']) as [string, string | undefined];
  if (flag(args, 'json') && flag(args, 'binary')) {
    throw new UsageError('--json and --binary exclude each other');
  }
  const config = targetConfig(args, true);
  const content =
    value === undefined || value === '-' ? await readAll(io.stdin) : Buffer.from(value, 'utf8');
  let contentType: 'json' | 'binary';
  if (flag(args, 'binary')) contentType = 'binary';
  else if (flag(args, 'json')) {
    if (!isJson(content)) throw new CliError('--json: the content is not valid JSON', EXIT.failure);
    contentType = 'json';
  } else contentType = isJson(content) ? 'json' : 'binary';
  const { record } = await withStore(config, (store) => store.put(key, content, { contentType }));
  await write(
    io.stdout,
    `stored ${key} (${record.contentType}, ${record.content.length} bytes) version ${record.version} at ${new Date(record.updatedAt).toISOString()} on ${record.origin}\n`,
  );
  return EXIT.ok;
}

/** The record as `get --json` prints it. */
export function recordJson(record: StoredRecord): Record<string, unknown> {
  const utf8 = record.contentType === 'json' ? decodeUtf8(record.content) : undefined;
  return {
    key: record.key,
    version: record.version,
    updated_at: record.updatedAt,
    updated_at_iso: new Date(record.updatedAt).toISOString(),
    origin: record.origin,
    content_hash: record.contentHash,
    content_type: record.contentType,
    deleted: record.deleted,
    ...(record.traceParent !== undefined && { trace_parent: record.traceParent }),
    content_encoding: utf8 === undefined ? 'base64' : 'utf8',
    content: utf8 ?? record.content.toString('base64'),
  };
}

function decodeUtf8(bytes: Buffer): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/** `get KEY`. */
export async function getCommand(args: ParsedArgs, io: Io): Promise<number> {
  const [key] = positionals(args, ['KEY']) as [string];
  const config = targetConfig(args, false);
  const record = await withStore(config, (store) => store.getRecord(key));
  if (record === undefined) throw new CliError(`${key}: not found`, EXIT.failure);
  if (flag(args, 'json')) {
    await write(io.stdout, `${JSON.stringify(recordJson(record), null, 2)}\n`);
  }
  if (record.deleted) {
    throw new CliError(
      `${key}: deleted (version ${record.version} at ${new Date(record.updatedAt).toISOString()} on ${record.origin})`,
      EXIT.failure,
    );
  }
  if (!flag(args, 'json')) await write(io.stdout, record.content);
  return EXIT.ok;
}

/** `del KEY`. */
export async function delCommand(args: ParsedArgs, io: Io): Promise<number> {
  const [key] = positionals(args, ['KEY']) as [string];
  const config = targetConfig(args, true);
  const { record } = await withStore(config, (store) => store.delete(key));
  await write(
    io.stdout,
    `deleted ${key} version ${record.version} at ${new Date(record.updatedAt).toISOString()} on ${record.origin}\n`,
  );
  return EXIT.ok;
}
