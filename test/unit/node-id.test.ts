/**
 * Node ids are any Unicode text (docs/CONFIG.md, "Node ids"): the config takes them as written,
 * refuses only what has no UTF-8 form or cannot be told apart in a log, and the Redis client name
 * built from one is legal for CLIENT SETNAME and gives the id back.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseConfig } from '../../src/config/index.js';
import { ConfigError } from '../../src/errors.js';
import { redisClientName } from '../../src/node/client-name.js';
import type { CommandSender } from '../../src/store/redis-io.js';
import { SyncStore } from '../../src/store/sync-store.js';

/** What CLIENT SETNAME accepts: characters '!' to '~' only. */
const LEGAL_NAME = /^[!-~]*$/;

function withId(id: string): string {
  return `replication:\n  local_node_id: ${JSON.stringify(id)}\n`;
}

describe('redisClientName', () => {
  it('leaves an ASCII name without spaces or % as it is', () => {
    assert.equal(
      redisClientName('replication-engine:uk.node.london-1'),
      'replication-engine:uk.node.london-1',
    );
    assert.equal(redisClientName('replication-engine-cli'), 'replication-engine-cli');
  });

  it('percent-encodes the UTF-8 bytes of everything else', () => {
    assert.equal(redisClientName('replication-engine:ü-node'), 'replication-engine:%C3%BC-node');
    assert.equal(redisClientName('\u{1F600} a%'), '%F0%9F%98%80%20a%25');
  });

  it('is legal for CLIENT SETNAME and decodes back to the text, for any Unicode text', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (text) => {
        const name = redisClientName(`replication-engine:${text}`);
        assert.match(name, LEGAL_NAME);
        assert.equal(decodeURIComponent(name), `replication-engine:${text}`);
      }),
      { numRuns: 2000 },
    );
  });

  it('does not throw on a lone surrogate (it becomes U+FFFD)', () => {
    assert.equal(redisClientName('a\ud800'), 'a%EF%BF%BD');
  });
});

describe('the config takes any Unicode node id', () => {
  it('keeps a non-ASCII local_node_id and node_id as written', () => {
    const config = parseConfig(
      'replication:\n  local_node_id: "ü-node"\n  peers:\n    - node_id: "\u{1F600}-node"\n      redis_url: "redis://127.0.0.1:1"\n',
    );
    assert.equal(config.replication.localNodeId, 'ü-node');
    assert.equal(config.replication.peers[0]?.nodeId, '\u{1F600}-node');
  });

  it('accepts well-formed ids without whitespace or control characters', () => {
    const id = fc
      .string({ unit: 'grapheme', minLength: 1, maxLength: 40 })
      .filter((s) => s.length <= 256 && /^[^\s\p{Cc}]+$/u.test(s));
    fc.assert(
      fc.property(id, (text) => {
        assert.equal(parseConfig(withId(text)).replication.localNodeId, text);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a lone surrogate, which has no UTF-8 form, naming the field', () => {
    // YAML's "\ud800" escape spells a lone surrogate.
    const text = 'replication:\n  local_node_id: "node-\\ud800"\n';
    assert.throws(
      () => parseConfig(text),
      (error: unknown) =>
        error instanceof ConfigError &&
        /replication\.local_node_id/.test(error.message) &&
        /lone surrogates/.test(error.message),
    );
  });
});

describe('SyncStore takes any well-formed node id', () => {
  // The constructor sends nothing: an unusable client shows that it refuses before any I/O.
  const noClient = {} as CommandSender;

  it('keeps a non-ASCII node id as written', () => {
    assert.equal(new SyncStore(noClient, { nodeId: '\u{1F600}-ﬀ' }).nodeId, '\u{1F600}-ﬀ');
  });

  it('refuses a lone surrogate, whose UTF-8 in Redis would differ from the id', () => {
    assert.throws(() => new SyncStore(noClient, { nodeId: 'node-\udc00' }), /lone surrogate/);
  });
});
