import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { CursorStoreError } from '../errors.js';

/**
 * The stream name of a single-instance peer's one cursor: its row from before streams were part
 * of the key (schema 1) keeps it, so existing cursor files stay valid.
 */
export const PEER_STREAM = '';

/** One persisted stream cursor: a peer's (single instance), or one partition stream's of a peer. */
export interface CursorRow {
  /** The peer's node id. */
  readonly peerId: string;
  /** The stream it is a position in: {@link PEER_STREAM}, or a cluster peer's partition stream key. */
  readonly stream: string;
  /** The last stream id applied from that peer. */
  readonly streamId: string;
  /** Opaque identity of the peer's stream (epoch), null when unknown. */
  readonly streamEpoch: string | null;
  /** XINFO entries-added seen with this cursor, null when unknown. */
  readonly entriesAdded: number | null;
  /** When the cursor was written, in ms since the epoch. */
  readonly updatedAt: number;
}

/** Options for {@link CursorStore.open}. */
export interface CursorStoreOptions {
  /** Use WAL journaling with synchronous=NORMAL (the seed's `cursor.wal_mode`); otherwise DELETE with synchronous=FULL. @default true */
  readonly walMode?: boolean;
  /** Clock for `updatedAt`, in ms, injectable for tests. @default Date.now */
  readonly now?: () => number;
}

/** One cursor to upsert; omitted `streamEpoch` / `entriesAdded` keep their stored value (null for a new row), null clears them. */
export interface CursorUpdate {
  readonly peerId: string;
  /** @default PEER_STREAM */
  readonly stream?: string;
  readonly streamId: string;
  readonly streamEpoch?: string | null;
  readonly entriesAdded?: number | null;
}

/** The schema version this code writes; {@link CursorStore.open} migrates older files up to it. */
export const CURSOR_SCHEMA_VERSION = 2;

const STREAM_ID = /^\d+(-\d+)?$/;

