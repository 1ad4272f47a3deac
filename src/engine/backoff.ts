/** Options for {@link Backoff}. */
export interface BackoffOptions {
  /** Delay before the first retry, in ms. */
  readonly baseMs: number;
  /** Upper bound of any delay, in ms. */
  readonly maxMs: number;
  /**
   * Fraction of the delay randomised, 0..1: a delay `d` becomes a value in `[d * (1 - jitter), d * (1 + jitter)]`, capped at `maxMs`.
   * @default 0.2
   */
  readonly jitter?: number;
  /** Source of randomness in `[0, 1)`, injectable for tests. @default Math.random */
  readonly random?: () => number;
}

// 2^1000 is finite, so `baseMs * 2^exp` never becomes Infinity * 0 = NaN.
const MAX_EXPONENT = 1000;
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Capped, jittered exponential backoff: `min(maxMs, baseMs * 2^attempts)` with ±jitter.
 * @throws {RangeError} when an option is negative, not finite, or `baseMs > maxMs`.
 */
export class Backoff {
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #jitter: number;
  readonly #random: () => number;
  #attempts = 0;

  constructor(options: BackoffOptions) {
    const { baseMs, maxMs, jitter = 0.2, random = Math.random } = options;
    if (!Number.isFinite(baseMs) || baseMs < 0) {
      throw new RangeError(`backoff baseMs must be a finite number >= 0, got ${baseMs}`);
    }
    if (!Number.isFinite(maxMs) || maxMs < baseMs) {
      throw new RangeError(`backoff maxMs must be finite and >= baseMs (${baseMs}), got ${maxMs}`);
    }
    if (!(jitter >= 0 && jitter <= 1)) {
      throw new RangeError(`backoff jitter must be within [0, 1], got ${jitter}`);
    }
    this.#baseMs = baseMs;
    this.#maxMs = maxMs;
    this.#jitter = jitter;
    this.#random = random;
  }

  /** Number of delays handed out since construction or the last {@link Backoff.reset}. */
  get attempts(): number {
    return this.#attempts;
  }

  /** Returns the delay before the next attempt (never negative, never above `maxMs`) and counts the attempt. */
  next(): number {
    const exp = Math.min(this.#attempts, MAX_EXPONENT);
    const nominal = Math.min(this.#maxMs, this.#baseMs * 2 ** exp);
    this.#attempts++;
    // A random() outside [0, 1) (a bad injected source) must not break the bounds.
    const r = Math.min(1, Math.max(0, this.#random()));
    const delay = nominal * (1 + this.#jitter * (2 * r - 1));
    return Number.isFinite(delay) ? Math.min(this.#maxMs, Math.max(0, delay)) : nominal;
  }

  /** Starts over from `baseMs`, e.g. after a successful attempt. */
  reset(): void {
    this.#attempts = 0;
  }
}

/**
 * Waits `ms`, or less when `signal` aborts (never rejects); resolves true if the full time elapsed, false if aborted.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(
      () => {
        signal?.removeEventListener('abort', onAbort);
        resolve(true);
      },
      // setTimeout fires at once for delays past 2^31 - 1 ms; clamp rather than spin.
      Math.min(MAX_TIMER_MS, Math.max(0, ms)),
    );
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
