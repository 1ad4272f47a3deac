/**
 * The bounded RESP2 parser the hot path reads peers' streams with (issue 19): every reply split
 * into two chunks at every byte (and fed a byte at a time) parses the same; values over the bound
 * are skipped and kept as their size; the reply budget cuts after whole entries; an entry over its
 * own bound is truncated; the charge counts what is held; bad bytes are protocol errors.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BoundedRespParser,
  Dropped,
  RespError,
  RespProtocolError,
  Truncated,
  UNBOUNDED,
  type ParsedReply,
  type ReplyBounds,
  type RespValue,
} from '../../src/engine/bounded-resp.js';

function bulk(value: string | Buffer): string {
  const b = Buffer.isBuffer(value) ? value : Buffer.from(value);
  return `$${b.length}\r\n${b.toString('latin1')}\r\n`;
}

function arr(...items: string[]): string {
  return `*${items.length}\r\n${items.join('')}`;
}

/** An XRANGE entry `[id, [name, value, …]]`. */
function entry(id: string, ...fields: string[]): string {
  return arr(bulk(id), arr(...fields.map(bulk)));
}

/** Parses `chunks` in order; every reply completed. */
function parse(chunks: readonly Buffer[], bounds: ReplyBounds = UNBOUNDED): ParsedReply[] {
  const replies: ParsedReply[] = [];
  const parser = new BoundedRespParser(
    (r) => replies.push(r),
    () => bounds,
  );
  for (const c of chunks) parser.write(c);
  return replies;
}

/** The reply parsed from `wire` split in two at every byte, and a byte at a time: all the same. */
function parseEverySplit(wire: string, bounds: ReplyBounds = UNBOUNDED): ParsedReply[] {
  const bytes = Buffer.from(wire, 'latin1');
  const whole = parse([bytes], bounds);
  for (let at = 1; at < bytes.length; at++) {
    const split = parse([bytes.subarray(0, at), bytes.subarray(at)], bounds);
    assert.deepEqual(plain(split), plain(whole), `split at byte ${at}`);
  }
  const single = parse(
    [...bytes].map((b) => Buffer.from([b])),
    bounds,
  );
  assert.deepEqual(plain(single), plain(whole), 'a byte at a time');
  return whole;
}

/** Replies with Buffers as strings, for comparison (charges depend on chunking: left out). */
function plain(replies: readonly ParsedReply[]): unknown[] {
  const conv = (v: RespValue): unknown => {
    if (Buffer.isBuffer(v)) return `buf:${v.toString('latin1')}`;
    if (Array.isArray(v)) return v.map(conv);
    if (v instanceof RespError) return `err:${v.message}`;
    if (v instanceof Dropped) return `dropped:${v.bytes}`;
    if (v instanceof Truncated) return `truncated:${v.bytes}/${v.values}`;
    return v;
  };
  return replies.map((r) => ({ value: conv(r.value), cut: r.cut }));
}

const XRANGE = (maxValueBytes: number, maxReplyBytes = Infinity, maxElementBytes = Infinity) => ({
  maxValueBytes,
  maxReplyBytes,
  maxElementBytes,
  entryDepth: 1,
});

