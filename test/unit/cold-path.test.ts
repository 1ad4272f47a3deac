import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { divergentChildren } from '../../src/engine/cold-path.js';

const h = (c: string): string => c.repeat(64);

describe('divergentChildren', () => {
  it('is empty for identical children', () => {
    const nodes = [
      { path: '0', hash: h('a') },
      { path: '7', hash: h('b') },
    ];
    assert.deepEqual(divergentChildren(nodes, [...nodes]), []);
  });

  it('lists children with different hashes and children present on one side only, sorted', () => {
    const local = [
      { path: '10', hash: h('a') },
      { path: '1f', hash: h('c') },
      { path: '13', hash: h('d') },
    ];
    const peer = [
      { path: '10', hash: h('a') },
      { path: '13', hash: h('e') },
      { path: '1a', hash: h('f') },
    ];
    assert.deepEqual(divergentChildren(local, peer), ['13', '1a', '1f']);
  });

  it('treats a missing side as all empty', () => {
    const nodes = [
      { path: 'a', hash: h('1') },
      { path: '3', hash: h('2') },
    ];
    assert.deepEqual(divergentChildren([], nodes), ['3', 'a']);
    assert.deepEqual(divergentChildren(nodes, []), ['3', 'a']);
  });
});
