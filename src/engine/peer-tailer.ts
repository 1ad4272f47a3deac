/**
 * A peer's hot path before it is known whether the peer is a single instance or a Redis Cluster
 * (the config's `cluster`, else what the server reports on the link's first connection): once the
 * link knows, a {@link Tailer} (one stream, `cdc`) or a {@link ClusterTailer} (its partition
 * streams) takes over, with whatever was asked meanwhile (a pause, resyncs) handed on.
 */
import { STREAM_START } from '../codec/stream-id.js';
import { IllegalStateError } from '../errors.js';
import type { CursorStore } from './cursor-store.js';
import type { PeerTailer, TailerStatus } from './tailer.js';

/** Builds the tailer for the kind of peer found. */
export interface TailerFactory {
  /** Settles true for a cluster peer, false for a single instance. */
  readonly kind: Promise<boolean>;
  single(): PeerTailer;
  cluster(): PeerTailer;
}

/** The tailer of a peer of a kind not known yet; see the module comment. */
export class DeferredTailer implements PeerTailer {
  #delegate: PeerTailer | undefined;
  #started = false;
  #stopped = false;
  #paused = false;

  constructor(
    private readonly peerId: string,
    private readonly factory: TailerFactory,
    private readonly cursors: CursorStore,
  ) {}

  get paused(): boolean {
    return this.#paused;
  }

  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    void this.factory.kind.then((cluster) => {
      if (this.#stopped) return;
      const delegate = cluster ? this.factory.cluster() : this.factory.single();
      if (this.#paused) delegate.pause();
      this.#delegate = delegate;
      delegate.start();
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#delegate?.stop();
  }

  peerUp(): void {
    this.#delegate?.peerUp();
  }

  pause(): void {
    this.#paused = true;
    this.#delegate?.pause();
  }

  resume(): void {
    this.#paused = false;
    this.#delegate?.resume();
  }

  async resync(): Promise<void> {
    if (this.#stopped) throw new IllegalStateError('cannot resync a tailer that stopped');
    if (this.#delegate !== undefined) return this.#delegate.resync();
    // Nothing reads yet: forgetting every cursor of the peer is the whole resync.
    this.cursors.delete(this.peerId);
  }

  status(): TailerStatus {
    if (this.#delegate !== undefined) return this.#delegate.status();
    return {
      state: this.#stopped ? 'stopped' : this.#started ? 'waiting' : 'created',
      cursor: this.cursors.get(this.peerId)?.streamId ?? STREAM_START,
      lagMs: 0,
      lagEvents: 0,
      catchingUp: true,
      paused: this.#paused,
      backpressured: false,
      lastEventAt: null,
      lastError: undefined,
      lastCommitAt: null,
      commitFailures: 0,
    };
  }
}
