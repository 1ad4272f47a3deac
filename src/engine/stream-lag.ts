/**
 * A tailer's lag, always measured from the committed cursor (SPEC §4, issue 18): the entries the
 * peer's stream holds after it, and the age of the oldest of them. Read-but-unapplied entries,
 * a paused peer and failed applies all count as lag. Pure; the tailer feeds it what it sees.
 */
import { compareStreamIds, STREAM_START, streamIdMs } from '../codec/stream-id.js';
import type { RawEntry } from './batch.js';
import { estimateLagEvents, type StreamInfo } from './stream-gap.js';

/** Lag behind one peer's stream head. */
export class StreamLag {
  /** The newest entry id known in the stream. */
  #head = STREAM_START;
  /** Entries after the committed cursor, up to {@link #head}. */
  #events = 0;
  /** The first entry after the committed cursor, when known. */
  #next: string | undefined;
  /**
   * The stream's `entries-added` count at the committed cursor, once known (XINFO while nothing
   * waits), then moved by each commit: `entries-added` minus it is the exact lag, as Redis counts
   * a consumer group's. Unknown after a jump of the cursor, until the next time nothing waits.
   */
  #ordinal: number | undefined;

  /** Entries the stream holds after the committed cursor (estimated between XINFO reads). */
  get events(): number {
    return this.#events;
  }

  /** The first entry after the committed cursor, if known (undefined: a probe may find it). */
  get nextId(): string | undefined {
    return this.#events > 0 ? this.#next : undefined;
  }

  /** Age in ms, at `now`, of the oldest entry not yet applied (0 when none waits). */
  ms(now: number): number {
    if (this.#events === 0 || this.#next === undefined) return 0;
    return Math.max(0, now - streamIdMs(this.#next));
  }

  /** XINFO read with the cursor at `committed`. */
  observeInfo(committed: string, info: StreamInfo | undefined): void {
    if (info === undefined) {
      // No stream: nothing waits; one created later counts its entries from 0.
      this.#events = 0;
      this.#next = undefined;
      if (committed === STREAM_START) this.#ordinal = 0;
      return;
    }
    const head = info.lastEntryId ?? info.lastGeneratedId;
    if (compareStreamIds(head, this.#head) > 0) this.#head = head;
    const first = info.firstEntryId;
    if (compareStreamIds(committed, head) >= 0) {
      this.#events = 0;
      if (info.entriesAdded !== undefined) this.#ordinal = info.entriesAdded;
    } else if (first !== undefined && compareStreamIds(first, committed) > 0) {
      // Every entry the stream holds comes after the cursor (a fresh cursor, or a gap): all wait.
      this.#events = info.length;
      this.#next = first;
      if (info.entriesAdded !== undefined) this.#ordinal = info.entriesAdded - info.length;
    } else if (info.entriesAdded !== undefined && this.#ordinal !== undefined) {
      this.#events = Math.max(1, info.entriesAdded - this.#ordinal);
    } else {
      this.#events = estimateLagEvents(committed, info);
    }
    if (this.#events === 0) this.#next = undefined;
  }

  /** Entries read after `after`; `committed` is the cursor now committed. */
  observeRead(after: string, committed: string, entries: readonly RawEntry[]): void {
    if (entries.length === 0) {
      // Nothing after `after`: the head is there, and what waits (if anything) is in flight.
      this.#head = after;
      if (after === committed) this.#events = 0;
      return;
    }
    if (after === committed && this.#next === undefined) this.#next = entries[0]!.id;
    let added = 0;
    for (let i = entries.length - 1; i >= 0; i--) {
      if (compareStreamIds(entries[i]!.id, this.#head) <= 0) break;
      added += 1;
    }
    if (added > 0) {
      this.#events += added;
      this.#head = entries[entries.length - 1]!.id;
    }
  }

  /** A batch of `read` entries committed up to `cursor`; `next` is the oldest still in flight. */
  observeCommit(cursor: string, read: number, next: string | undefined): void {
    if (this.#ordinal !== undefined) this.#ordinal += read;
    this.#events = compareStreamIds(cursor, this.#head) >= 0 ? 0 : Math.max(1, this.#events - read);
    this.#next = this.#events === 0 ? undefined : next;
  }

  /** The first entry after the committed cursor, found by a probe. */
  observeNext(id: string | undefined): void {
    this.#next = id;
    if (id === undefined) this.#events = 0;
  }

  /** The cursor jumped (a gap's reset, a resync): nothing is known until the next XINFO. */
  reset(): void {
    this.#ordinal = undefined;
    this.#events = 0;
    this.#next = undefined;
    this.#head = STREAM_START;
  }
}