describe('BoundedRespParser', () => {
  it('parses every RESP2 type, nulls and errors, nested arrays, split at every byte', () => {
    const wire =
      '+OK\r\n' +
      '-ERR no such key\r\n' +
      ':-42\r\n' +
      '$-1\r\n' +
      '*-1\r\n' +
      '*0\r\n' +
      bulk('') +
      arr(bulk('a'), arr(':1\r\n', arr(bulk('deep'), '$-1\r\n'), '+x\r\n'), bulk('b\r\nc'));
    const replies = parseEverySplit(wire);
    assert.deepEqual(plain(replies), [
      { value: 'OK', cut: false },
      { value: 'err:ERR no such key', cut: false },
      { value: -42, cut: false },
      { value: null, cut: false },
      { value: null, cut: false },
      { value: [], cut: false },
      { value: 'buf:', cut: false },
      { value: ['buf:a', [1, ['buf:deep', null], 'x'], 'buf:b\r\nc'], cut: false },
    ]);
  });

  it('skips a bulk string over the bound, keeping its size, wherever the chunks split', () => {
    const big = 'x'.repeat(300);
    const wire = arr(entry('1-0', 'op', 'PUT', 'data', big), entry('2-0', big, 'v', 'k', 'v'));
    const [reply] = parseEverySplit(wire, XRANGE(100));
    assert.deepEqual(plain([reply!])[0], {
      value: [
        ['buf:1-0', ['buf:op', 'buf:PUT', 'buf:data', 'dropped:300']],
        ['buf:2-0', ['dropped:300', 'buf:v', 'buf:k', 'buf:v']],
      ],
      cut: false,
    });
  });

  it('never holds a skipped value: the charge stays far below what was sent', () => {
    const big = Buffer.alloc(8 * 1024 * 1024, 1);
    const wire = Buffer.from(arr(entry('1-0', 'data', big.toString('latin1'))), 'latin1');
    const chunks: Buffer[] = [];
    for (let i = 0; i < wire.length; i += 64 * 1024) chunks.push(wire.subarray(i, i + 64 * 1024));
    const [reply] = parse(chunks, XRANGE(1024 * 1024));
    assert.ok(reply!.keptBytes < 256 * 1024, `kept ${reply!.keptBytes} bytes`);
    assert.deepEqual(plain([reply!])[0], {
      value: [['buf:1-0', ['buf:data', `dropped:${big.length}`]]],
      cut: false,
    });
  });

  it('cuts a reply after the entry that passes the budget, keeping at least one', () => {
    const v = 'y'.repeat(50);
    const wire = arr(entry('1-0', 'f', v), entry('2-0', 'f', v), entry('3-0', 'f', v));
    // One chunk: the first view charges the whole chunk, so the first entry spends the budget.
    const [one] = parse([Buffer.from(wire)], XRANGE(1000, 10));
    assert.deepEqual(plain([one!])[0], { value: [['buf:1-0', ['buf:f', `buf:${v}`]]], cut: true });
    const [all] = parse([Buffer.from(wire)], XRANGE(1000, 1_000_000));
    assert.equal((all!.value as RespValue[]).length, 3);
    assert.equal(all!.cut, false);
    // Split everywhere, the entries kept are always a prefix, whole, and the cut says so.
    const bytes = Buffer.from(wire);
    for (let at = 1; at < bytes.length; at++) {
      const [r] = parse([bytes.subarray(0, at), bytes.subarray(at)], XRANGE(1000, 400));
      const got = plain([r!])[0] as { value: unknown[]; cut: boolean };
      assert.ok(got.value.length >= 1 && got.value.length <= 3);
      assert.equal(got.cut, got.value.length < 3, `split at ${at}`);
      for (const [i, e] of got.value.entries()) {
        assert.deepEqual(e, [`buf:${i + 1}-0`, ['buf:f', `buf:${v}`]]);
      }
    }
  });

  it('cuts an XREAD reply at its entries (depth 3), and parses the next reply whole', () => {
    const v = 'z'.repeat(40);
    const xread = arr(arr(bulk('cdc'), arr(entry('1-0', 'f', v), entry('2-0', 'f', v))));
    const wire = xread + '*-1\r\n' + '+PONG\r\n';
    const replies = parseEverySplit(wire, {
      maxValueBytes: 1000,
      maxReplyBytes: 1,
      maxElementBytes: Infinity,
      entryDepth: 3,
    });
    assert.deepEqual(plain(replies), [
      { value: [['buf:cdc', [['buf:1-0', ['buf:f', `buf:${v}`]]]]], cut: true },
      { value: null, cut: false },
      { value: 'PONG', cut: false },
    ]);
  });

  it('shares a budget between replies: once spent, a reply keeps no entry at all', () => {
    const v = 'z'.repeat(40);
    const xrange = arr(entry('1-0', 'f', v), entry('2-0', 'f', v));
    const bytes = Buffer.from(xrange + xrange + xrange, 'latin1');
    for (let at = 1; at < bytes.length; at++) {
      const budget = { remaining: 1 };
      const replies = parse([bytes.subarray(0, at), bytes.subarray(at)], {
        ...XRANGE(1000, Infinity),
        budget,
      });
      assert.deepEqual(
        plain(replies),
        [
          { value: [['buf:1-0', ['buf:f', `buf:${v}`]]], cut: true },
          { value: [], cut: true },
          { value: [], cut: true },
        ],
        `split at byte ${at}`,
      );
      assert.ok(budget.remaining < 0, 'the first reply spent it');
    }
    const budget = { remaining: 1_000_000 };
    const whole = parse([bytes], { ...XRANGE(1000, Infinity), budget });
    assert.ok(whole.every((r) => !r.cut && (r.value as RespValue[]).length === 2));
    const kept = whole.reduce((n, r) => n + r.keptBytes, 0);
    assert.equal(budget.remaining, 1_000_000 - kept, 'each reply took what it kept');
  });

  it('truncates an entry over its own bound: the rest skipped, counted in a Truncated', () => {
    const fields: string[] = [];
    for (let i = 0; i < 40; i++) fields.push(`n${i}`, 'v'.repeat(20));
    const wire = arr(entry('1-0', ...fields), entry('2-0', 'op', 'PUT'));
    const [reply] = parseEverySplit(wire, XRANGE(1000, Infinity, 2000));
    const [first, second] = reply!.value as RespValue[][];
    const kept = first![1] as RespValue[];
    assert.ok(kept.length < 80 && kept.length > 0, `${kept.length} values kept`);
    assert.ok(first![2] instanceof Truncated);
    assert.equal(first![2].values, 80 - kept.length);
    assert.deepEqual(plain([{ value: second!, keptBytes: 0, cut: false }])[0], {
      value: ['buf:2-0', ['buf:op', 'buf:PUT']],
      cut: false,
    });
  });

  it('charges a chunk once for the views into it, and a split value at its size', () => {
    const wire = Buffer.from(arr(entry('1-0', 'a', 'b', 'c', 'd')));
    const [r] = parse([wire], XRANGE(1000));
    // One chunk (its length), plus an overhead per value and array.
    assert.ok(r!.keptBytes >= wire.length && r!.keptBytes < wire.length + 10 * 100);
    const big = 'q'.repeat(5000);
    const wire2 = Buffer.from(arr(entry('1-0', 'data', big)));
    const at = wire2.indexOf('qqq') + 10;
    const [r2] = parse([wire2.subarray(0, at), wire2.subarray(at)], XRANGE(10_000));
    assert.ok(r2!.keptBytes >= 5000 && r2!.keptBytes < at + 5000 + 1000, `${r2!.keptBytes}`);
  });

  it('keeps values whole when every chunk comes in one reused read buffer (onread)', () => {
    const v = 'r'.repeat(700);
    const wire = Buffer.from(
      arr(entry('1-0', 'op', 'PUT', 'data', v), entry('2-0', 'big', 'x'.repeat(5000))) + '+OK\r\n',
    );
    for (const size of [1, 7, 64, 1000, wire.length]) {
      const replies: ParsedReply[] = [];
      const parser = new BoundedRespParser(
        (r) => replies.push(r),
        () => XRANGE(1000),
      );
      const buffer = Buffer.alloc(size);
      for (let i = 0; i < wire.length; i += size) {
        const n = wire.copy(buffer, 0, i, i + size);
        parser.write(buffer.subarray(0, n), true);
        buffer.fill(0x21); // the next read overwrites it
      }
      assert.deepEqual(
        plain(replies),
        [
          {
            value: [
              ['buf:1-0', ['buf:op', 'buf:PUT', 'buf:data', `buf:${v}`]],
              ['buf:2-0', ['buf:big', 'dropped:5000']],
            ],
            cut: false,
          },
          { value: 'OK', cut: false },
        ],
        `reads of ${size} bytes`,
      );
    }
  });

  it('refuses what is not RESP2', () => {
    for (const bad of ['?x\r\n', '$abc\r\n', '$3\r\nabcd\r\n', ':1\n', `+${'a'.repeat(70_000)}`]) {
      assert.throws(() => parse([Buffer.from(bad)]), RespProtocolError, JSON.stringify(bad));
    }
    let deep = '';
    for (let i = 0; i < 20; i++) deep += '*1\r\n';
    assert.throws(() => parse([Buffer.from(deep)]), RespProtocolError);
  });
});
