import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  createLogger,
  peerLogger,
  redactSecrets,
  redactUrl,
  type Logger,
} from '../../src/observability/index.js';

function memoryLogger(level: 'info' | 'debug' = 'info'): { logger: Logger; lines: () => string[] } {
  const chunks: string[] = [];
  const logger = createLogger({ level, destination: { write: (s: string) => chunks.push(s) } });
  return { logger, lines: () => chunks.join('').split('\n').filter(Boolean) };
}

describe('redactUrl', () => {
  const cases: [string, string][] = [
    ['redis://user:s3cret@host:6379/0', 'redis://user:***@host:6379/0'],
    ['rediss://:s3cret@host:6380', 'rediss://:***@host:6380'],
    ['redis://default:p@ss:w@rd@host:6379', 'redis://default:***@host:6379'],
    ['redis://:pa/ss@host', 'redis://:***@host'],
    ['redis://host:6379', 'redis://host:6379'],
    ['redis://user@host:6379', 'redis://user@host:6379'],
    ['redis://host:6379?password=s3cret&db=1', 'redis://host:6379?password=***&db=1'],
    ['not a url', 'not a url'],
    ['', ''],
  ];
  for (const [input, expected] of cases) {
    it(`redacts ${input || '(empty)'}`, () => assert.equal(redactUrl(input), expected));
  }

  it('redacts every URL in free text', () => {
    const text =
      'connect to redis://u:s3cret@a:1 failed, then rediss://:t0ken@b:2/ and "redis://x:y@c"';
    const out = redactSecrets(text);
    assert.doesNotMatch(out, /s3cret|t0ken|x:y@/);
    assert.match(out, /redis:\/\/u:\*\*\*@a:1 failed/);
    assert.match(out, /rediss:\/\/:\*\*\*@b:2\//);
  });
});

describe('logger', () => {
  it('writes JSON lines with a string level, a name and an ISO time', () => {
    const { logger, lines } = memoryLogger();
    logger.info({ peers: 2 }, 'started');
    logger.debug('not at info');
    const out = lines();
    assert.equal(out.length, 1);
    const line = JSON.parse(out[0]!) as Record<string, unknown>;
    assert.equal(line['level'], 'info');
    assert.equal(line['msg'], 'started');
    assert.equal(line['peers'], 2);
    assert.equal(line['name'], 'replication-engine');
    assert.match(String(line['time']), /^\d{4}-\d\d-\d\dT/);
  });

  it('never outputs a password, token or authorization header', () => {
    const { logger, lines } = memoryLogger('debug');
    logger.info({ redisUrl: 'redis://user:s3cret@peer1:6379' }, 'peer added');
    logger.info({ redis_url: 'rediss://:s3cret@peer2:6380', url: 'redis://:s3cret@x' }, 'x');
    logger.info({ peer: { password: 's3cret', redisUrl: 'redis://a:s3cret@h' } }, 'nested');
    logger.info({ config: { peer: { token: 's3cret' } } }, 'deep');
    logger.info({ headers: { authorization: 'Bearer s3cret' } }, 'req');
    logger.info({ token: 's3cret', password: 's3cret' }, 'top');
    logger.warn('cannot reach redis://admin:s3cret@peer3:6379 (ECONNREFUSED)');
    logger.error({ err: new Error('AUTH failed for redis://u:s3cret@peer4:6379') }, 'failed');
    logger.debug('format %s', 'redis://u:s3cret@peer5:6379');
    const out = lines().join('\n');
    assert.equal(lines().length, 9);
    assert.doesNotMatch(out, /s3cret/);
    // Hosts stay visible: an operator must know which peer is meant.
    for (const host of ['peer1', 'peer2', 'peer3', 'peer4']) assert.match(out, new RegExp(host));
    assert.match(out, /redis:\/\/user:\*\*\*@peer1:6379/);
  });

  it('peerLogger puts peer_id on every line', () => {
    const { logger, lines } = memoryLogger();
    const child = peerLogger(logger, 'uk.node.manchester-1');
    child.info('tailing');
    child.warn({ lag_ms: 5 }, 'lagging');
    for (const line of lines()) {
      assert.equal(
        (JSON.parse(line) as Record<string, unknown>)['peer_id'],
        'uk.node.manchester-1',
      );
    }
  });
});
