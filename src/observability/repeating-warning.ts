/**
 * A warning about a condition that repeats while it lasts (a Redis down, a refresh failing every
 * 250 ms): logged once when it starts, at most once per `intervalMs` while it lasts (with the
 * count so far), and once when it ends ("back after 35.0s, 137 failures"). A flood of identical
 * lines hides everything else in the log and costs disk; this keeps the facts and drops the noise.
 */
import { formatDuration } from './health.js';
import type { Logger } from './logger.js';

/** Options of {@link RepeatingWarning}. */
export interface RepeatingWarningOptions {
  /** At most one "still failing" line per this long. @default 30_000 */
  readonly intervalMs?: number;
  /** The message of the line logged when it ends. @default `${message}: recovered` */
  readonly recovered?: string;
  /** Clock in ms, injectable for tests. @default Date.now */
  readonly now?: () => number;
}

type Fields = Readonly<Record<string, unknown>>;

/** One repeating condition's warnings; see the module comment. */
export class RepeatingWarning {
  readonly #log: Logger;
  readonly #message: string;
  readonly #recovered: string;
  readonly #intervalMs: number;
  readonly #now: () => number;
  #since: number | undefined;
  #failures = 0;
  #lastLoggedAt = 0;
  #lastError: string | undefined;

  constructor(log: Logger, message: string, options: RepeatingWarningOptions = {}) {
    this.#log = log;
    this.#message = message;
    this.#recovered = options.recovered ?? `${message}: recovered`;
    this.#intervalMs = options.intervalMs ?? 30_000;
    this.#now = options.now ?? Date.now;
  }

  /** True between the first {@link fail} and the next {@link ok}. */
  get active(): boolean {
    return this.#since !== undefined;
  }

  /** When the condition started (ms since the epoch), while it lasts. */
  get since(): number | undefined {
    return this.#since;
  }

  /** Failures since the condition started (0 when it is not active). */
  get failures(): number {
    return this.#failures;
  }

  /** The condition happened (again): logs only when it starts and once per interval. */
  fail(fields: Fields = {}): void {
    const now = this.#now();
    this.#failures += 1;
    if (typeof fields['err'] === 'string') this.#lastError = fields['err'];
    if (this.#since === undefined) {
      this.#since = now;
      this.#lastLoggedAt = now;
      this.#log.warn(fields, this.#message);
      return;
    }
    if (now - this.#lastLoggedAt < this.#intervalMs) return;
    this.#lastLoggedAt = now;
    this.#log.warn(
      { ...fields, failures: this.#failures, failing_ms: now - this.#since },
      `${this.#message} (still failing after ${formatDuration(now - this.#since)}, ${this.#failures} failures)`,
    );
  }

  /** The condition is over: logs one line if it was active, then forgets it. */
  ok(fields: Fields = {}): void {
    if (this.#since === undefined) return;
    const lasted = this.#now() - this.#since;
    const failures = this.#failures;
    this.#log.info(
      {
        ...fields,
        failures,
        failing_ms: lasted,
        ...(this.#lastError !== undefined && { last_err: this.#lastError }),
      },
      `${this.#recovered}: back after ${formatDuration(lasted)}, ${failures} failure${failures === 1 ? '' : 's'}`,
    );
    this.#since = undefined;
    this.#failures = 0;
    this.#lastError = undefined;
  }
}
