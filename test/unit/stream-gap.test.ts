import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { decodeBatch } from '../../src/engine/batch.js';
import { Dropped } from '../../src/engine/bounded-resp.js';
import { entriesOf } from '../../src/engine/peer-stream.js';
import {
  detectGap,
  estimateLagEvents,
  parseStreamInfo,
  type StreamInfo,
} from '../../src/engine/stream-gap.js';
import { encodeCdcEntry } from '../../src/codec/cdc.js';
import type { StoredRecord } from '../../src/model/record.js';

const none = { entriesAdded: null };

function info(partial: Partial<StreamInfo>): StreamInfo {
  return { length: 0, lastGeneratedId: '0-0', ...partial };
}

describe('gap detection', () => {
  it('sees no gap for a reader at the head of an untrimmed stream', () => {
    const i = info({
      length: 10,
      entriesAdded: 10,
      lastGeneratedId: '100-9',
      firstEntryId: '100-0',
      lastEntryId: '100-9',
    });
    assert.deepEqual(detectGap('100-4', i, { entriesAdded: 10 }), { gap: false });
    assert.deepEqual(detectGap('0-0', i, none), { gap: false });
  });

  it('sees no gap when trimming removed only what was already read', () => {
    const i = info({
      length: 5,
      entriesAdded: 10,
      lastGeneratedId: '100-9',
      firstEntryId: '100-5',
      lastEntryId: '100-9',
    });
    assert.deepEqual(detectGap('100-4', i, none), { gap: false });
    assert.deepEqual(detectGap('100-7', i, none), { gap: false });
  });

  it('reports entries trimmed between the cursor and the first entry, resuming before the first', () => {
    const i = info({
      length: 5,
      entriesAdded: 10,
      lastGeneratedId: '100-9',
      firstEntryId: '100-5',
      lastEntryId: '100-9',
    });
    const v = detectGap('100-2', i, none);
    assert.equal(v.gap, true);
    assert.ok(v.gap && v.kind === 'trimmed' && v.resetTo === '100-4');
    // After resetting there, the same stream is no longer a gap.
    assert.deepEqual(detectGap('100-4', i, none), { gap: false });
  });

  it('reports a stream trimmed to nothing past the cursor (XTRIM MAXLEN 0)', () => {
    const i = info({ length: 0, entriesAdded: 10, lastGeneratedId: '100-9' });
    const v = detectGap('100-3', i, none);
    assert.ok(v.gap && v.kind === 'trimmed' && v.resetTo === '100-9');
    assert.deepEqual(detectGap('100-9', i, none), { gap: false });
  });

  it('treats a fresh cursor on a trimmed stream as missing history', () => {
    const i = info({
      length: 5,
      entriesAdded: 10,
      lastGeneratedId: '100-9',
      firstEntryId: '100-5',
    });
    const v = detectGap('0-0', i, none);
    assert.ok(v.gap && v.kind === 'trimmed');
  });

  it('reports XDEL past the cursor once', () => {
    const i = info({
      length: 9,
      entriesAdded: 10,
      lastGeneratedId: '100-9',
      firstEntryId: '100-0',
      maxDeletedEntryId: '100-6',
    });
    const v = detectGap('100-3', i, none);
    assert.ok(v.gap && v.kind === 'trimmed' && v.resetTo === '100-3');
    assert.deepEqual(
      detectGap('100-3', i, { entriesAdded: null, acknowledgedDeletedId: '100-6' }),
      { gap: false },
    );
  });

  it('reports a stream that is gone, went backwards, or was re-created', () => {
    assert.ok(detectGap('100-3', undefined, none).gap);
    assert.deepEqual(detectGap('0-0', undefined, none), { gap: false });
    const behind = info({
      length: 1,
      entriesAdded: 1,
      lastGeneratedId: '50-0',
      firstEntryId: '50-0',
    });
    const v = detectGap('100-3', behind, none);
    assert.ok(v.gap && v.kind === 'recreated' && v.resetTo === '0-0');
    const recreated = info({
      length: 3,
      entriesAdded: 3,
      lastGeneratedId: '200-2',
      firstEntryId: '200-0',
    });
    const w = detectGap('100-3', recreated, { entriesAdded: 40 });
    assert.ok(w.gap && w.kind === 'recreated');
  });

  it('reports a re-created stream that never lost an entry but does not hold the cursor', () => {
    const fresh = info({
      length: 1,
      entriesAdded: 1,
      lastGeneratedId: '200-0',
      firstEntryId: '200-0',
    });
    const v = detectGap('100-3', fresh, none);
    assert.ok(v.gap && v.kind === 'recreated' && v.resetTo === '0-0');
    const empty = info({ length: 0, entriesAdded: 0, lastGeneratedId: '0-0' });
    assert.ok(detectGap('100-3', empty, none).gap);
    // The same stream, holding the cursor's entry: no gap.
    const same = info({
      length: 5,
      entriesAdded: 5,
      lastGeneratedId: '100-4',
      firstEntryId: '100-0',
    });
    assert.deepEqual(detectGap('100-3', same, none), { gap: false });
  });

  it('reads XINFO replies in RESP2 and RESP3 shapes', () => {
    const resp3 = {
      length: 2,
      'last-generated-id': '5-1',
      'max-deleted-entry-id': '0-0',
      'entries-added': 2,
      'first-entry': ['5-0', ['op', 'PUT']],
      'last-entry': ['5-1', ['op', 'DEL']],
    };
    const resp2 = Object.entries(resp3).flat();
    for (const reply of [resp3, resp2]) {
      assert.deepEqual(parseStreamInfo(reply), {
        length: 2,
        lastGeneratedId: '5-1',
        maxDeletedEntryId: '0-0',
        entriesAdded: 2,
        firstEntryId: '5-0',
        lastEntryId: '5-1',
      });
    }
  });

  it('estimates the events behind, exactly 0 at the head', () => {
    const i = info({
      length: 100,
      lastGeneratedId: '1100-0',
      firstEntryId: '1000-0',
      lastEntryId: '1100-0',
    });
    assert.equal(estimateLagEvents('1100-0', i), 0);
    assert.equal(estimateLagEvents('0-0', i), 100);
    const mid = estimateLagEvents('1050-0', i);
    assert.ok(mid > 30 && mid < 70, String(mid));
  });
});

