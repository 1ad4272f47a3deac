/**
 * `put`, `get`, `del` and `ls`: read and write one node's store by hand.
 */
import type { ResolvedConfig } from '../config/types.js';
import { isExpired, type StoredRecord } from '../model/record.js';
import { parseDuration } from '../config/units.js';
import { connectLocalStore } from '../node/local-store.js';
import type { NodeStore } from '../node/local-store.js';
import type { Io, ParsedArgs } from './args.js';
import { CliError, UsageError, flag, positionals, readAll, stringOption, write } from './args.js';
import { EXIT, PROGRAM } from './commands.js';
import { targetConfig } from './target.js';

/** How long the one-shot commands wait for the node's Redis. */
const CONNECT_TIMEOUT_MS = 5000;

/** Runs `body` on the store of `config`'s node, connected for it and closed after. */
export async function withStore<T>(
  config: ResolvedConfig,
  body: (store: NodeStore) => Promise<T>,
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
  const fromStdin = value === undefined || value === '-';
  if (fromStdin && (io.stdin as { isTTY?: boolean }).isTTY === true) {
    // Otherwise it just waits, and looks hung.
    await write(
      io.stderr,
      `${PROGRAM} put: reading the value of ${key} from the terminal; end it with Ctrl-D ` +
        '(or give VALUE, or pipe it in)\n',
    );
  }
  const content = fromStdin ? await readAll(io.stdin) : Buffer.from(value, 'utf8');
  // An empty value is more often a mistake (an unset shell variable, a truncated pipe) than meant.
  if (content.length === 0 && !flag(args, 'empty')) {
    throw new UsageError(
      `${fromStdin ? 'stdin' : 'VALUE'} was empty: nothing to store (use --empty to store an empty value)`,
    );
  }
  let contentType: 'json' | 'binary';
  if (flag(args, 'binary')) contentType = 'binary';
  else if (flag(args, 'json')) {
    if (!isJson(content)) throw new CliError('--json: the content is not valid JSON', EXIT.failure);
    contentType = 'json';
  } else contentType = isJson(content) ? 'json' : 'binary';
  const ttlMs = ttlOption(args);
  const { record } = await withStore(config, (store) =>
    store.put(key, content, ttlMs === undefined ? { contentType } : { contentType, ttlMs }),
  );
  const expires =
    record.expiresAt === undefined ? '' : `, expires ${new Date(record.expiresAt).toISOString()}`;
  await write(
    io.stdout,
    `stored ${key} (${record.contentType}, ${record.content.length} bytes) version ${record.version} at ${new Date(record.updatedAt).toISOString()} on ${record.origin}${expires}\n`,
  );
  return EXIT.ok;
}

/** `--ttl DURATION` as milliseconds (a positive whole number of them); undefined when absent. */
function ttlOption(args: ParsedArgs): number | undefined {
  const text = stringOption(args, 'ttl');
  if (text === undefined) return undefined;
  const ms = parseDuration(text, 'ms');
  if (ms === undefined || ms < 1) {
    throw new UsageError(
      `--ttl must be a positive duration (30s, 15m, 2h, 7d; a bare number is ms), got ${JSON.stringify(text)}`,
    );
  }
  return ms;
}

// eslint-disable-next-line no-control-regex -- that is what it looks for
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

/**
 * The record as `get --json` prints it. Content that is UTF-8 text (no control characters but
 * tab and newlines) is shown as text whatever its content type (plain text is stored as `binary`: the CDC meta knows only json and binary, and
 * Rust peers read it); anything else as base64. `content_encoding` says which.
 */
export function recordJson(record: StoredRecord): Record<string, unknown> {
  const decoded = decodeUtf8(record.content);
  // Control characters (other than tab and newlines) mean bytes, not text, for a binary record.
  const utf8 = record.contentType === 'json' || !CONTROL.test(decoded ?? '') ? decoded : undefined;
  return {
    key: record.key,
    version: record.version,
    updated_at: record.updatedAt,
    updated_at_iso: new Date(record.updatedAt).toISOString(),
    origin: record.origin,
    content_hash: record.contentHash,
    content_type: record.contentType,
    deleted: record.deleted,
    ...(record.expiresAt !== undefined && {
      expires_at: record.expiresAt,
      expires_at_iso: new Date(record.expiresAt).toISOString(),
    }),
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
  if (isExpired(record, Date.now())) {
    throw new CliError(
      `${key}: expired at ${new Date(record.expiresAt!).toISOString()} (version ${record.version} on ${record.origin})`,
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

/** Lines written to stdout at once by `ls`. */
const LS_FLUSH = 200;

/** `ls [PREFIX]`: the keys (or records, or their number) under a prefix, page by page. */
export async function lsCommand(args: ParsedArgs, io: Io): Promise<number> {
  const [prefix = ''] = positionals(args, [], ['PREFIX']);
  const limitText = stringOption(args, 'limit');
  const limit = limitText === undefined ? Infinity : Number(limitText);
  if (limitText !== undefined && (!Number.isInteger(limit) || limit < 1)) {
    throw new UsageError(`--limit must be a positive integer, got ${JSON.stringify(limitText)}`);
  }
  const includeDeleted = flag(args, 'deleted');
  const json = flag(args, 'json');
  if (flag(args, 'count') && (json || limitText !== undefined)) {
    throw new UsageError('--count excludes --json and --limit');
  }
  const config = targetConfig(args, false);
  return withStore(config, async (store) => {
    if (flag(args, 'count')) {
      await write(io.stdout, `${await store.count({ prefix, includeDeleted })}\n`);
      return EXIT.ok;
    }
    let lines: string[] = [];
    let listed = 0;
    try {
      for await (const record of store.scan({ prefix, includeDeleted })) {
        lines.push(
          json
            ? JSON.stringify(recordJson(record))
            : `${record.key}${record.deleted ? '\t(deleted)' : isExpired(record, Date.now()) ? '\t(expired)' : ''}`,
        );
        listed += 1;
        if (lines.length >= LS_FLUSH || listed >= limit) {
          await write(io.stdout, `${lines.join('\n')}\n`);
          lines = [];
        }
        if (listed >= limit) break;
      }
      if (lines.length > 0) await write(io.stdout, `${lines.join('\n')}\n`);
    } catch (error) {
      // `ls | head`: the reader has all it wanted.
      if ((error as { code?: string }).code === 'EPIPE') return EXIT.ok;
      throw error;
    }
    return EXIT.ok;
  });
}
