/**
 * A peer's CDC stream as the hot path sees it: wait until it can be read, read entries after a
 * cursor (XRANGE, or XREAD BLOCK), and its XINFO figures. The engine owns this interface;
 * {@link RedisPeerStream} serves it from a peer's Redis, tests from memory.
 */
import { sleep } from './backoff.js';
import type { EntryRead, RawEntry } from './batch.js';
import { Dropped, Truncated, type ReplyBounds, type RespValue } from './bounded-resp.js';
import type { PeerLink } from './peer-link.js';
import { parseStreamInfo, type StreamInfo } from './stream-gap.js';

/** Extra time a blocking read may take past its BLOCK timeout before the socket is presumed dead. */
const READ_DEADLINE_SLACK_MS = 5000;
/** Time an XRANGE may take before the socket is presumed dead (the reader has no command timeout). */
const RANGE_DEADLINE_MS = 15_000;

/**
 * A value bigger than this is never received, whatever `max_item_bytes` says: a key is at most
 * 64 KiB (codec/cdc.ts), so a smaller `max_item_bytes` must not drop honest keys.
 */
const MIN_VALUE_BOUND_BYTES = 64 * 1024;
/** What one entry may hold besides its largest value (its other fields and their names). */
const ENTRY_SLACK_BYTES = 256 * 1024;

/** What one read may hold (issue 19: whatever a peer's stream holds). */
export interface ReadBounds {
  /** `store.max_item_bytes`: a larger value is skipped and its entry quarantined as too large. */
  readonly maxItemBytes: number;
  /** `hot_path.max_batch_bytes`: a read ends at the entry that passes it (at least one). */
  readonly maxBatchBytes: number;
}

/** The parser's bounds for a read within `bounds`, its entries at `entryDepth`. */
export function replyBounds(bounds: ReadBounds, entryDepth: number): ReplyBounds {
  const value = Math.max(bounds.maxItemBytes, MIN_VALUE_BOUND_BYTES);
  return {
    maxValueBytes: value,
    maxElementBytes: value + ENTRY_SLACK_BYTES,
    maxReplyBytes: bounds.maxBatchBytes,
    entryDepth,
  };
}

/**
 * Waits until the peer behind `link` can be read: connected, and its circuit not open (a
 * half-open one lets the next read try); false once `signal` aborts.
 */
export async function readable(link: PeerLink, signal: AbortSignal): Promise<boolean> {
  while (!signal.aborted) {
    if (!link.connected) {
      if (!(await link.waitReady(signal))) return false;
      continue;
    }
    if (link.breaker.state === 'open') {
      await sleep(Math.max(50, link.breaker.msUntilHalfOpen()), signal);
      continue;
    }
    return true;
  }
  return false;
}

/** One peer's CDC stream. */
export interface PeerStream {
  /** Waits until the stream can be read (connected, circuit closed); false once `signal` aborts. */
  ready(signal: AbortSignal): Promise<boolean>;
  /** Up to `count` entries after `cursor`, at once (XRANGE); an abort of `signal` rejects it. */
  range(cursor: string, count: number, signal: AbortSignal): Promise<EntryRead>;
  /**
   * Up to `count` entries after `cursor`, waiting up to `blockMs` for the first (XREAD BLOCK);
   * an abort of `signal` rejects it.
   */
  tail(cursor: string, count: number, blockMs: number, signal: AbortSignal): Promise<EntryRead>;
  /** The stream's XINFO figures; undefined when it does not exist. */
  info(): Promise<StreamInfo | undefined>;
}

/**
 * {@link PeerStream} over a peer's Redis, through its {@link PeerLink} (breaker, metrics). Reads
 * are parsed within {@link ReadBounds} as they stream in (bounded-resp.ts): an entry with a value
 * over `max_item_bytes` comes back with that value left out ({@link RawEntry.tooLarge}), and a
 * read stops keeping entries once `max_batch_bytes` are held (`cut`: the rest is read next).
 */
export class RedisPeerStream implements PeerStream {
  constructor(
    private readonly link: PeerLink,
    private readonly key: string,
    private readonly bounds: () => ReadBounds,
  ) {}

  ready(signal: AbortSignal): Promise<boolean> {
    return readable(this.link, signal);
  }

