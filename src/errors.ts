/**
 * Every error this package throws is a {@link ReplicationError} with a stable `code`.
 * Callers branch on the class or the code, never on the message text.
 */
export class ReplicationError extends Error {
  /** A stable, machine-readable code, e.g. `CONFIG_INVALID`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A configuration value is missing or invalid; `path` names the offending field. */
export class ConfigError extends ReplicationError {
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super('CONFIG_INVALID', path ? `${path}: ${message}` : message, options);
    this.path = path;
  }
}

/** A peer could not be reached or answered with an error; retried in the background. */
export class PeerUnavailableError extends ReplicationError {
  readonly peerId: string;
  constructor(peerId: string, message: string, options?: { cause?: unknown }) {
    super('PEER_UNAVAILABLE', `peer ${peerId}: ${message}`, options);
    this.peerId = peerId;
  }
}

/**
 * A peer's reply was over its bound (issue 19): refused, and nothing of it kept. With
 * `overBudget`, the bound was what a pipeline's shared budget had left: the command may succeed
 * sent on its own. Otherwise the same data in the peer's Redis will be refused again.
 */
export class PeerReplyTooLargeError extends ReplicationError {
  constructor(
    readonly command: string,
    readonly boundBytes: number,
    readonly overBudget = false,
  ) {
    super(
      'PEER_REPLY_TOO_LARGE',
      overBudget
        ? `the peer's ${command.toUpperCase()} reply is over what its pipeline had left (${boundBytes} bytes)`
        : `the peer's ${command.toUpperCase()} reply is over its ${boundBytes}-byte bound`,
    );
  }
}

/** The SQLite cursor store failed to read or persist a cursor. */
export class CursorStoreError extends ReplicationError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CURSOR_STORE', message, options);
  }
}

/** An operation was called in a lifecycle state that does not allow it. */
export class IllegalStateError extends ReplicationError {
  constructor(message: string) {
    super('ILLEGAL_STATE', message);
  }
}

/** Why a CDC entry was rejected. */
export type CorruptReason =
  | 'empty'
  | 'missing_op'
  | 'unknown_op'
  | 'missing_key'
  | 'bad_key'
  | 'missing_data'
  | 'bad_zstd'
  | 'too_large'
  | 'hash_mismatch'
  | 'bad_meta'
  | 'bad_field'
  | 'bad_id';

/** A CDC stream entry that cannot be parsed, decompressed or verified. */
export class CorruptEntryError extends ReplicationError {
  readonly reason: CorruptReason;
  constructor(reason: CorruptReason, message: string, options?: { cause?: unknown }) {
    super('CORRUPT_ENTRY', message, options);
    this.reason = reason;
  }
}

/**
 * A write the store took but fewer replicas confirmed than `store.wait_replicas` asks, within
 * `store.wait_timeout`: it is in the master, and may be lost if the master fails before its
 * replicas catch up. Not acknowledged; retrying writes it again (a new version).
 */
export class NotDurableError extends ReplicationError {
  /** Replicas that confirmed it. */
  readonly replicas: number;
  /** Replicas asked for. */
  readonly wanted: number;
  /** What was written (its record and CDC id), for a write; undefined for an apply. */
  readonly written: unknown;
  constructor(message: string, replicas: number, wanted: number, written?: unknown) {
    super('NOT_DURABLE', message);
    this.replicas = replicas;
    this.wanted = wanted;
    this.written = written;
  }
}

/** The local store refused or failed an operation (script error, bad input). */
export class StoreError extends ReplicationError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('STORE', message, options);
  }
}

/** Why a local write of one key was refused (nothing of it was written). */
export type WriteRefusal =
  /** The key, content, content type or traceparent is invalid, or the content too large. */
  | 'invalid'
  /** The stored record is dated more than `store.max_clock_skew` ahead of this node's clock. */
  | 'clock_skew'
  /** The next clock or version of the key would pass its bound (docs/PROTOCOL.md §1). */
  | 'clock_overflow';

/**
 * A local write of one key refused before anything of it was written: retrying the same write
 * fails the same way until the input is fixed (`invalid`) or the clock catches up (`clock_skew`).
 * A {@link StoreError}, so a caller that catches those catches these.
 */
export class WriteRefusedError extends StoreError {
  /** The key whose write was refused (as given, when it is not a valid key). */
  readonly key: string;
  readonly reason: WriteRefusal;
  constructor(key: string, reason: WriteRefusal, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.key = key;
    this.reason = reason;
  }
}
