/**
 * Coverage-guided fuzz target (jsfuzz) for the CDC parser. The input is a field list in the
 * length-prefixed format of `encodeFuzzInput`. Anything but a consistent event or a
 * CorruptEntryError is a crash.
 */
import { createHash } from 'node:crypto';
import { parseCdcEntry } from '../../../src/codec/cdc.js';
import { CorruptEntryError } from '../../../src/errors.js';
import { decodeFuzzInput } from '../inputs.js';

const MAX_ITEM_BYTES = 256 * 1024;

export function fuzz(data: Buffer): void {
  let event;
  try {
    event = parseCdcEntry(decodeFuzzInput(data), { maxItemBytes: MAX_ITEM_BYTES });
  } catch (error) {
    if (error instanceof CorruptEntryError) return;
    throw error;
  }
  if (event.key.length === 0) throw new Error('parsed an event without a key');
  if (event.op === 'PUT') {
    if (event.content.length > MAX_ITEM_BYTES) throw new Error('content over maxItemBytes');
    const hash = createHash('sha256').update(event.content).digest('hex');
    if (hash !== event.contentHash) throw new Error('contentHash is not the content hash');
  }
}
