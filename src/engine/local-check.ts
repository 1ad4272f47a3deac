/**
 * The engine's periodic check of its own store (SPEC §8 "Health is the truth"): a
 * {@link LocalStore.ping} every second, bounded by a timeout, whose answer health reports as
 * `local` and which makes the node unhealthy while the store does not answer.
 */
import type { LocalHealth } from '../observability/health.js';
import type { Logger } from '../observability/logger.js';
import { RepeatingWarning } from '../observability/repeating-warning.js';
import type { LocalStore } from './local-store.js';
import { describeError } from '../redis/connect.js';

/** How often the local store is checked, and how long one check may take. */
export const LOCAL_CHECK_INTERVAL_MS = 1000;
export const LOCAL_CHECK_TIMEOUT_MS = 2000;

/** Checks a local store every second while started; see the module comment. */
export class LocalStoreCheck {
  readonly #store: LocalStore;
  readonly #onChange: (connected: boolean, error: string | null) => void;
  readonly #warning: RepeatingWarning;
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | undefined;
  #health: LocalHealth = {
    connected: null,
    since_ms: null,
    last_ok_at_ms: null,
    last_error: null,
    last_error_at_ms: null,
  };

  constructor(
    store: LocalStore,
    logger: Logger,
    onChange: (connected: boolean, error: string | null) => void,
  ) {
    this.#store = store;
    this.#onChange = onChange;
    this.#warning = new RepeatingWarning(logger, 'the local store does not answer', {
      recovered: 'the local store answers again',
    });
  }

  /** False when the store has no {@link LocalStore.ping}: its health is then unknown. */
  get checkable(): boolean {
    return this.#store.ping !== undefined;
  }

  /** The last answer, for health. */
  get health(): LocalHealth {
    return this.#health;
  }

  /** Checks now, then every second (a check in flight is never doubled). */
  start(): void {
    if (!this.checkable || this.#timer !== undefined) return;
    const tick = (): void => {
      this.#inFlight ??= this.#check().finally(() => {
        this.#inFlight = undefined;
      });
    };
    this.#timer = setInterval(tick, LOCAL_CHECK_INTERVAL_MS);
    this.#timer.unref();
    tick();
  }

  /** Stops checking; resolves once the check in flight settled. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#inFlight;
  }

  async #check(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.#store.ping?.(),
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${LOCAL_CHECK_TIMEOUT_MS} ms`)),
            LOCAL_CHECK_TIMEOUT_MS,
          );
        }),
      ]);
      this.#record(true, null);
    } catch (error) {
      this.#record(false, describeError(error));
    } finally {
      clearTimeout(timer);
    }
  }

  #record(connected: boolean, error: string | null): void {
    if (this.#timer === undefined) return; // stopped meanwhile
    const now = Date.now();
    const before = this.#health;
    const changed = before.connected !== connected;
    const sameError = error === before.last_error;
    this.#health = {
      connected,
      since_ms: changed ? now : before.since_ms,
      last_ok_at_ms: connected ? now : before.last_ok_at_ms,
      last_error: error,
      last_error_at_ms: sameError ? before.last_error_at_ms : error === null ? null : now,
    };
    if (connected) this.#warning.ok();
    else this.#warning.fail({ err: error });
    if (changed) this.#onChange(connected, error);
  }
}
