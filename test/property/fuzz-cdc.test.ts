/**
 * Fuzzing the CDC parser with fast-check: arbitrary bytes, plausible field lists, and structured
 * mutations of the shared vectors. Whatever a peer's stream holds, parseCdcEntry returns a
 * consistent event or throws a CorruptEntryError; it never throws anything else, never hangs, and
 * never returns (or inflates) more than `maxItemBytes`; and the record of an event it returns is one
 * the store accepts (a record it refused would fail its whole batch, again at every retry).
 */
import { MAX_UPDATED_AT, MAX_VERSION } from '../../src/codec/bounds.js';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compress } from 'zstd-napi';
import { eventToRecord, parseCdcEntry, type CdcEvent } from '../../src/codec/cdc.js';
import { CorruptEntryError } from '../../src/errors.js';
import { checkRecord } from '../../src/store/input.js';
import { ALL_VECTORS, mutatedVectorArb, plausibleEntryArb } from '../fuzz/cdc-mutations.js';
import { validVectors } from '../helpers/vectors.js';
import { decodeFuzzInput, encodeFuzzInput } from '../fuzz/inputs.js';
import { readCorpus } from '../fuzz/corpus.js';

const MAX_ITEM_BYTES = 256 * 1024;
/** Far more than a valid parse of ≤ MAX_ITEM_BYTES takes; a hang or a bomb inflating takes more. */
const MAX_PARSE_MS = 1_000;

/** Parses like the tailer does: an event, or a CorruptEntryError; anything else fails the test. */
function parseChecked(fields: readonly Buffer[]): CdcEvent | CorruptEntryError {
  const start = performance.now();
  let result: CdcEvent | CorruptEntryError;
  try {
    result = parseCdcEntry(fields, { maxItemBytes: MAX_ITEM_BYTES });
  } catch (error) {
    if (!(error instanceof CorruptEntryError)) {
      throw new Error(`parseCdcEntry threw ${String(error)} (not a CorruptEntryError)`, {
        cause: error,
      });
    }
    result = error;
  }
  const elapsed = performance.now() - start;
  assert.ok(elapsed < MAX_PARSE_MS, `parse took ${elapsed.toFixed(0)} ms`);
  if (!(result instanceof CorruptEntryError)) {
    checkEvent(result);
    checkRecordOf(result);
  }
  return result;
}

/** The event's record, as the tailer makes it, passes the store's checks (or is quarantined). */
function checkRecordOf(event: CdcEvent): void {
  for (const id of ['1735776000000-0', '99999999999999999-0']) {
    let record;
    try {
      record = eventToRecord(event, id, 'peer');
    } catch (error) {
      assert.ok(error instanceof CorruptEntryError && error.reason === 'bad_id', String(error));
      continue;
    }
    assert.doesNotThrow(() => checkRecord(record, 0), 'the store accepts a parsed record');
  }
}

function checkEvent(event: CdcEvent): void {
  assert.ok(event.key.length > 0, 'a parsed event has a key');
  if (event.op === 'PUT') {
    assert.ok(event.content.length <= MAX_ITEM_BYTES, 'content within the bound');
    const hash = createHash('sha256').update(event.content).digest('hex');
    assert.equal(event.contentHash, hash, 'contentHash is the content’s sha256');
    if (event.hash !== undefined) assert.equal(event.hash, hash);
  }
  const meta = event.meta;
  if (meta !== undefined) {
    for (const n of [meta.version, meta.updatedAt]) {
      if (n !== undefined) assert.ok(Number.isSafeInteger(n) && n >= 0, `clock field ${n}`);
    }
    if (meta.contentType !== undefined) assert.ok(['json', 'binary'].includes(meta.contentType));
  }
}

