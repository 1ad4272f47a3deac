/** Options for {@link AimdBatchSizer}. */
export interface AimdOptions {
  /** Starting batch size, clamped into `[min, max]`. */
  readonly initial: number;
  /** Smallest batch size (the seed's `min_batch_size`). */
  readonly min: number;
  /** Largest batch size (the seed's `max_batch_size`). */
  readonly max: number;
  /** Additive increase after a full, fast batch. @default 10% of max, at least 1 */
  readonly increaseStep?: number;
  /** Multiplicative decrease after a slow or failed flush, in (0, 1). @default 0.5 */
  readonly decreaseFactor?: number;
  /** A flush slower than this counts as congestion, in ms. @default 200 */
  readonly targetLatencyMs?: number;
}

/** The outcome of one batch, reported to {@link AimdBatchSizer.record}. */
export interface AimdOutcome {
  /** The read returned as many entries as the current size (more are probably waiting). */
  readonly full: boolean;
  /** How long applying and flushing the batch took, in ms. */
  readonly flushMs: number;
  /** The flush succeeded. */
  readonly ok: boolean;
}

/**
 * Adaptive batch sizing (Additive Increase, Multiplicative Decrease), as in the seed's hot path.
 * @throws {RangeError} when `min`/`max` are not integers with `1 <= min <= max`, or another option is out of range.
 */
export class AimdBatchSizer {
  readonly #min: number;
  readonly #max: number;
  readonly #step: number;
  readonly #factor: number;
  readonly #targetMs: number;
  #size: number;

  constructor(options: AimdOptions) {
    const { min, max } = options;
    if (!Number.isSafeInteger(min) || min < 1) {
      throw new RangeError(`AIMD min must be an integer >= 1, got ${min}`);
    }
    if (!Number.isSafeInteger(max) || max < min) {
      throw new RangeError(`AIMD max must be an integer >= min (${min}), got ${max}`);
    }
    const step = options.increaseStep ?? Math.max(1, Math.round(max * 0.1));
    if (!Number.isSafeInteger(step) || step < 1) {
      throw new RangeError(`AIMD increaseStep must be an integer >= 1, got ${step}`);
    }
    const factor = options.decreaseFactor ?? 0.5;
    if (!(factor > 0 && factor < 1)) {
      throw new RangeError(`AIMD decreaseFactor must be within (0, 1), got ${factor}`);
    }
    const target = options.targetLatencyMs ?? 200;
    if (!(target >= 0)) {
      throw new RangeError(`AIMD targetLatencyMs must be >= 0, got ${target}`);
    }
    if (!Number.isFinite(options.initial)) {
      throw new RangeError(`AIMD initial must be a finite number, got ${options.initial}`);
    }
    this.#min = min;
    this.#max = max;
    this.#step = step;
    this.#factor = factor;
    this.#targetMs = target;
    this.#size = Math.min(max, Math.max(min, Math.round(options.initial)));
  }

  /** Current batch size, always an integer in `[min, max]`. */
  get size(): number {
    return this.#size;
  }

  /**
   * Reports one batch: a full batch flushed within target grows the size by the step, a slow flush or a failure multiplies it by the factor, anything else leaves it; returns the new size.
   */
  record(outcome: AimdOutcome): number {
    // NaN latency is treated as congestion: unknown is not "fast".
    const slow = !(outcome.flushMs <= this.#targetMs);
    if (!outcome.ok || slow) {
      this.#size = Math.max(this.#min, Math.floor(this.#size * this.#factor));
    } else if (outcome.full) {
      this.#size = Math.min(this.#max, this.#size + this.#step);
    }
    return this.#size;
  }
}
