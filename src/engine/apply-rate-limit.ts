/**
 * The node-wide apply rate limit (`hot_path.rate_limit_per_sec`, `rate_limit_burst`): one token
 * bucket that every peer's tailer draws from, so N peers together stay within it, as the seed's
 * limiter does; it protects the local store from a thundering herd however many peers catch up
 * at once. A reload that changes the rate starts a new, full bucket.
 */
import type { ResolvedHotPath } from '../config/types.js';
import { TokenBucket } from './token-bucket.js';

/** The one apply-rate bucket of a node. */
export class ApplyRateLimit {
  readonly #settings: () => ResolvedHotPath;
  readonly #now: (() => number) | undefined;
  #bucket: TokenBucket | undefined;
  #key = '';

  /** @param now clock in ms, injectable for tests. @default Date.now */
  constructor(settings: () => ResolvedHotPath, now?: () => number) {
    this.#settings = settings;
    this.#now = now;
  }

  /** Takes `n` events' worth of tokens; returns how long to wait before applying them (ms). */
  reserve(n: number): number {
    const hot = this.#settings();
    if (!hot.rateLimitEnabled) return 0;
    const key = `${hot.rateLimitPerSec}/${hot.rateLimitBurst}`;
    if (this.#bucket === undefined || key !== this.#key) {
      this.#bucket = new TokenBucket({
        ratePerSec: hot.rateLimitPerSec,
        burst: hot.rateLimitBurst,
        ...(this.#now !== undefined ? { now: this.#now } : {}),
      });
      this.#key = key;
    }
    return this.#bucket.reserve(n);
  }
}
