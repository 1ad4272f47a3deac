/**
 * Coverage-guided fuzz target (jsfuzz) for what the cold path reads from a peer: the first byte
 * picks the reader, the rest is its input. Even: a stored record value (parse, then verify as a
 * repair does). Odd: a bucket page, a field list in the format of `encodeFuzzInput` read as the
 * fields and values of one `HSCAN` page, and the same list as dirty marks. A throw, a clock or
 * version beyond its bound, an inflated body or an accepted body that does not hash to its header
 * is a crash (`checkPeerReply`).
 */
import { checkPeerReply } from '../peer-reply-checks.js';

export function fuzz(data: Buffer): void {
  checkPeerReply(data);
}
