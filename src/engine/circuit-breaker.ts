/** The three states of a {@link CircuitBreaker}. */
export type CircuitState = 'closed' | 'half-open' | 'open';

/** Options for {@link CircuitBreaker}. */
export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit (the seed's `circuit_failure_threshold`). */
  readonly failureThreshold: number;
  /** How long an open circuit stays open before a trial call, in ms (the seed's `circuit_reset_timeout_sec`). */
  readonly resetTimeoutMs: number;
  /** Clock in ms, injectable for tests. @default Date.now */
  readonly now?: () => number;
  /** Called on every state change, e.g. to update the `replication_peer_circuit_state` gauge. */
  readonly onTransition?: (from: CircuitState, to: CircuitState) => void;
}

const STATE_CODES = { closed: 0, 'half-open': 1, open: 2 } as const;

/**
 * A per-peer circuit breaker: closed until `failureThreshold` consecutive failures, then open for
 * `resetTimeoutMs`, then half-open letting one trial call through at a time.
 * @throws {RangeError} when `failureThreshold` is not a positive integer or `resetTimeoutMs` is negative.
 */
export class CircuitBreaker {
  readonly #threshold: number;
  readonly #resetTimeoutMs: number;
  readonly #now: () => number;
  readonly #onTransition: ((from: CircuitState, to: CircuitState) => void) | undefined;
  #state: CircuitState = 'closed';
  #failures = 0;
  #openedAt = 0;
  /** When the half-open trial was granted, or undefined when no trial is in flight. */
  #trialStartedAt: number | undefined;

  constructor(options: CircuitBreakerOptions) {
    if (!Number.isSafeInteger(options.failureThreshold) || options.failureThreshold < 1) {
      throw new RangeError(
        `circuit failureThreshold must be an integer >= 1, got ${options.failureThreshold}`,
      );
    }
    if (!Number.isFinite(options.resetTimeoutMs) || options.resetTimeoutMs < 0) {
      throw new RangeError(
        `circuit resetTimeoutMs must be a finite number >= 0, got ${options.resetTimeoutMs}`,
      );
    }
    this.#threshold = options.failureThreshold;
    this.#resetTimeoutMs = options.resetTimeoutMs;
    this.#now = options.now ?? Date.now;
    this.#onTransition = options.onTransition;
  }

  /** Current state; an open circuit whose reset timeout has elapsed reports (and transitions to) half-open. */
  get state(): CircuitState {
    if (this.#state === 'open' && this.#now() - this.#openedAt >= this.#resetTimeoutMs) {
      this.#transition('half-open');
    }
    return this.#state;
  }

  /** Consecutive failures counted while closed. */
  get failures(): number {
    return this.#failures;
  }

  /** 0 closed, 1 half-open, 2 open (the seed's gauge encoding). */
  stateCode(): 0 | 1 | 2 {
    return STATE_CODES[this.state];
  }

  /**
   * True when a call may be attempted now: always when closed; when half-open, true once (the trial
   * call) until its outcome is recorded, or until a trial that never reported has been outstanding
   * for `resetTimeoutMs`, so a lost outcome cannot wedge the circuit.
   */
  canAttempt(): boolean {
    const state = this.state;
    if (state === 'closed') return true;
    if (state === 'open') return false;
    const now = this.#now();
    if (this.#trialStartedAt !== undefined && now - this.#trialStartedAt < this.#resetTimeoutMs) {
      return false;
    }
    this.#trialStartedAt = now;
    return true;
  }

  /** Records a successful call: a half-open circuit closes, and the failure count resets. */
  recordSuccess(): void {
    const state = this.state;
    // A late success from a call started before the circuit opened proves little; stay open.
    if (state === 'open') return;
    this.#failures = 0;
    this.#trialStartedAt = undefined;
    if (state === 'half-open') this.#transition('closed');
  }

  /** Records a failed call: the threshold-th consecutive failure opens the circuit, and a half-open failure re-opens it with a fresh timer. */
  recordFailure(): void {
    const state = this.state;
    if (state === 'open') return;
    this.#failures++;
    if (state === 'half-open' || this.#failures >= this.#threshold) {
      this.#open();
    }
  }

  /** ms until an open circuit becomes half-open (0 if not open). */
  msUntilHalfOpen(): number {
    if (this.state !== 'open') return 0;
    return Math.max(0, this.#openedAt + this.#resetTimeoutMs - this.#now());
  }

  #open(): void {
    this.#openedAt = this.#now();
    this.#trialStartedAt = undefined;
    this.#transition('open');
  }

  #transition(to: CircuitState): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    if (to === 'closed') this.#failures = 0;
    this.#onTransition?.(from, to);
  }
}
