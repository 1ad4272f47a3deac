import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import { encodeCdcEntry, sha256Hex } from '../../src/codec/cdc.js';
import { snapshot, startMesh, type Mesh } from '../helpers/mesh.js';
import { eventually } from '../helpers/redis-server.js';
import { invalidVectors, validVectors } from '../helpers/vectors.js';

describe('hot path: the Rust sync-engine vectors, raw in a peer stream', () => {
  let mesh: Mesh;
  before(async () => {
    mesh = await startMesh({ nodes: 2 });
  });
  after(async () => {
    await mesh.stop();
  });

  it('applies every valid entry, dead-letters every invalid one, and keeps running', async () => {
    const [a, b] = mesh.nodes as [Mesh['nodes'][0], Mesh['nodes'][0]];
    const raw = createClient({ url: a.redis.url });
    await raw.connect();
    // XADD needs at least one field: the empty entry can only come from a broken writer, and is
    // covered by the parser tests.
    const invalid = invalidVectors.filter((v) => v.fields.length > 0);
    const invalidIds: string[] = [];
    for (const v of [...validVectors, ...invalid]) {
      const id = await raw.sendCommand<string>(['XADD', 'cdc', '*', ...v.fields]);
      if (invalid.includes(v)) invalidIds.push(id);
    }

    const puts = validVectors.filter((v) => v.expect!.op === 'PUT').map((v) => v.expect!.key);
    const deleted = new Set(
      validVectors.filter((v) => v.expect!.op === 'DEL').map((v) => v.expect!.key),
    );
    await eventually(
      async () => (await b.store.getRecords(puts)).length === puts.length,
      'valid entries applied',
    );
    for (const v of validVectors) {
      const key = v.expect!.key;
      const record = await b.store.getRecord(key);
      assert.ok(record !== undefined, key);
      if (deleted.has(key)) {
        assert.equal(record.deleted, true, `${key} deleted by a later DEL`);
      } else {
        assert.equal(record.content.toString('base64'), v.expect!.content_b64, key);
        assert.equal(record.origin, a.id, 'a Rust entry takes the peer as origin');
        if (v.expect!.meta) assert.equal(record.version, v.expect!.meta.version);
      }
    }

    const local = createClient({ url: b.redis.url });
    await local.connect();
    await eventually(
      async () => Number(await local.sendCommand(['XLEN', `dlq:${a.id}`])) === invalid.length,
      'every invalid entry dead-lettered',
    );
    const letters = await local.sendCommand<[string, string[]][]>([
      'XRANGE',
      `dlq:${a.id}`,
      '-',
      '+',
    ]);
    assert.deepEqual(
      letters.map(([, f]) => f[f.indexOf('_id') + 1]),
      invalidIds,
      'each dead letter names its stream id',
    );
    const reasons = letters.map(([, f]) => f[f.indexOf('_reason') + 1]);
    assert.ok(
      reasons.includes('too_large') && reasons.includes('hash_mismatch'),
      reasons.join(','),
    );
    const counted = await b.engine.metrics.deadLetteredTotal.get();
    assert.equal(
      counted.values.reduce((s, v) => s + v.value, 0),
      invalid.length,
    );

    assert.equal(b.engine.state, 'running');
    await a.store.put('after.corruption', { ok: true });
    await eventually(
      async () => (await b.store.get('after.corruption')) !== undefined,
      'tailer kept going',
    );
    assert.deepEqual(
      await snapshot(b.store, ['after.corruption']),
      await snapshot(a.store, ['after.corruption']),
    );
    raw.destroy();
    local.destroy();
  });

  it('applies a PUT whose meta has an empty trace_parent as one without a traceparent', async () => {
    const [a, b] = mesh.nodes as [Mesh['nodes'][0], Mesh['nodes'][0]];
    const raw = createClient({ url: a.redis.url });
    await raw.connect();
    const content = Buffer.from('{"empty":"traceparent"}');
    // As a foreign writer could spell it: the meta carries "trace_parent":"".
    const fields = encodeCdcEntry({
      key: 'empty.trace',
      content,
      contentHash: sha256Hex(content),
      contentType: 'json',
      updatedAt: 1_735_776_000_000,
      version: 1,
      origin: a.id,
      deleted: false,
      traceParent: '',
    });
    assert.match(fields.at(-1)!.toString(), /"trace_parent":""/);
    await raw.sendCommand(['XADD', 'cdc', '*', ...fields]);
    await eventually(
      async () => (await b.store.getRecord('empty.trace')) !== undefined,
      'the PUT applied',
    );
    const record = await b.store.getRecord('empty.trace');
    assert.deepEqual(record?.content, content);
    assert.equal(record?.traceParent, undefined);
    raw.destroy();
  });

  it('dead-letters an entry whose only clock, its id, is past 2^53 - 1, and keeps going', async () => {
    const [a, b] = mesh.nodes as [Mesh['nodes'][0], Mesh['nodes'][0]];
    const raw = createClient({ url: a.redis.url });
    await raw.connect();
    const local = createClient({ url: b.redis.url });
    await local.connect();
    const dlq = `dlq:${a.id}`;
    const before = Number(await local.sendCommand(['XLEN', dlq]));
    // A DEL has no meta (as the Rust sync-engine writes it): its clock is its id's milliseconds.
    const far = '99999999999999999-0';
    await raw.sendCommand(['XADD', 'cdc', far, 'op', 'DEL', 'key', 'far.future']);
    await a.store.put('after.far.future', { ok: true });
    await eventually(
      async () => (await b.store.get('after.far.future')) !== undefined,
      'the entries after it applied',
    );
    const letters = await local.sendCommand<[string, string[]][]>(['XRANGE', dlq, '-', '+']);
    assert.equal(letters.length, before + 1);
    const letter = letters.at(-1)![1];
    assert.equal(letter[letter.indexOf('_id') + 1], far);
    assert.equal(letter[letter.indexOf('_reason') + 1], 'bad_id');
    assert.equal(await b.store.getRecord('far.future'), undefined);
    assert.equal(b.engine.state, 'running');
    raw.destroy();
    local.destroy();
  });
});
