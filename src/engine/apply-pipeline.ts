/**
 * Applying a peer's batches to the local store and committing the cursor after each (SPEC §4,
 * §8 "each path on its own"). Up to {@link APPLIES_IN_FLIGHT} batches are applied at once, and
 * committed strictly in order. The one rule lives here, where no caller can skip it: a batch is
 * accepted only if it starts exactly where the pipeline stands, and any failure of any batch (its
 * apply or its cursor commit) moves that position back to the committed cursor, so the next batch
 * accepted is a re-read of the first entry not applied. Nothing commits past an unapplied entry.
 */
import type { DecodedBatch } from './batch.js';

/**
 * Batches applied at once (pipelined on the local connection). Three keep the local Redis busy
 * while this process decodes: against two, a 200k backlog replicated 9-12% faster at batch_size
 * 100 (3 of 3 alternating runs) and no slower at 500; four gained nothing more.
 */
export const APPLIES_IN_FLIGHT = 3;

/** A decoded batch and where in the stream it was read. */
export interface PendingBatch {
  /** The cursor it was read after: it is accepted only if the pipeline stands there. */
  readonly after: string;
  /** Id of its first entry (the oldest entry waiting, while it is not committed). */
  readonly firstId: string;
  readonly batch: DecodedBatch;
}

/** What the pipeline needs from its owner. */
export interface ApplyPipelineOptions<Stats> {
  /** The cursor last committed (where reading starts). */
  readonly committed: string;
  /** @default APPLIES_IN_FLIGHT */
  readonly maxInFlight?: number;
  /** Applies a batch to the local store; throws when it was not (wholly) applied. */
  readonly apply: (batch: DecodedBatch) => Promise<Stats>;
  /** Persists the cursor after `batch`; throws when it could not. */
  readonly commit: (cursor: string) => void;
  /** A batch was applied and its cursor committed, `flushMs` after Redis could start on it. */
  readonly onCommitted: (batch: DecodedBatch, stats: Stats, flushMs: number) => void;
  /** A batch failed (applying it, or committing its cursor); it will be read again. */
  readonly onFailed: (batch: DecodedBatch, error: unknown, flushMs: number) => void;
  /** Monotonic ms clock. @default performance.now */
  readonly now?: () => number;
}

/** Applies and commits a peer's batches in stream order; see the file comment for its rule. */
export class ApplyPipeline<Stats> {
  readonly #options: ApplyPipelineOptions<Stats>;
  readonly #max: number;
  readonly #now: () => number;
  #committed: string;
  /** Where the next batch must start: the end of the last batch accepted. */
  #position: string;
  /** Each accepted batch's outcome, oldest first: true once applied and committed. */
  #inflight: Promise<boolean>[] = [];
  /** The first entry ids of the batches accepted and not committed, oldest first. */
  #uncommitted: string[] = [];
  /** A batch failed since the pipeline last settled. */
  #failed = false;
  /** A failure was settled since {@link nextPosition} last reported one. */
  #rewound = false;

  constructor(options: ApplyPipelineOptions<Stats>) {
    this.#options = options;
    this.#max = options.maxInFlight ?? APPLIES_IN_FLIGHT;
    this.#now = options.now ?? (() => performance.now());
    this.#committed = options.committed;
    this.#position = options.committed;
  }

  /** The cursor last committed. */
  get committed(): string {
    return this.#committed;
  }

  /** The first entry not yet committed, when a batch holding it is in flight (and not failed). */
  get oldestPendingId(): string | undefined {
    return this.#uncommitted[0];
  }

  /**
   * Where the next batch must be read after. After a failure it first waits for every batch in
   * flight, so it returns the committed cursor; `rewound` says a failure moved the position back
   * since the last call (the caller backs off before reading again).
   */
  async nextPosition(): Promise<{ readonly cursor: string; readonly rewound: boolean }> {
    if (this.#failed) await this.settle();
    const rewound = this.#rewound;
    this.#rewound = false;
    return { cursor: this.#position, rewound };
  }

  /**
   * Accepts `pending` if it starts where the pipeline stands, once a slot is free; false when it
   * does not follow on (a failure moved the position back while it was read): it is dropped.
   */
  async submit(pending: PendingBatch): Promise<boolean> {
    if (this.#failed) await this.settle();
    while (pending.after === this.#position && this.#inflight.length >= this.#max) {
      await this.#inflight.shift();
      if (this.#failed) await this.settle();
    }
    if (pending.after !== this.#position) return false;
    this.#position = pending.batch.lastId;
    const previous = this.#inflight.at(-1);
    this.#uncommitted.push(pending.firstId);
    this.#inflight.push(this.#run(pending.batch, previous));
    return true;
  }

  /**
   * Waits for every batch in flight. True when all of them were committed; after a failure the
   * position is the committed cursor again.
   */
  async settle(): Promise<boolean> {
    while (this.#inflight.length > 0) {
      const inflight = this.#inflight;
      this.#inflight = [];
      await Promise.all(inflight);
    }
    this.#uncommitted = [];
    const ok = !this.#failed;
    if (!ok) this.#rewound = true;
    this.#failed = false;
    this.#position = this.#committed;
    return ok;
  }

  /**
   * Moves the cursor to `cursor` and commits it (a gap's reset, a resync), after every batch in
   * flight has settled.
   * @throws what the commit throws; the position is then the committed cursor, unchanged.
   */
  async reset(cursor: string): Promise<void> {
    await this.settle();
    this.#options.commit(cursor);
    this.#committed = cursor;
    this.#position = cursor;
  }

  async #run(batch: DecodedBatch, previous: Promise<boolean> | undefined): Promise<boolean> {
    // The flush is timed from when Redis can start on it: after the batch before it.
    let started = this.#now();
    void previous?.then(() => {
      started = Math.max(started, this.#now());
    });
    let stats: Stats;
    try {
      stats = await this.#options.apply(batch);
    } catch (error) {
      return this.#fail(batch, error, started);
    }
    // A batch after a failed one may already be applied (LWW makes that harmless), but it must
    // not move the cursor past the entries that were not.
    if (previous !== undefined && !(await previous)) return false;
    const flushMs = this.#now() - started;
    try {
      this.#options.commit(batch.lastId);
    } catch (error) {
      return this.#fail(batch, error, started);
    }
    this.#committed = batch.lastId;
    this.#uncommitted.shift();
    this.#options.onCommitted(batch, stats, flushMs);
    return true;
  }

  #fail(batch: DecodedBatch, error: unknown, started: number): false {
    this.#failed = true;
    this.#options.onFailed(batch, error, this.#now() - started);
    return false;
  }
}
