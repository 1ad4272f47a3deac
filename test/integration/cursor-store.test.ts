import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { CursorStore } from '../../src/engine/cursor-store.js';
import { CursorStoreError } from '../../src/errors.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const writerScript = fileURLToPath(new URL('../fixtures/cursor-writer.ts', import.meta.url));

let dir: string;
let counter = 0;
const freshPath = (): string => join(dir, `case-${++counter}`, 'nested', 'cursors.db');

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'cursor-store-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Reads a pragma straight from the file, bypassing the store. */
function pragma(path: string, name: string): unknown {
  const db = new Database(path, { readonly: true });
  try {
    return db.pragma(name, { simple: true });
  } finally {
    db.close();
  }
}

describe('CursorStore', () => {
  it('commits, reads, lists and deletes cursors', () => {
    let now = 1_700_000_000_000;
    const store = CursorStore.open(freshPath(), { now: () => now });
    try {
      assert.equal(store.get('a'), undefined);
      assert.deepEqual(store.all(), []);
      store.commit('b', '5-0');
      store.commit('a', '1700000000000-3', { streamEpoch: 'epoch-1', entriesAdded: 42 });
      assert.deepEqual(store.get('a'), {
        peerId: 'a',
        stream: '',
        streamId: '1700000000000-3',
        streamEpoch: 'epoch-1',
        entriesAdded: 42,
        updatedAt: now,
      });
      assert.deepEqual(
        store.all().map((r) => [r.peerId, r.streamId]),
        [
          ['a', '1700000000000-3'],
          ['b', '5-0'],
        ],
      );

      now += 10;
      store.commit('a', '1700000000001-0');
      assert.deepEqual(
        store.get('a'),
        {
          peerId: 'a',
          stream: '',
          streamId: '1700000000001-0',
          streamEpoch: 'epoch-1',
          entriesAdded: 42,
          updatedAt: now,
        },
        'omitted extras keep their stored values',
      );
      store.commit('a', '1700000000002-0', { streamEpoch: null, entriesAdded: null });
      assert.equal(store.get('a')?.streamEpoch, null);
      assert.equal(store.get('a')?.entriesAdded, null);

      store.delete('a');
      store.delete('missing');
      assert.equal(store.get('a'), undefined);
      assert.deepEqual(
        store.all().map((r) => r.peerId),
        ['b'],
      );
    } finally {
      store.close();
    }
  });

  it('rejects malformed stream ids and extras with a CursorStoreError', () => {
    const store = CursorStore.open(freshPath());
    try {
      for (const bad of ['', '$', '>', '1-', '-1', 'abc', '1-2-3', ' 1-0']) {
        assert.throws(
          () => store.commit('a', bad),
          (err: unknown) =>
            err instanceof CursorStoreError &&
            err.code === 'CURSOR_STORE' &&
            err.message.includes('invalid stream id'),
          JSON.stringify(bad),
        );
      }
      assert.throws(() => store.commit('a', '1-0', { entriesAdded: -1 }), CursorStoreError);
      assert.throws(() => store.commit('', '1-0'), CursorStoreError);
      store.commit('a', '0');
      assert.equal(store.get('a')?.streamId, '0');
    } finally {
      store.close();
    }
  });

  it('commitMany is all or nothing', () => {
    const store = CursorStore.open(freshPath());
    try {
      store.commit('a', '1-0');
      store.commitMany([
        { peerId: 'a', streamId: '2-0' },
        { peerId: 'b', streamId: '3-0', streamEpoch: 'x', entriesAdded: 7 },
      ]);
      assert.deepEqual(
        store.all().map((r) => [r.peerId, r.streamId]),
        [
          ['a', '2-0'],
          ['b', '3-0'],
        ],
      );

      assert.throws(
        () =>
          store.commitMany([
            { peerId: 'a', streamId: '9-0' },
            { peerId: 'c', streamId: 'not-an-id' },
            { peerId: 'b', streamId: '9-0' },
          ]),
        CursorStoreError,
      );
      assert.deepEqual(
        store.all().map((r) => [r.peerId, r.streamId]),
        [
          ['a', '2-0'],
          ['b', '3-0'],
        ],
        'the row before the bad one was rolled back',
      );
    } finally {
      store.close();
    }
  });

  it('a reopened store sees what was committed', () => {
    const path = freshPath();
    const first = CursorStore.open(path);
    first.commit('a', '10-1', { streamEpoch: 'e', entriesAdded: 3 });
    first.commitMany([{ peerId: 'b', streamId: '11-0' }]);
    first.close();
    first.close();
    assert.throws(() => first.get('a'), CursorStoreError, 'a closed store refuses work');

    const second = CursorStore.open(path);
    try {
      assert.equal(second.path, path);
      assert.deepEqual(
        second.all().map((r) => [r.peerId, r.streamId, r.streamEpoch, r.entriesAdded]),
        [
          ['a', '10-1', 'e', 3],
          ['b', '11-0', null, null],
        ],
      );
    } finally {
      second.close();
    }
  });

  it('uses WAL by default and not when walMode is false', () => {
    const wal = freshPath();
    CursorStore.open(wal).close();
    assert.equal(pragma(wal, 'journal_mode'), 'wal');

    const plain = freshPath();
    CursorStore.open(plain, { walMode: false }).close();
    assert.equal(pragma(plain, 'journal_mode'), 'delete');

    // An existing WAL file is switched back when the option changes.
    CursorStore.open(wal, { walMode: false }).close();
    assert.equal(pragma(wal, 'journal_mode'), 'delete');
  });

  it('keeps a schema 1 file’s cursors as the peers’ single-stream rows, beside partition rows', () => {
    const path = join(dir, 'schema-1.db');
    const db = new Database(path);
    db.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      INSERT INTO meta VALUES ('schema_version', '1');
      CREATE TABLE cursors (peer_id TEXT PRIMARY KEY, stream_id TEXT NOT NULL,
        stream_epoch TEXT, entries_added INTEGER, updated_at INTEGER NOT NULL);
      INSERT INTO cursors VALUES ('a', '17-3', NULL, 9, 1000)`);
    db.close();
    const store = CursorStore.open(path);
    try {
      assert.equal(store.get('a')?.streamId, '17-3');
      assert.equal(store.get('a')?.entriesAdded, 9);
      store.commit('b', '5-0', { stream: '{0.4}:cdc' });
      store.commit('b', '6-0', { stream: '{1.2}:cdc' });
      store.commit('b', '7-0', { stream: '{0.4}:cdc' });
      assert.deepEqual(
        store.all().map((r) => [r.peerId, r.stream, r.streamId]),
        [
          ['a', '', '17-3'],
          ['b', '{0.4}:cdc', '7-0'],
          ['b', '{1.2}:cdc', '6-0'],
        ],
      );
      assert.equal(store.get('b'), undefined, 'a cluster peer has no single-stream row');
      store.delete('b');
      assert.deepEqual(
        store.all().map((r) => r.peerId),
        ['a'],
      );
    } finally {
      store.close();
    }
  });

  it('records a schema version and refuses a newer one', () => {
    const path = freshPath();
    CursorStore.open(path).close();
    const db = new Database(path);
    try {
      const version = db.pragma('user_version', { simple: true });
      assert.equal(version, 0, 'the version lives in the meta table, not user_version');
      const row = db
        .prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'schema_version'")
        .get();
      assert.equal(row?.value, '2');
      db.prepare("UPDATE meta SET value = '99' WHERE key = 'schema_version'").run();
    } finally {
      db.close();
    }
    assert.throws(
      () => CursorStore.open(path),
      (err: unknown) => err instanceof CursorStoreError && /version 99/.test(err.message),
    );
  });

  it('wraps open failures in a CursorStoreError naming the path', () => {
    const notADb = join(dir, 'garbage.db');
    writeFileSync(notADb, 'this is not a sqlite database, just some text long enough '.repeat(20));
    assert.throws(
      () => CursorStore.open(notADb),
      (err: unknown) =>
        err instanceof CursorStoreError && err.message.includes(notADb) && err.cause !== undefined,
    );
    const blocker = join(dir, 'a-file');
    writeFileSync(blocker, '');
    assert.throws(() => CursorStore.open(join(blocker, 'sub', 'c.db')), CursorStoreError);
  });
});

describe('CursorStore crash safety', () => {
  /** Runs the writer until it has reported `minCommits`, kills it with SIGKILL after a random delay, and returns the last sequence number it reported. */
  async function runAndKill(
    path: string,
    mode: 'wal' | 'nowal',
    minCommits: number,
  ): Promise<number> {
    const child = spawn(process.execPath, ['--import', 'tsx', writerScript, path, mode], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('exit', (_code, signal) => resolve(signal)),
    );
    const lastReported = (): number => {
      const lines = out.slice(0, out.lastIndexOf('\n')).split('\n');
      return Number(lines.at(-1) ?? 0) || 0;
    };
    const deadline = Date.now() + 30_000;
    await new Promise<void>((resolve, reject) => {
      child.stdout.setEncoding('utf8').on('data', (s: string) => {
        out += s;
        if (lastReported() >= minCommits) resolve();
      });
      child.on('exit', () => reject(new Error(`writer exited early: ${err}`)));
      const timer = setInterval(() => {
        if (Date.now() > deadline) {
          clearInterval(timer);
          reject(new Error(`writer too slow: ${lastReported()} commits, ${err}`));
        }
      }, 100);
      void exited.then(() => clearInterval(timer));
    }).catch((e: unknown) => {
      child.kill('SIGKILL');
      throw e;
    });
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 40)));
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    return lastReported();
  }

  for (const [mode, rounds] of [
    ['wal', 3],
    ['nowal', 1],
  ] as const) {
    it(`survives SIGKILL at a random moment (${mode})`, async () => {
      const path = freshPath();
      let previous = 0;
      for (let round = 0; round < rounds; round++) {
        const reported = await runAndKill(path, mode, previous + 200);
        const store = CursorStore.open(path, { walMode: mode === 'wal' });
        try {
          assert.equal(pragma(path, 'integrity_check'), 'ok');
          const solo = store.get('solo');
          const a = store.get('pair-a');
          const b = store.get('pair-b');
          assert.ok(solo && a && b, 'every cursor the writer committed is there');
          const seq = Number(solo.streamId.split('-')[0]);
          // The writer reports after each commit returns, so the store holds the last reported
          // value or the one after it (committed, killed before reporting).
          assert.ok(
            seq === reported || seq === reported + 1,
            `stored ${seq}, last reported ${reported}`,
          );
          assert.ok(seq >= previous, `cursor went backwards: ${seq} < ${previous}`);
          assert.equal(solo.entriesAdded, seq);
          const pairSeq = Number(a.streamId.split('-')[0]);
          assert.ok(pairSeq === seq || pairSeq === seq - 1, `pair ${pairSeq} vs solo ${seq}`);
          assert.equal(a.streamId, `${pairSeq}-1`);
          assert.equal(b.streamId, `${pairSeq}-2`, 'a commitMany is never half-applied');
          assert.equal(a.streamEpoch, `e${pairSeq}`);
          assert.equal(b.streamEpoch, `e${pairSeq}`);
          previous = seq;
        } finally {
          store.close();
        }
      }
    });
  }
});