describe('batch decoding', () => {
  const rec = (key: string, updatedAt: number, origin = 'node-a'): StoredRecord => ({
    key,
    content: Buffer.from(`{"at":${updatedAt}}`),
    contentHash: '',
    contentType: 'json',
    updatedAt,
    version: 1,
    origin,
    deleted: false,
  });
  const entry = (id: string, r: StoredRecord) => {
    const fields = encodeCdcEntry({ ...r, contentHash: sha256Hex(r.content) });
    return { id, fields };
  };

  it('coalesces per key to the LWW maximum, skips own events, quarantines corrupt ones', () => {
    const entries = [
      entry('1-0', rec('k1', 10)),
      entry('1-1', rec('k1', 30)),
      entry('1-2', rec('k1', 20)),
      entry('1-3', rec('k2', 5, 'node-b')),
      {
        id: '1-4',
        fields: [Buffer.from('op'), Buffer.from('MERGE'), Buffer.from('key'), Buffer.from('x')],
      },
    ];
    const batch = decodeBatch(entries, 'node-a', 'node-b', {
      maxItemBytes: 1 << 20,
      lazyContent: false,
    });
    assert.equal(batch.read, 5);
    assert.equal(batch.lastId, '1-4');
    assert.equal(batch.ownOrigin, 1);
    assert.equal(batch.coalesced, 2);
    assert.deepEqual(
      batch.records.map((r) => [r.key, r.updatedAt]),
      [['k1', 30]],
    );
    assert.deepEqual(
      batch.quarantined.map((q) => [q.id, q.reason]),
      [['1-4', 'unknown_op']],
    );
  });

  it('reads entries from XREAD and XRANGE replies, a value left out as its size', () => {
    const fields = [Buffer.from('op'), Buffer.from('DEL')];
    const xrange = [[Buffer.from('1-0'), fields]];
    assert.deepEqual(entriesOf(xrange, 1, 1024), [{ id: '1-0', fields }]);
    assert.deepEqual(entriesOf([[Buffer.from('cdc'), xrange]], 3, 1024), [{ id: '1-0', fields }]);
    assert.deepEqual(entriesOf(null, 3, 1024), []);
    const [big] = entriesOf(
      [[Buffer.from('2-0'), [...fields, Buffer.from('data'), new Dropped(5000)]]],
      1,
      1024,
    );
    assert.deepEqual(
      big!.fields.map((f) => f.toString()),
      ['op', 'DEL', 'data_bytes', '5000'],
    );
    assert.match(big!.tooLarge ?? '', /data is 5000 bytes.*1024-byte limit/);
    const batch = decodeBatch([big!], 'node-a', 'node-b', {
      maxItemBytes: 1024,
      lazyContent: false,
    });
    assert.deepEqual(
      batch.quarantined.map((q) => [q.id, q.reason]),
      [['2-0', 'too_large']],
    );
    assert.equal(batch.lastId, '2-0');
  });
});

function sha256Hex(content: Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}
