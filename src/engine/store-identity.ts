/**
 * Notices that this node's own store was lost (SPEC §8): the store's `store:id` is read every
 * second, and written when absent. An id that vanished or changed means the Redis was flushed,
 * restarted without its data, or replaced; the engine then rebuilds from every peer at once.
 */
import type { Logger } from '../observability/logger.js';
import type { TombstoneStore } from './local-store.js';
import { sleep } from './backoff.js';
import { describeError } from '../redis/connect.js';

/** How often the store's identity is read. */
export const IDENTITY_CHECK_MS = 1000;

/** What the watch reports. */
export interface StoreIdentityEvents {
  /** The first read found no id: the store is new (a fresh node, or one lost while stopped). */
  readonly onNew: () => void;
  /** A later read found the id gone or changed: the store was lost while running. */
  readonly onLost: (reason: string) => void;
}

/** Reads the store's identity every {@link IDENTITY_CHECK_MS} until stopped. */
export class StoreIdentityWatch {
  readonly #store: TombstoneStore;
  readonly #events: StoreIdentityEvents;
  readonly #log: Logger;
  readonly #intervalMs: number;
  #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #id: string | undefined;

  constructor(
    store: TombstoneStore,
    events: StoreIdentityEvents,
    log: Logger,
    intervalMs = IDENTITY_CHECK_MS,
  ) {
    this.#store = store;
    this.#events = events;
    this.#log = log;
    this.#intervalMs = intervalMs;
  }

  /** Starts the checks (the first at once); idempotent. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops the checks. Idempotent. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
    this.#loop = undefined;
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      await this.check();
      await sleep(this.#intervalMs, signal);
    }
  }

  /** One check (exposed for tests); a store that does not answer is reported by its own check. */
  async check(): Promise<void> {
    let seen: { id: string; created: boolean };
    try {
      seen = await this.#store.identity();
    } catch (error) {
      this.#log.debug({ err: describeError(error) }, 'reading the local store identity failed');
      return;
    }
    const known = this.#id;
    this.#id = seen.id;
    if (known === undefined) {
      if (seen.created) this.#events.onNew();
      return;
    }
    if (seen.created)
      this.#events.onLost(
        'its store:id vanished: the store was flushed or restarted without its data',
      );
    else if (seen.id !== known) this.#events.onLost('its store:id changed: the store was replaced');
  }
}