describe('fuzz: CDC parser', () => {
  it('arbitrary byte lists never throw anything but CorruptEntryError', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 12 }), (items) => {
        parseChecked(items.map((a) => Buffer.from(a)));
      }),
      { numRuns: 3000 },
    );
  });

  it('plausible field lists (known names, metas, zstd frames) never crash', () => {
    fc.assert(
      fc.property(plausibleEntryArb, (fields) => {
        parseChecked(fields);
      }),
      { numRuns: 1500 },
    );
  });

  it('structured mutations of the shared vectors never crash', () => {
    fc.assert(
      fc.property(mutatedVectorArb, (fields) => {
        parseChecked(fields);
      }),
      { numRuns: 3000 },
    );
  });

  it('a meta clock or version past its bound is refused as bad_meta, never applied', () => {
    const base = validVectors[0]!.fields.filter((_, i, f) => f[i - (i % 2)]!.toString() !== 'meta');
    const past = fc.oneof(
      fc.integer({ min: MAX_VERSION + 1, max: Number.MAX_SAFE_INTEGER }),
      fc.constant(Number.MAX_SAFE_INTEGER),
      fc.double({ min: 2 ** 53, max: 1e300, noNaN: true }),
    );
    fc.assert(
      fc.property(past, fc.boolean(), (value, inVersion) => {
        const meta = inVersion
          ? `{"content_type":"json","version":${value},"updated_at":1}`
          : `{"content_type":"json","version":1,"updated_at":${value}}`;
        const event = parseChecked([...base, Buffer.from('meta'), Buffer.from(meta)]);
        assert.ok(event instanceof CorruptEntryError && event.reason === 'bad_meta', meta);
      }),
      { numRuns: 500 },
    );
  });

  it('a valid entry with any well-typed meta gives a record the store accepts', () => {
    const text = fc.oneof(fc.constantFrom('', 'node-a', '00-ab-cd-01'), fc.string());
    // Up to the bounds, which leave room for a later write (docs/PROTOCOL.md §1).
    const clock = fc.oneof(fc.nat(), fc.constant(MAX_UPDATED_AT));
    // Keys in the writers' order, so metas without escapes take the parser's canonical path.
    const metaArb = fc.record(
      {
        content_type: fc.constantFrom('json', 'binary'),
        version: clock,
        updated_at: clock,
        trace_parent: text,
        // Node ids may be any Unicode text (docs/CONFIG.md), so origins are drawn from all of it.
        origin: fc.oneof(text, fc.string({ unit: 'grapheme', maxLength: 20 })),
      },
      { requiredKeys: [] },
    );
    const bases = validVectors.map((v) =>
      v.fields.filter((_, i, f) => f[i - (i % 2)]!.toString() !== 'meta'),
    );
    fc.assert(
      fc.property(fc.constantFrom(...bases), metaArb, (base, meta) => {
        const fields = [...base, Buffer.from('meta'), Buffer.from(JSON.stringify(meta))];
        const event = parseChecked(fields);
        assert.ok(
          !(event instanceof CorruptEntryError),
          event instanceof Error ? event.message : '',
        );
        if (meta.origin !== undefined && meta.origin !== '') {
          assert.equal(event.meta?.origin, meta.origin, 'the origin as it was written');
        }
      }),
      { numRuns: 1500 },
    );
  });

  it('a mutation that keeps data and hash consistent still parses (no false rejects)', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 40 }),
        fc.uint8Array({ maxLength: 4096 }),
        fc.boolean(),
        (key, content, zstd) => {
          const data = zstd ? compress(Buffer.from(content)) : Buffer.from(content);
          const hash = createHash('sha256').update(content).digest('hex');
          const event = parseChecked([
            Buffer.from('op'),
            Buffer.from('PUT'),
            Buffer.from('key'),
            Buffer.from(key),
            Buffer.from('hash'),
            Buffer.from(hash.toUpperCase()),
            Buffer.from('data'),
            data,
          ]);
          // Raw data that happens to start with the zstd magic is read as a frame: may be rejected.
          if (!zstd && data.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) return;
          assert.ok(
            !(event instanceof CorruptEntryError),
            event instanceof Error ? event.message : '',
          );
          assert.deepEqual(
            Buffer.from(event.op === 'PUT' ? event.content : []),
            Buffer.from(content),
          );
        },
      ),
      { numRuns: 500 },
    );
  });

  it('a zstd bomb claiming or holding gigabytes is rejected fast, without inflating it', () => {
    // 64 MiB of zeros compress to a few KB; under a 256 KiB bound they must be refused.
    const bomb = compress(Buffer.alloc(64 * 1024 * 1024));
    const before = process.memoryUsage().rss;
    for (let i = 0; i < 20; i++) {
      const result = parseChecked([
        Buffer.from('op'),
        Buffer.from('PUT'),
        Buffer.from('key'),
        Buffer.from('bomb'),
        Buffer.from('data'),
        bomb,
      ]);
      assert.ok(result instanceof CorruptEntryError);
      assert.equal(result.reason, 'too_large');
    }
    const grew = process.memoryUsage().rss - before;
    assert.ok(grew < 64 * 1024 * 1024, `RSS grew by ${(grew / 1048576).toFixed(0)} MiB`);
  });

  it('the coverage-guided input format round-trips every vector, and decodes any bytes', () => {
    for (const fields of ALL_VECTORS) {
      assert.deepEqual(decodeFuzzInput(encodeFuzzInput(fields)), fields);
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (data) => {
        parseChecked(decodeFuzzInput(Buffer.from(data)));
      }),
      { numRuns: 2000 },
    );
  });

  it('every committed corpus input (and past crash) parses or is rejected cleanly', () => {
    const inputs = readCorpus('cdc');
    assert.ok(inputs.length >= ALL_VECTORS.length, 'the corpus holds at least the vectors');
    for (const { name, data } of inputs) {
      try {
        parseChecked(decodeFuzzInput(data));
      } catch (error) {
        throw new Error(`corpus input ${name}: ${String(error)}`, { cause: error });
      }
    }
  });
});
