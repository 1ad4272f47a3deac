/**
 * The one call of the `write` script (docs/PROTOCOL.md §5): its keys and arguments in one place,
 * for the local writes of {@link SyncStore} and the superseding deletes of the tombstone collector.
 */
import { MAX_UPDATED_AT, MAX_VERSION } from '../codec/bounds.js';
import type { ResolvedStore } from '../config/types.js';
import type { StoreKeys } from './keys.js';
import { SCRIPTS } from './lua-script.js';
import { bucketOf } from './merkle-hash.js';
import type { CommandSender } from './redis-io.js';

/** One local write, as the script takes it. */
export interface WriteCall {
  readonly key: string;
  readonly nodeId: string;
  /** This node's clock, ms. */
  readonly now: number;
  readonly deleted: boolean;
  /** The CDC `data` (also the item's body): the content or its zstd frame; empty for a tombstone. */
  readonly data: Buffer;
  /** True when {@link data} is a zstd frame of the content. */
  readonly compressed: boolean;
  readonly contentHash: string;
  readonly contentType: 'json' | 'binary';
  readonly traceParent?: string | undefined;
  /** When a put's record expires (ms since the epoch); undefined: never. */
  readonly expiresAt?: number | undefined;
  /** A superseding delete (docs/PROTOCOL.md §6): the stale record's clock and version. */
  readonly supersede?: { readonly updatedAt: number; readonly version: number };
  /** The change feed entry's source (docs/PROTOCOL.md §10). @default 'local' */
  readonly source?: string;
}

/**
 * Runs the `write` script.
 * @returns its reply: the clock, the version and the CDC entry id (`['0', '0', '']` for a
 *   superseding delete of a key that has a version, which writes nothing).
 */
export function runWrite(
  client: CommandSender,
  keys: StoreKeys,
  settings: Pick<ResolvedStore, 'cdcMaxlen' | 'maxClockSkewMs' | 'changeFeed' | 'changeFeedMaxlen'>,
  write: WriteCall,
): Promise<[string, string, string]> {
  const bucket = bucketOf(write.key);
  const { traceParent, supersede } = write;
  return SCRIPTS.write.run<[string, string, string]>(
    client,
    [
      keys.item(write.key),
      keys.bucket(bucket),
      keys.dirty,
      keys.tombstones,
      keys.cdc,
      keys.changes,
      keys.changesSeq,
    ],
    [
      write.key,
      bucket,
      String(Math.floor(write.now)),
      write.nodeId,
      JSON.stringify(write.nodeId),
      write.deleted ? '1' : '0',
      write.compressed ? '1' : '0',
      write.contentHash,
      write.contentType,
      traceParent ?? '',
      traceParent === undefined ? '' : JSON.stringify(traceParent),
      write.data,
      String(settings.cdcMaxlen),
      String(settings.maxClockSkewMs),
      String(MAX_UPDATED_AT),
      String(MAX_VERSION),
      supersede === undefined ? '' : `${supersede.updatedAt}|${supersede.version}`,
      feedMaxlen(settings),
      write.source ?? 'local',
      write.expiresAt === undefined ? '' : String(write.expiresAt),
    ],
  );
}

/** The feed MAXLEN argument of the scripts: `'0'` when the change feed is off. */
export function feedMaxlen(
  settings: Pick<ResolvedStore, 'changeFeed' | 'changeFeedMaxlen'>,
): string {
  return settings.changeFeed ? String(settings.changeFeedMaxlen) : '0';
}
