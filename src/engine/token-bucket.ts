/** Options for {@link TokenBucket}. */
export interface TokenBucketOptions {
  /** Sustained rate in tokens per second (the seed's `rate_limit_per_sec`). */
  readonly ratePerSec: number;
  /** Capacity: tokens that may be spent at once above the sustained rate (the seed's `rate_limit_burst`). */
  readonly burst: number;
  /** Clock in ms, injectable for tests. @default Date.now */
  readonly now?: () => number;
}

/**
 * A token bucket that starts full, refills continuously at `ratePerSec` up to `burst`, and can go
 * into debt so a caller of {@link TokenBucket.reserve} learns how long to wait.
 * @throws {RangeError} when `ratePerSec` or `burst` is not a positive finite number.
 */
export class TokenBucket {
  readonly #ratePerMs: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #last: number;

  constructor(options: TokenBucketOptions) {
    if (!Number.isFinite(options.ratePerSec) || options.ratePerSec <= 0) {
      throw new RangeError(`token bucket ratePerSec must be > 0, got ${options.ratePerSec}`);
    }
    if (!Number.isFinite(options.burst) || options.burst <= 0) {
      throw new RangeError(`token bucket burst must be > 0, got ${options.burst}`);
    }
    this.#ratePerMs = options.ratePerSec / 1000;
    this.#burst = options.burst;
    this.#now = options.now ?? Date.now;
    this.#tokens = options.burst;
    this.#last = this.#now();
  }

  /** Tokens available now (refilled); negative while in debt after {@link TokenBucket.reserve}. */
  get available(): number {
    this.#refill();
    return this.#tokens;
  }

  /**
   * Takes `n` tokens (default 1) if that many are available now.
   * @throws {RangeError} when `n` is negative or not finite.
   */
  tryTake(n = 1): boolean {
    checkCount(n);
    this.#refill();
    if (this.#tokens < n) return false;
    this.#tokens -= n;
    return true;
  }

  /**
   * Takes `n` tokens, going into debt if needed, and returns how many ms the caller must wait before proceeding so the sustained rate holds (0 if none); `n` may exceed `burst`.
   * @throws {RangeError} when `n` is negative or not finite.
   */
  reserve(n: number): number {
    checkCount(n);
    this.#refill();
    this.#tokens -= n;
    if (this.#tokens >= 0) return 0;
    return Math.ceil(-this.#tokens / this.#ratePerMs);
  }

  #refill(): void {
    const now = this.#now();
    // A clock that steps backwards refills nothing rather than draining the bucket.
    if (now > this.#last) {
      this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#last) * this.#ratePerMs);
      this.#last = now;
    }
  }
}

function checkCount(n: number): void {
  if (!Number.isFinite(n) || n < 0) {
    throw new RangeError(`token count must be a finite number >= 0, got ${n}`);
  }
}
