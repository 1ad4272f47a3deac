/**
 * The lifecycle both tailers share (the single-stream {@link Tailer} and the cluster peer's
 * {@link ClusterTailer}): an explicit state machine, and the requests an operator or the engine
 * makes — pause, resume, resync, stop — taken up by the loop at safe points (between turns, never
 * while a read it would act on is in flight). Every wait of a turn is abortable by
 * {@link TailerLoop.waitSignal}, which a request (or stop) aborts.
 */
import { IllegalStateError } from '../errors.js';

/** Where a tailer's loop is. */
export type TailerState =
  /** Constructed; `start` not called. */
  | { readonly kind: 'created' }
  /** Waiting for the peer to be readable (connecting, circuit open). */
  | { readonly kind: 'waiting' }
  /** Reading a backlog. */
  | { readonly kind: 'catching-up' }
  /** Caught up: waiting for new entries. */
  | { readonly kind: 'live' }
  /** Paused by an operator: nothing read, lag still measured. */
  | { readonly kind: 'paused' }
  /** After a failure: reading again from the committed cursor once the delay is over. */
  | { readonly kind: 'backing-off'; readonly error: string }
  /** Stop requested: the batches in flight land. */
  | { readonly kind: 'stopping' }
  | { readonly kind: 'stopped' };

type StateKind = TailerState['kind'];
const RUNNING: readonly StateKind[] = ['waiting', 'catching-up', 'live', 'paused', 'backing-off'];
const TRANSITIONS: Readonly<Record<StateKind, readonly StateKind[]>> = {
  created: [...RUNNING, 'stopping'],
  waiting: [...RUNNING, 'stopping'],
  'catching-up': [...RUNNING, 'stopping'],
  live: [...RUNNING, 'stopping'],
  paused: [...RUNNING, 'stopping'],
  'backing-off': [...RUNNING, 'stopping'],
  stopping: ['stopped'],
  stopped: [],
};

/** What a tailer does in each turn of its loop. */
export interface TailerTurns {
  /** Reads (and hands on) what there is to read: one turn while running. */
  step(): Promise<void>;
  /** One turn while paused: measures the lag, then waits. */
  whilePaused(): Promise<void>;
  /** After `step` or `whilePaused` threw: settles what is in flight, then waits. */
  backOff(error: unknown): Promise<void>;
  /** Forgets the cursors: the streams are read again from their start (a resync). */
  resetToStart(): Promise<void>;
  /** Waits for every batch in flight (the last step of stopping). */
  settle(): Promise<unknown>;
}

/** A tailer's state and its requests; see the module comment. */
export class TailerLoop {
  readonly #turns: TailerTurns;
  #state: TailerState = { kind: 'created' };
  /** Aborted by stop: ends every wait and read. */
  readonly #stop = new AbortController();
  /** Aborted to wake the loop from a wait when a request arrives (or stop); then renewed. */
  #wake = new AbortController();
  #loop: Promise<void> | undefined;
  #pauseRequested = false;
  #resyncs: { resolve: () => void; reject: (error: unknown) => void }[] = [];

  constructor(turns: TailerTurns) {
    this.#turns = turns;
  }

  get state(): TailerState {
    return this.#state;
  }

  /** True while an operator has the peer paused. */
  get paused(): boolean {
    return this.#pauseRequested;
  }

  /** Aborted once stop is asked for. */
  get stopSignal(): AbortSignal {
    return this.#stop.signal;
  }

  /** The signal of every wait in this turn of the loop: aborted by a request or by stop. */
  get waitSignal(): AbortSignal {
    return this.#wake.signal;
  }

  get stopping(): boolean {
    return this.#stop.signal.aborted;
  }

  /** True when a request waits for the loop (it then drops what it read meanwhile). */
  get requested(): boolean {
    return this.#resyncs.length > 0 || this.#pauseRequested || this.stopping;
  }

  /**
   * Moves to `next`.
   * @throws {IllegalStateError} for a transition the table does not allow.
   */
  enter(next: TailerState): void {
    const from = this.#state.kind;
    if (!TRANSITIONS[from].includes(next.kind)) {
      throw new IllegalStateError(`illegal tailer transition ${from} → ${next.kind}`);
    }
    this.#state = next;
  }

  /** Ends this turn's waits (a request, or the peer back). */
  wakeUp(): void {
    this.#wake.abort();
  }

  /** Starts the loop in the background. */
  start(): void {
    if (this.#state.kind !== 'created') return;
    this.enter({ kind: 'waiting' });
    this.#loop = this.#run();
  }

  /** Stops after the batches in flight are applied and committed. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.#state.kind === 'created') {
      this.enter({ kind: 'stopping' });
      this.enter({ kind: 'stopped' });
    }
    this.#stop.abort();
    this.#wake.abort();
    this.#rejectResyncs(new IllegalStateError('the tailer stopped before the resync'));
    await this.#loop;
  }

  pause(): void {
    this.#pauseRequested = true;
    this.wakeUp();
  }

  resume(): void {
    this.#pauseRequested = false;
    this.wakeUp();
  }

  /**
   * Forgets the cursors at the next safe point (at once when the loop never started).
   * @throws {IllegalStateError} when the tailer stopped first; what committing the cursors throws.
   */
  async resync(): Promise<void> {
    if (this.#state.kind === 'stopping' || this.#state.kind === 'stopped') {
      throw new IllegalStateError(`cannot resync a tailer that is ${this.#state.kind}`);
    }
    if (this.#loop === undefined) {
      // Not tailing (hot path off): nothing is in flight, so reset at once.
      await this.#turns.resetToStart();
      return;
    }
    await new Promise<void>((resolve, reject) => {
      this.#resyncs.push({ resolve, reject });
      this.wakeUp();
    });
  }

  async #run(): Promise<void> {
    while (!this.stopping) {
      // A safe point: requests are taken here; one made later wakes this turn's waits.
      if (this.#wake.signal.aborted) this.#wake = new AbortController();
      try {
        if (this.#resyncs.length > 0) await this.#takeResyncs();
        else if (this.#pauseRequested) await this.#turns.whilePaused();
        else await this.#turns.step();
      } catch (error) {
        if (this.stopping) break;
        await this.#turns.backOff(error);
      }
    }
    this.enter({ kind: 'stopping' });
    this.#rejectResyncs(new IllegalStateError('the tailer stopped before the resync'));
    await this.#turns.settle();
    this.enter({ kind: 'stopped' });
  }

  async #takeResyncs(): Promise<void> {
    const resyncs = this.#resyncs;
    this.#resyncs = [];
    try {
      await this.#turns.resetToStart();
      for (const r of resyncs) r.resolve();
    } catch (error) {
      for (const r of resyncs) r.reject(error);
    }
  }

  #rejectResyncs(error: Error): void {
    const resyncs = this.#resyncs;
    this.#resyncs = [];
    for (const r of resyncs) r.reject(error);
  }
}