// Index i upgrades a file from version i to i + 1; each runs in the same transaction as its version bump.
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS cursors (
     peer_id TEXT PRIMARY KEY,
     stream_id TEXT NOT NULL,
     stream_epoch TEXT,
     entries_added INTEGER,
     updated_at INTEGER NOT NULL
   )`,
  // One cursor per (peer, stream): a cluster peer has one per partition stream. A peer's existing
  // row becomes its PEER_STREAM row.
  `CREATE TABLE cursors_v2 (
     peer_id TEXT NOT NULL,
     stream TEXT NOT NULL DEFAULT '',
     stream_id TEXT NOT NULL,
     stream_epoch TEXT,
     entries_added INTEGER,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (peer_id, stream)
   );
   INSERT INTO cursors_v2 (peer_id, stream, stream_id, stream_epoch, entries_added, updated_at)
     SELECT peer_id, '', stream_id, stream_epoch, entries_added, updated_at FROM cursors;
   DROP TABLE cursors;
   ALTER TABLE cursors_v2 RENAME TO cursors`,
];

interface RawRow {
  peer_id: string;
  stream: string;
  stream_id: string;
  stream_epoch: string | null;
  entries_added: number | null;
  updated_at: number;
}

interface UpsertParams {
  peer_id: string;
  stream: string;
  stream_id: string;
  stream_epoch: string | null;
  entries_added: number | null;
  set_epoch: 0 | 1;
  set_entries: 0 | 1;
  updated_at: number;
}

/**
 * Stream cursors in a SQLite file, one row per (peer, stream), each write its own transaction, so
 * a cursor survives kill -9 at any instant. Every error it throws is a {@link CursorStoreError}.
 */
export class CursorStore {
  /** The SQLite file this store reads and writes. */
  readonly path: string;
  readonly #db: Database.Database;
  readonly #now: () => number;
  readonly #get: Database.Statement<[string, string], RawRow>;
  readonly #all: Database.Statement<[], RawRow>;
  readonly #upsert: Database.Statement<[UpsertParams]>;
  readonly #delete: Database.Statement<[string]>;
  readonly #upsertMany: (rows: readonly CursorUpdate[]) => void;
  #closed = false;

  private constructor(path: string, db: Database.Database, now: () => number) {
    this.path = path;
    this.#db = db;
    this.#now = now;
    const columns = 'peer_id, stream, stream_id, stream_epoch, entries_added, updated_at';
    this.#get = db.prepare<[string, string], RawRow>(
      `SELECT ${columns} FROM cursors WHERE peer_id = ? AND stream = ?`,
    );
    this.#all = db.prepare<[], RawRow>(`SELECT ${columns} FROM cursors ORDER BY peer_id, stream`);
    this.#upsert = db.prepare<[UpsertParams]>(
      `INSERT INTO cursors (${columns})
       VALUES (@peer_id, @stream, @stream_id, @stream_epoch, @entries_added, @updated_at)
       ON CONFLICT (peer_id, stream) DO UPDATE SET
         stream_id = excluded.stream_id,
         stream_epoch = CASE WHEN @set_epoch THEN excluded.stream_epoch ELSE stream_epoch END,
         entries_added = CASE WHEN @set_entries THEN excluded.entries_added ELSE entries_added END,
         updated_at = excluded.updated_at`,
    );
    this.#delete = db.prepare<[string]>('DELETE FROM cursors WHERE peer_id = ?');
    this.#upsertMany = db.transaction((rows: readonly CursorUpdate[]) => {
      const updatedAt = this.#now();
      // Validated row by row inside the transaction: a bad row rolls back the ones before it.
      for (const row of rows) this.#upsert.run(toParams(row, updatedAt));
    });
  }

  /**
   * Opens (creating directories, file and schema as needed) with WAL + synchronous=NORMAL when `walMode`, and busy_timeout 5000.
   * @throws {CursorStoreError} with the path and the cause when the file cannot be opened, is not a cursor store, or has a newer schema.
   */
  static open(path: string, options: CursorStoreOptions = {}): CursorStore {
    const walMode = options.walMode ?? true;
    let db: Database.Database | undefined;
    try {
      if (path !== ':memory:' && !path.startsWith('file:')) {
        mkdirSync(dirname(path), { recursive: true });
      }
      db = new Database(path);
      db.pragma('busy_timeout = 5000');
      const mode = db.pragma(`journal_mode = ${walMode ? 'WAL' : 'DELETE'}`, { simple: true });
      if (path !== ':memory:' && String(mode).toLowerCase() !== (walMode ? 'wal' : 'delete')) {
        throw new Error(`could not set journal_mode (got ${String(mode)})`);
      }
      db.pragma(`synchronous = ${walMode ? 'NORMAL' : 'FULL'}`);
      migrate(db);
      return new CursorStore(path, db, options.now ?? Date.now);
    } catch (err) {
      db?.close();
      if (err instanceof CursorStoreError) throw err;
      throw new CursorStoreError(`cannot open cursor store ${path}: ${message(err)}`, {
        cause: err,
      });
    }
  }

  /** The cursor stored for `peerId`'s `stream`, or undefined when there is none. */
  get(peerId: string, stream: string = PEER_STREAM): CursorRow | undefined {
    return this.#run('read the cursor', () => {
      const row = this.#get.get(peerId, stream);
      return row === undefined ? undefined : fromRaw(row);
    });
  }

  /** Every stored cursor, ordered by peer id and stream. */
  all(): CursorRow[] {
    return this.#run('read cursors', () => this.#all.all().map(fromRaw));
  }

  /**
   * Upserts one cursor in its own transaction; omitted extras keep their stored value, null clears them.
   * @throws {CursorStoreError} when the stream id or an extra is invalid, or SQLite fails.
   */
  commit(
    peerId: string,
    streamId: string,
    extra: { stream?: string; streamEpoch?: string | null; entriesAdded?: number | null } = {},
  ): void {
    this.#run('commit the cursor', () => {
      this.#upsert.run(toParams({ ...extra, peerId, streamId }, this.#now()));
    });
  }

  /**
   * Upserts many cursors in one transaction: all of them or none.
   * @throws {CursorStoreError} when any row is invalid or SQLite fails; nothing is written then.
   */
  commitMany(rows: readonly CursorUpdate[]): void {
    if (rows.length === 0) return;
    this.#run('commit cursors', () => this.#upsertMany(rows));
  }

  /** Removes every cursor of `peerId` (each of its streams), if any. */
  delete(peerId: string): void {
    this.#run('delete the cursor', () => {
      this.#delete.run(peerId);
    });
  }

  /** Closes the database; calling it again does nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#db.close();
    } catch (err) {
      throw new CursorStoreError(`cannot close cursor store ${this.path}: ${message(err)}`, {
        cause: err,
      });
    }
  }

  #run<T>(what: string, fn: () => T): T {
    if (this.#closed) {
      throw new CursorStoreError(`cannot ${what}: cursor store ${this.path} is closed`);
    }
    try {
      return fn();
    } catch (err) {
      if (err instanceof CursorStoreError) throw err;
      throw new CursorStoreError(`cannot ${what} in ${this.path}: ${message(err)}`, {
        cause: err,
      });
    }
  }
}

function migrate(db: Database.Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
  const readVersion = (): number => {
    const row = db
      .prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'schema_version'")
      .get();
    return row === undefined ? 0 : Number(row.value);
  };
  const setVersion = db.prepare<[string]>(
    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
  );
  // IMMEDIATE: two processes opening a fresh file at once must not both migrate.
  db.transaction(() => {
    const version = readVersion();
    if (!Number.isSafeInteger(version) || version < 0) {
      throw new CursorStoreError(`cursor store schema version is not a number`);
    }
    if (version > CURSOR_SCHEMA_VERSION) {
      throw new CursorStoreError(
        `cursor store schema version ${version} is newer than this build supports (${CURSOR_SCHEMA_VERSION})`,
      );
    }
    for (let v = version; v < CURSOR_SCHEMA_VERSION; v++) {
      db.exec(MIGRATIONS[v]!);
      setVersion.run(String(v + 1));
    }
    // A file SQLite can only read (permissions, a read-only mount) opens without complaint and
    // fails at the first cursor commit: write once now, so it is found at start.
    try {
      db.prepare(
        "INSERT INTO meta (key, value) VALUES ('opened_at', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      ).run(String(Date.now()));
    } catch (err) {
      throw new Error(`cannot write to it (${message(err)})`, { cause: err });
    }
  }).immediate();
}

function toParams(row: CursorUpdate, updatedAt: number): UpsertParams {
  const { peerId, streamId, streamEpoch, entriesAdded } = row;
  const stream = row.stream ?? PEER_STREAM;
  if (typeof stream !== 'string') {
    throw new CursorStoreError(`invalid stream for peer ${peerId}: expected a string`);
  }
  if (typeof peerId !== 'string' || peerId.length === 0) {
    throw new CursorStoreError(
      `invalid peer id ${JSON.stringify(peerId)}: expected a non-empty string`,
    );
  }
  if (typeof streamId !== 'string' || !STREAM_ID.test(streamId)) {
    throw new CursorStoreError(
      `invalid stream id ${JSON.stringify(streamId)} for peer ${peerId}: expected <ms> or <ms>-<seq>`,
    );
  }
  if (streamEpoch !== undefined && streamEpoch !== null && typeof streamEpoch !== 'string') {
    throw new CursorStoreError(
      `invalid stream epoch for peer ${peerId}: expected a string or null`,
    );
  }
  if (
    entriesAdded !== undefined &&
    entriesAdded !== null &&
    !(Number.isSafeInteger(entriesAdded) && entriesAdded >= 0)
  ) {
    throw new CursorStoreError(
      `invalid entries-added ${String(entriesAdded)} for peer ${peerId}: expected an integer >= 0 or null`,
    );
  }
  return {
    peer_id: peerId,
    stream,
    stream_id: streamId,
    stream_epoch: streamEpoch ?? null,
    entries_added: entriesAdded ?? null,
    set_epoch: streamEpoch === undefined ? 0 : 1,
    set_entries: entriesAdded === undefined ? 0 : 1,
    updated_at: Math.trunc(updatedAt),
  };
}

function fromRaw(row: RawRow): CursorRow {
  return {
    peerId: row.peer_id,
    stream: row.stream,
    streamId: row.stream_id,
    streamEpoch: row.stream_epoch,
    entriesAdded: row.entries_added,
    updatedAt: row.updated_at,
  };
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
