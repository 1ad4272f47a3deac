/**
 * `watch [PREFIX]`: prints a node's change feed (docs/PROTOCOL.md §10), one line or one JSON
 * object per change, until SIGINT or SIGTERM.
 */
import type { Change, WatchEvent } from '../store/watch.js';
import type { Io, ParsedArgs } from './args.js';
import { CliError, flag, positionals, stringOption, write } from './args.js';
import { EXIT } from './commands.js';
import { recordJson, withStore } from './data.js';
import { targetConfig } from './target.js';

/** Where a change came from, as the line shows it: `local`, `hot:node-b`, `repair:node-b`, … */
function sourceText(change: Change): string {
  const { source } = change;
  return 'peer' in source && source.peer !== undefined
    ? `${source.kind}:${source.peer}`
    : source.kind;
}

/** One line for a person: when, what, which key and version, from where, and the position. */
export function watchLine(event: WatchEvent): string {
  if (event.type === 'resync') {
    return `resync (${event.reason}): changes were lost to this watch, read the store again; position ${event.position}`;
  }
  const { version } = event;
  const op = event.source.kind === 'purge' ? 'purge' : version.deleted ? 'del' : 'put';
  return [
    new Date(event.appliedAt).toISOString(),
    op,
    JSON.stringify(event.key),
    `v${version.version}`,
    `origin ${JSON.stringify(version.origin)}`,
    ...(version.expiresAt === undefined
      ? []
      : [`expires ${new Date(version.expiresAt).toISOString()}`]),
    sourceText(event),
    `position ${event.position}`,
  ].join(' ');
}

/** The event as `watch --json` prints it (one line each). */
export function watchJson(event: WatchEvent): Record<string, unknown> {
  if (event.type === 'resync') return { ...event };
  const { version } = event;
  return {
    type: 'change',
    key: event.key,
    version: version.version,
    updated_at: version.updatedAt,
    origin: version.origin,
    content_hash: version.contentHash,
    deleted: version.deleted,
    ...(version.expiresAt !== undefined && { expires_at: version.expiresAt }),
    source: event.source,
    applied_at: event.appliedAt,
    position: event.position,
    ...(event.record !== undefined && { record: recordJson(event.record) }),
  };
}

/** `watch [PREFIX]`. */
export async function watchCommand(args: ParsedArgs, io: Io): Promise<number> {
  const [prefix] = positionals(args, [], ['PREFIX']) as [string | undefined];
  const config = targetConfig(args, false);
  const json = flag(args, 'json');
  const from = stringOption(args, 'from') ?? 'now';
  return withStore(config, async (store) => {
    const controller = new AbortController();
    const stop = (): void => controller.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      const events = store.watch({
        ...(prefix !== undefined && { prefix }),
        from,
        records: json,
        purges: flag(args, 'purges'),
        signal: controller.signal,
      });
      for await (const event of events) {
        await write(io.stdout, `${json ? JSON.stringify(watchJson(event)) : watchLine(event)}\n`);
      }
      return EXIT.ok;
    } catch (error) {
      throw new CliError((error as Error).message, EXIT.failure);
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
  });
}
