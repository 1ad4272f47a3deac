/**
 * In-memory implementations of the engine's own interfaces, for unit tests of the hot path's loop:
 * a {@link LocalStore} that applies by LWW and fails on command, and a {@link PeerStream} holding
 * CDC entries. Not mocks of Redis: other implementations of interfaces the engine owns.
 */
import { encodeCdcEntry } from '../../src/codec/cdc.js';
import { compareStreamIds } from '../../src/codec/stream-id.js';
import { sha256Hex } from '../../src/codec/cdc.js';
import type { EntryRead, RawEntry } from '../../src/engine/batch.js';
import type { PeerStream } from '../../src/engine/peer-stream.js';
import type { StreamInfo } from '../../src/engine/stream-gap.js';
import { compareVersions, type StoredRecord } from '../../src/model/record.js';
import type { ApplyResult, DeadLetter, LocalStore } from '../../src/engine/local-store.js';
import { ZERO_HASH } from '../../src/store/merkle-hash.js';

/** A LocalStore in memory: LWW apply, and failures injected by the test. */
export class MemoryStore implements LocalStore {
  readonly records = new Map<string, StoredRecord>();
  /** Calls of apply, failed ones included. */
  applies = 0;
  /** Decides, per call (1-based), whether apply fails. */
  failWhen: (call: number) => boolean = () => false;
  /** False while the store asks for backpressure. */
  accepting = true;

  apply(records: readonly StoredRecord[]): Promise<ApplyResult[]> {
    this.applies += 1;
    if (this.failWhen(this.applies)) {
      return Promise.reject(new Error(`injected failure of apply #${this.applies}`));
    }
    const results: ApplyResult[] = records.map((record) => {
      const current = this.records.get(record.key);
      if (current !== undefined && compareVersions(record, current) <= 0) {
        return { key: record.key, outcome: 'duplicate' };
      }
      this.records.set(record.key, { ...record, content: record.content });
      return { key: record.key, outcome: 'applied' };
    });
    // Asynchronous like a real store: batches in flight overlap.
    return new Promise((resolve) => setImmediate(() => resolve(results)));
  }

  isCurrent(key: string, contentHash: string): Promise<boolean> {
    return Promise.resolve(this.records.get(key)?.contentHash === contentHash);
  }

  getRecords(keys: readonly string[]): Promise<StoredRecord[]> {
    return Promise.resolve(keys.flatMap((k) => this.records.get(k) ?? []));
  }

  shouldAcceptWrites(): Promise<boolean> {
    return Promise.resolve(this.accepting);
  }

  merkleRoot(): Promise<string> {
    return Promise.resolve(ZERO_HASH);
  }

  merkleChildren(): Promise<[]> {
    return Promise.resolve([]);
  }

  merkleLeaves(): Promise<[]> {
    return Promise.resolve([]);
  }

  merkleChildrenMany(paths: readonly string[]): Promise<[][]> {
    return Promise.resolve(paths.map(() => []));
  }

  merkleLeavesMany(buckets: readonly string[]): Promise<[][]> {
    return Promise.resolve(buckets.map(() => []));
  }

  refreshMerkle(): Promise<void> {
    return Promise.resolve();
  }

  /** Quarantined entries by peer, as a store keeps them in `dlq:<peer>`. */
  readonly quarantined = new Map<string, DeadLetter[]>();

  quarantine(peerId: string, entries: readonly DeadLetter[]): Promise<void> {
    this.quarantined.set(peerId, [...(this.quarantined.get(peerId) ?? []), ...entries]);
    return Promise.resolve();
  }

  readonly keepsFrames = false;
}

/** A peer's CDC stream in memory, with ids `<ms>-<seq>` from a clock the test controls. */
export class MemoryStream implements PeerStream {
  entries: RawEntry[] = [];
  #lastId = '0-0';
  #added = 0;
  #waiters: (() => void)[] = [];
  /** Time of the next entry id. */
  ms = 1_700_000_000_000;
  /**
   * When set, a read that would return more entries keeps only this many and says `cut` (as a
   * read that met hot_path.max_batch_bytes does).
   */
  cutAfter: number | undefined = undefined;
  /** Reads (range or tail) that fail, counted down. */
  failReads = 0;

  /** Appends a PUT of `key` from `origin`; returns its id. */
  put(key: string, value: string, origin = 'node-a'): string {
    const content = Buffer.from(JSON.stringify({ value }));
    const record: StoredRecord = {
      key,
      content,
      contentHash: sha256Hex(content),
      contentType: 'json',
      updatedAt: this.ms,
      version: 1,
      origin,
      deleted: false,
    };
    const [ms, seq] = this.#lastId.split('-').map(Number) as [number, number];
    const id = this.ms > ms ? `${this.ms}-0` : `${ms}-${seq + 1}`;
    this.#lastId = id;
    this.#added += 1;
    this.entries.push({ id, fields: encodeCdcEntry(record) });
    this.ms += 1;
    for (const wake of this.#waiters.splice(0)) wake();
    return id;
  }

  get lastId(): string {
    return this.#lastId;
  }

  ready(signal: AbortSignal): Promise<boolean> {
    return Promise.resolve(!signal.aborted);
  }

  range(cursor: string, count: number, signal: AbortSignal): Promise<EntryRead> {
    if (signal.aborted) return Promise.reject(new Error('aborted'));
    if (this.failReads > 0) {
      this.failReads -= 1;
      return Promise.reject(new Error('injected read failure'));
    }
    const after = this.entries.filter((e) => compareStreamIds(e.id, cursor) > 0);
    const cap = this.cutAfter;
    if (cap !== undefined && after.length > cap && count > cap) {
      return Promise.resolve({ entries: after.slice(0, cap), cut: true });
    }
    return Promise.resolve({ entries: after.slice(0, count), cut: false });
  }

  async tail(
    cursor: string,
    count: number,
    blockMs: number,
    signal: AbortSignal,
  ): Promise<EntryRead> {
    const now = await this.range(cursor, count, signal);
    if (now.entries.length > 0) return now;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(done, blockMs);
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(new Error('aborted'));
      };
      function done(): void {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        resolve();
      }
      this.#waiters.push(done);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    return this.range(cursor, count, signal);
  }

  info(): Promise<StreamInfo | undefined> {
    const first = this.entries[0]?.id;
    const last = this.entries.at(-1)?.id;
    return Promise.resolve({
      length: this.entries.length,
      lastGeneratedId: this.#lastId,
      entriesAdded: this.#added,
      maxDeletedEntryId: '0-0',
      ...(first !== undefined ? { firstEntryId: first } : {}),
      ...(last !== undefined ? { lastEntryId: last } : {}),
    });
  }
}
