/**
 * Reading one peer's stream for the hot path: XRANGE while catching up (with the next batch read
 * ahead), XREAD BLOCK once caught up, read metrics and SLO, and the gap check against what the
 * stream was known to be (SPEC §4). Positions are the caller's: the reader never decides where to
 * read from, so it cannot skip what the caller has not applied.
 */
import type { Logger } from '../observability/logger.js';
import { RepeatingWarning } from '../observability/repeating-warning.js';
import type { Metrics } from '../observability/metrics.js';
import type { EntryRead } from './batch.js';
import type { PeerStream } from './peer-stream.js';
import { detectGap, type GapVerdict, type StreamInfo } from './stream-gap.js';

/** How a read waits. */
export interface ReadMode {
  /** XREAD BLOCK this long when given (caught up); XRANGE otherwise (catching up). */
  readonly blockMs?: number;
  /** Stream-read SLO, checked for reads while catching up. */
  readonly sloMs: number;
}

/** What a gap check found. */
export interface StreamCheck {
  readonly info: StreamInfo | undefined;
  readonly verdict: GapVerdict;
}

/** Reads a peer's stream after positions its caller gives. */
export class StreamReader {
  #ahead: { cursor: string; count: number; read: Promise<EntryRead> } | undefined;
  #memory: { entriesAdded: number | null; acknowledgedDeletedId?: string };

  /** Slow catch-up reads: logged when they start, rate-limited while they last, and when they end. */
  readonly #slowReads: RepeatingWarning;

  constructor(
    private readonly stream: PeerStream,
    private readonly peerId: string,
    private readonly metrics: Metrics,
    log: Logger,
    entriesAdded: number | null,
    /** Ends every read (stop). */
    private readonly signal: AbortSignal,
  ) {
    this.#memory = { entriesAdded };
    this.#slowReads = new RepeatingWarning(log, 'stream read exceeded its SLO', {
      recovered: 'stream reads are within their SLO',
    });
  }

  /** The stream's `entries-added` last seen (persisted with the cursor, to detect a re-creation). */
  get entriesAdded(): number | null {
    return this.#memory.entriesAdded;
  }

  /**
   * Up to `count` entries after `cursor`: the batch read ahead when it starts there and was read
   * in the same mode, else a fresh read. Fewer, and `cut`, when the read met its byte budget.
   */
  async read(cursor: string, count: number, mode: ReadMode): Promise<EntryRead> {
    const ahead = this.#ahead;
    this.#ahead = undefined;
    if (ahead !== undefined && mode.blockMs === undefined && ahead.cursor === cursor) {
      return ahead.read;
    }
    const started = performance.now();
    const read =
      mode.blockMs === undefined
        ? await this.stream.range(cursor, count, this.signal)
        : await this.stream.tail(cursor, count, mode.blockMs, this.signal);
    this.#count(read.entries.length, (performance.now() - started) / 1000, mode);
    return read;
  }

  /** Starts reading the `count` entries after `cursor` (catching up: the batch after this one). */
  readAhead(cursor: string, count: number, sloMs: number): void {
    const started = performance.now();
    const read = this.stream.range(cursor, count, this.signal).then((got) => {
      this.#count(got.entries.length, (performance.now() - started) / 1000, { sloMs });
      return got;
    });
    read.catch(() => undefined); // awaited when taken; a dropped one must not go unhandled
    this.#ahead = { cursor, count, read };
  }

  /** Forgets a batch read ahead (nothing of it was applied: the caller's position did not move). */
  dropReadAhead(): void {
    this.#ahead = undefined;
  }

  /** The id of the first entry after `cursor`, if any (for the age of what waits). */
  async firstAfter(cursor: string): Promise<string | undefined> {
    const { entries } = await this.stream.range(cursor, 1, this.signal);
    return entries[0]?.id;
  }

  /** The stream's XINFO figures, judging nothing (lag while paused). */
  info(): Promise<StreamInfo | undefined> {
    return this.stream.info();
  }

  /**
   * Reads XINFO and judges the stream against `committed` (an uncommitted read position proves
   * nothing): trimmed past it, deleted and re-created, or flushed.
   */
  async check(committed: string): Promise<StreamCheck> {
    const info = await this.stream.info();
    const verdict = detectGap(committed, info, this.#memory);
    if (verdict.gap) {
      if (info?.maxDeletedEntryId !== undefined) {
        this.#memory.acknowledgedDeletedId = info.maxDeletedEntryId;
      }
      if (verdict.kind === 'recreated') {
        this.#memory = {
          entriesAdded: info?.entriesAdded ?? null,
          ...(info?.maxDeletedEntryId !== undefined
            ? { acknowledgedDeletedId: info.maxDeletedEntryId }
            : {}),
        };
      }
    }
    if (info?.entriesAdded !== undefined) this.#memory.entriesAdded = info.entriesAdded;
    return { info, verdict };
  }

  /** Forgets what the stream was known to be (a resync reads it again from its start). */
  forget(): void {
    this.#memory = { entriesAdded: this.#memory.entriesAdded };
    this.#ahead = undefined;
  }

  #count(entries: number, seconds: number, mode: ReadMode): void {
    const m = this.metrics;
    const peer = { peer_id: this.peerId };
    m.streamReadsTotal.inc(peer);
    if (entries === 0) return;
    m.streamReadDurationSeconds.observe(peer, seconds);
    m.cdcEventsReadTotal.inc(peer, entries);
    m.streamEventsReadTotal.inc(peer, entries);
    if (mode.blockMs !== undefined) return;
    if (seconds * 1000 > mode.sloMs) {
      m.sloViolationsTotal.inc({ peer_id: this.peerId, slo_type: 'stream_read' });
      this.#slowReads.fail({ ms: Math.round(seconds * 1000), slo_ms: mode.sloMs });
    } else {
      this.#slowReads.ok();
    }
  }
}