  range(cursor: string, count: number, signal: AbortSignal): Promise<EntryRead> {
    return this.#read(
      'xrange',
      ['XRANGE', this.key, `(${cursor}`, '+', 'COUNT', String(count)],
      1,
      RANGE_DEADLINE_MS,
      signal,
    );
  }

  tail(cursor: string, count: number, blockMs: number, signal: AbortSignal): Promise<EntryRead> {
    return this.#read(
      'xread',
      ['XREAD', 'BLOCK', String(blockMs), 'COUNT', String(count), 'STREAMS', this.key, cursor],
      3,
      blockMs + READ_DEADLINE_SLACK_MS,
      signal,
    );
  }

  info(): Promise<StreamInfo | undefined> {
    return this.link.run('xinfo', async (client) => {
      try {
        return parseStreamInfo(await client.sendCommand(['XINFO', 'STREAM', this.key]));
      } catch (error) {
        if (error instanceof Error && /no such key/i.test(error.message)) return undefined;
        throw error;
      }
    });
  }

  /**
   * A read on the reader connection with a deadline: one that outlives it means a dead socket (a
   * black-holed one never errors by itself), so the reader is replaced, as it is on abort.
   */
  async #read(
    operation: 'xrange' | 'xread',
    command: string[],
    entryDepth: number,
    deadlineMs: number,
    signal: AbortSignal,
  ): Promise<EntryRead> {
    if (signal.aborted) throw new Error(`${operation} aborted`);
    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void => this.link.resetReader();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const bounds = this.bounds();
      const reply = await this.link.runReader(operation, (reader) => {
        const read = reader.send(command, replyBounds(bounds, entryDepth));
        const deadline = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            this.link.resetReader();
            reject(new Error(`${command[0]} did not return within ${deadlineMs} ms`));
          }, deadlineMs);
        });
        read.catch(() => undefined);
        return Promise.race([read, deadline]);
      });
      return {
        entries: entriesOf(reply.value, entryDepth, bounds.maxItemBytes),
        cut: reply.cut,
      };
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }
}

/** The entries of an XRANGE (`entryDepth` 1) or XREAD (3) reply parsed within bounds. */
export function entriesOf(value: RespValue, entryDepth: number, maxItemBytes: number): RawEntry[] {
  let list: RespValue = value;
  if (entryDepth === 3) {
    // XREAD: null on timeout, else [[stream, entries]].
    const streams = Array.isArray(value) ? value[0] : undefined;
    list = Array.isArray(streams) ? (streams[1] ?? null) : null;
  }
  if (!Array.isArray(list)) return [];
  const out: RawEntry[] = [];
  for (const item of list) {
    if (!Array.isArray(item) || !Buffer.isBuffer(item[0])) {
      throw new Error('malformed stream reply: an entry without an id');
    }
    out.push(entryOf(item[0].toString('latin1'), item, maxItemBytes));
  }
  return out;
}

/**
 * One entry: its fields as Buffers, a value left out for its size written as `<name>_bytes` and
 * its size (the dead-letter form), and why it is too large when anything was left out.
 */
function entryOf(id: string, item: readonly RespValue[], maxItemBytes: number): RawEntry {
  const raw = Array.isArray(item[1]) ? item[1] : [];
  const truncated = item[2] instanceof Truncated ? item[2] : undefined;
  let fields: Buffer[] | undefined;
  const problems: string[] = [];
  for (let i = 0; i < raw.length; i++) {
    const v = raw[i];
    if (Buffer.isBuffer(v)) {
      fields?.push(v);
      continue;
    }
    // Slow path, only for an entry with something left out (or not a string).
    fields ??= raw.slice(0, i) as Buffer[];
    const isName = i % 2 === 0;
    if (v instanceof Dropped) {
      const name = isName ? '_field' : (raw[i - 1] as Buffer | undefined)?.toString('latin1');
      problems.push(`${name ?? 'a field'} is ${v.bytes} bytes`);
      if (isName) {
        fields.push(Buffer.from('_field_bytes'));
        fields.push(Buffer.from(String(v.bytes)));
        i += 1; // its value goes with it
      } else {
        fields[fields.length - 1] = Buffer.from(
          `${(fields.at(-1) ?? Buffer.alloc(0)).toString('latin1')}_bytes`,
        );
        fields.push(Buffer.from(String(v.bytes)));
      }
    } else {
      // Not a bulk string (no Redis sends one here): an empty value, which the CDC parser refuses.
      fields.push(Buffer.alloc(0));
    }
  }
  if (truncated !== undefined) {
    fields ??= raw as Buffer[];
    fields.push(Buffer.from('_skipped_bytes'), Buffer.from(String(truncated.bytes)));
    problems.push(`${truncated.values} more values (${truncated.bytes} bytes) were not read`);
  }
  if (problems.length === 0) return { id, fields: raw as Buffer[] };
  return {
    id,
    fields: fields ?? (raw as Buffer[]),
    tooLarge: `${problems.join('; ')}: over the ${maxItemBytes}-byte limit (max_item_bytes), not read`,
  };
}
