/**
 * A peer's CDC stream as the hot path sees it: wait until it can be read, read entries after a
 * cursor (XRANGE, or XREAD BLOCK), and its XINFO figures. The engine owns this interface;
 * {@link RedisPeerStream} serves it from a peer's Redis, tests from memory.
 */
import { sleep } from './backoff.js';
import { entriesFromReply, type RawEntry } from './batch.js';
import type { PeerLink } from './peer-link.js';
import { BUFFERS } from './redis-connection.js';
import { parseStreamInfo, type StreamInfo } from './stream-gap.js';

/** Extra time a blocking read may take past its BLOCK timeout before the socket is presumed dead. */
const READ_DEADLINE_SLACK_MS = 5000;
/** Time an XRANGE may take before the socket is presumed dead (the reader has no command timeout). */
const RANGE_DEADLINE_MS = 15_000;

/** One peer's CDC stream. */
export interface PeerStream {
  /** Waits until the stream can be read (connected, circuit closed); false once `signal` aborts. */
  ready(signal: AbortSignal): Promise<boolean>;
  /** Up to `count` entries after `cursor`, at once (XRANGE); an abort of `signal` rejects it. */
  range(cursor: string, count: number, signal: AbortSignal): Promise<RawEntry[]>;
  /**
   * Up to `count` entries after `cursor`, waiting up to `blockMs` for the first (XREAD BLOCK);
   * an abort of `signal` rejects it.
   */
  tail(cursor: string, count: number, blockMs: number, signal: AbortSignal): Promise<RawEntry[]>;
  /** The stream's XINFO figures; undefined when it does not exist. */
  info(): Promise<StreamInfo | undefined>;
}

/** {@link PeerStream} over a peer's Redis, through its {@link PeerLink} (breaker, metrics). */
export class RedisPeerStream implements PeerStream {
  constructor(
    private readonly link: PeerLink,
    private readonly key: string,
  ) {}

  async ready(signal: AbortSignal): Promise<boolean> {
    while (!signal.aborted) {
      if (!this.link.connected) {
        if (!(await this.link.waitReady(signal))) return false;
        continue;
      }
      if (this.link.breaker.state === 'open') {
        await sleep(Math.max(50, this.link.breaker.msUntilHalfOpen()), signal);
        continue;
      }
      return true;
    }
    return false;
  }

  range(cursor: string, count: number, signal: AbortSignal): Promise<RawEntry[]> {
    return this.#read(
      'xrange',
      ['XRANGE', this.key, `(${cursor}`, '+', 'COUNT', String(count)],
      RANGE_DEADLINE_MS,
      signal,
    );
  }

  tail(cursor: string, count: number, blockMs: number, signal: AbortSignal): Promise<RawEntry[]> {
    return this.#read(
      'xread',
      ['XREAD', 'BLOCK', String(blockMs), 'COUNT', String(count), 'STREAMS', this.key, cursor],
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
    deadlineMs: number,
    signal: AbortSignal,
  ): Promise<RawEntry[]> {
    if (signal.aborted) throw new Error(`${operation} aborted`);
    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void => this.link.resetReader();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const reply = await this.link.run(
        operation,
        (client) => {
          const read = client.sendCommand(command, { typeMapping: BUFFERS });
          const deadline = new Promise<never>((_, reject) => {
            timer = setTimeout(() => {
              this.link.resetReader();
              reject(new Error(`${command[0]} did not return within ${deadlineMs} ms`));
            }, deadlineMs);
          });
          read.catch(() => undefined);
          return Promise.race([read, deadline]);
        },
        'reader',
      );
      return entriesFromReply(reply);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }
}
