/**
 * A RESP2 reply parser that never holds more of a reply than its bounds allow, whatever the server
 * sends (issue 19): a bulk string over `maxValueBytes` is skipped as it streams in and kept as its
 * size only ({@link Dropped}); once the bytes kept for a reply pass `maxReplyBytes`, the elements
 * of the array at `entryDepth` that follow are skipped whole (the reply is `cut` after the last
 * whole one, and at least one is kept); an element whose own kept bytes pass `maxElementBytes`
 * skips the rest of its values and ends with a {@link Truncated} marker.
 *
 * Why not a library: node-redis's decoder, `redis-parser` (ioredis) and `respjs` all gather a
 * bulk string whole before handing it out, so one 70 MB stream entry costs 70 MB (and more while
 * it is concatenated) before any check can run. Bounding a value means parsing its header and
 * skipping its body as the bytes arrive, which none of them offers.
 *
 * What is kept is charged to the reply as the parser holds it: a value inside one socket chunk is
 * a view of that chunk, so the first kept view of a chunk charges the whole chunk (the view keeps
 * it alive); a value split across chunks is copied into a buffer of its own size, charged at that
 * size; each kept value also charges {@link VALUE_OVERHEAD_BYTES} for its object. An element is
 * charged its values' sizes and overheads only, so its bound does not depend on the chunking.
 * Pure (no I/O).
 */

/** Bytes charged per kept value on top of its data: a Buffer view and its slot in an array. */
export const VALUE_OVERHEAD_BYTES = 96;
/** Longest header line (`$123\r\n`, `-ERR …\r\n`) accepted: a longer one is a protocol error. */
const MAX_LINE_BYTES = 64 * 1024;
/** Deepest nesting accepted (stream replies nest 4 deep). */
const MAX_DEPTH = 16;

const CR = 13;
const LF = 10;

/** A bulk string that was over the value bound: skipped, only its size kept. */
export class Dropped {
  constructor(readonly bytes: number) {}
}

/** Ends an array element whose values passed the element bound: the bytes and values skipped. */
export class Truncated {
  constructor(
    readonly bytes: number,
    readonly values: number,
  ) {}
}

/** An error reply (`-ERR …`): a value, not thrown, so the caller decides. */
export class RespError extends Error {
  override readonly name = 'RespError';
}

/** The server broke the protocol: the connection cannot be trusted to be in step any more. */
export class RespProtocolError extends Error {
  override readonly name = 'RespProtocolError';
}

/** A parsed value. Simple strings are strings, bulk strings Buffers, nulls null. */
export type RespValue =
  string | number | null | Buffer | RespError | Dropped | Truncated | RespValue[];

/** The bounds of one reply. */
export interface ReplyBounds {
  /** Bulk strings longer than this are skipped ({@link Dropped}). */
  readonly maxValueBytes: number;
  /** Once this much is kept, later elements at `entryDepth` are skipped (at least one is kept). */
  readonly maxReplyBytes: number;
  /** An element at `entryDepth` keeps at most this much; the rest of it is skipped. */
  readonly maxElementBytes: number;
  /**
   * Nesting depth of the elements the reply budget counts: 1 for the elements of a top-level
   * array (XRANGE's entries), 3 for XREAD's (`[[stream, [entry…]]]`); 0 for no budget.
   */
  readonly entryDepth: number;
  /**
   * A budget several replies share (one round of reads on a connection): each reply's kept bytes
   * are taken from it when the reply ends, a reply stops keeping elements once it is spent, and
   * a reply that starts with it spent keeps none (not even the one it otherwise would).
   */
  readonly budget?: { remaining: number };
}

/** A whole reply and what its bounds did to it. */
export interface ParsedReply {
  readonly value: RespValue;
  /** Bytes charged for what the reply keeps. */
  readonly keptBytes: number;
  /** True when elements at `entryDepth` were skipped for the reply budget (read them again). */
  readonly cut: boolean;
}

/** Bounds that keep everything (handshake replies). */
export const UNBOUNDED: ReplyBounds = {
  maxValueBytes: Infinity,
  maxReplyBytes: Infinity,
  maxElementBytes: Infinity,
  entryDepth: 0,
};

interface Frame {
  /** Null while skipping: nothing of it is kept. */
  readonly items: RespValue[] | null;
  remaining: number;
  /** Bytes charged for this element (only tracked on frames at `entryDepth`). */
  charged: number;
  /** Bytes and values skipped because the element passed `maxElementBytes`. */
  overBytes: number;
  overValues: number;
}

interface Bulk {
  readonly length: number;
  /** Bytes of the value still to come. */
  need: number;
  /** Bytes of the trailing CRLF still to come. */
  crlf: number;
  /** Where a value split across chunks is copied (undefined while skipping or for a view). */
  target: Buffer | undefined;
  /** A value wholly inside one chunk: a view of it, and that chunk (charged once per reply). */
  view: Buffer | undefined;
  chunk: Buffer | undefined;
  readonly skip: boolean;
  /** The value was over `maxValueBytes` (a {@link Dropped} when done). */
  readonly dropped: boolean;
}

/**
 * Parses a stream of RESP2 replies, one at a time, each with the bounds of the request it answers
 * (given by `boundsFor` when its first byte arrives). Feed it socket chunks with {@link write}.
 */
export class BoundedRespParser {
  readonly #onReply: (reply: ParsedReply) => void;
  readonly #boundsFor: () => ReplyBounds;
  #bounds: ReplyBounds = UNBOUNDED;
  #stack: Frame[] = [];
  #bulk: Bulk | undefined;
  #line: Buffer | undefined;
  #kept = 0;
  /** The reply budget is spent: later elements at `entryDepth` are skipped. */
  #cut = false;
  #skippedElements = 0;
  #inReply = false;
  /** The last chunk a kept view was charged for (charged once per reply). */
  #chargedChunk: Buffer | undefined;
  /** The chunk being parsed is a reused read buffer; its copy once something in it is kept. */
  #reused = false;
  #copy: Buffer | undefined;

  constructor(onReply: (reply: ParsedReply) => void, boundsFor: () => ReplyBounds) {
    this.#onReply = onReply;
    this.#boundsFor = boundsFor;
  }

  /** Forgets any reply half parsed (the connection was replaced). */
  reset(): void {
    this.#stack = [];
    this.#bulk = undefined;
    this.#line = undefined;
    this.#inReply = false;
    this.#chargedChunk = undefined;
  }

  /**
   * Parses `chunk`, calling `onReply` for each reply it completes. With `reused`, `chunk` is a
   * read buffer the caller fills again after this call (net's `onread`): a value kept from it is
   * then a view of one copy of it, made only if anything in it is kept, so bytes that are skipped
   * are never allocated at all.
   * @throws {RespProtocolError} when the bytes are not RESP2; the parser must then be reset.
   */
  write(chunk: Buffer, reused = false): void {
    this.#reused = reused;
    this.#copy = undefined;
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      if (!this.#inReply) this.#startReply();
      if (this.#bulk !== undefined) {
        pos = this.#continueBulk(chunk, pos);
        continue;
      }
      if (this.#line === undefined) {
        const fast = this.#numberInPlace(chunk, pos);
        if (fast >= 0) {
          pos = fast;
          continue;
        }
      }
      const lf = chunk.indexOf(LF, pos);
      if (lf < 0) {
        const rest = chunk.subarray(pos);
        // Copied: a view would keep the chunk alive while later ones arrive.
        this.#line =
          this.#line === undefined ? Buffer.from(rest) : Buffer.concat([this.#line, rest]);
        if (this.#line.length > MAX_LINE_BYTES) throw new RespProtocolError('header line too long');
        return;
      }
      let line: Buffer;
      if (this.#line !== undefined) {
        line = Buffer.concat([this.#line, chunk.subarray(pos, lf)]);
        this.#line = undefined;
      } else {
        line = chunk.subarray(pos, lf);
      }
      pos = lf + 1;
      if (line.length > MAX_LINE_BYTES) throw new RespProtocolError('header line too long');
      if (line.length < 2 || line[line.length - 1] !== CR) {
        throw new RespProtocolError('header line not ended by CRLF');
      }
      pos = this.#header(line, chunk, pos);
    }
  }

  /**
   * The fast path: a `$`, `*` or `:` header wholly inside `chunk` at `pos`, parsed where it lies
   * (no view of it made); the position after what it consumed, or -1 when it is not one (or is
   * cut by the chunk's end): the caller then takes the line the slow way.
   */
  #numberInPlace(chunk: Buffer, pos: number): number {
    const type = chunk[pos];
    if (type !== 0x24 && type !== 0x2a && type !== 0x3a) return -1;
    const end = chunk.length;
    let i = pos + 1;
    const negative = i < end && chunk[i] === 0x2d;
    if (negative) i += 1;
    const digits = i;
    let n = 0;
    for (; i < end; i++) {
      const c = chunk[i]!;
      if (c === CR) break;
      const digit = c - 0x30;
      if (digit < 0 || digit > 9) throw new RespProtocolError('bad integer in a header');
      n = n * 10 + digit;
    }
    if (i + 1 >= end) return -1;
    if (i === digits || i - digits > 18) throw new RespProtocolError('bad integer in a header');
    if (chunk[i + 1] !== LF) throw new RespProtocolError('header line not ended by CRLF');
    return this.#number(type, negative ? -n : n, chunk, i + 2);
  }

  #startReply(): void {
    this.#inReply = true;
    this.#bounds = this.#boundsFor();
    this.#kept = 0;
    const budget = this.#bounds.budget;
    this.#cut = budget !== undefined && budget.remaining <= 0;
    this.#skippedElements = 0;
    this.#chargedChunk = undefined;
  }

  /** True when what is parsed now is not kept: a skipped element, or one after the cut. */
  #skipping(): boolean {
    const top = this.#stack[this.#stack.length - 1];
    if (top === undefined) return false;
    if (top.items === null) return true;
    return this.#cut && this.#stack.length === this.#bounds.entryDepth;
  }

  /** The frame of the element at `entryDepth` being parsed, if any. */
  #element(): Frame | undefined {
    const depth = this.#bounds.entryDepth;
    return depth > 0 && this.#stack.length > depth ? this.#stack[depth] : undefined;
  }

  /** A header line taken the slow way (`line` without its LF); the position after it. */
  #header(line: Buffer, chunk: Buffer, next: number): number {
    const type = line[0]!;
    const body = line.subarray(1, line.length - 1);
    switch (type) {
      case 0x2b: // + simple string
        this.#value(body.toString('utf8'), body.length + VALUE_OVERHEAD_BYTES);
        return next;
      case 0x2d: // - error
        this.#value(new RespError(body.toString('utf8')), body.length + VALUE_OVERHEAD_BYTES);
        return next;
      case 0x3a:
      case 0x24:
      case 0x2a:
        return this.#number(type, parseInteger(body), chunk, next);
      default:
        throw new RespProtocolError(`unexpected reply type byte ${String(type)}`);
    }
  }

  /**
   * A `:` integer, `$` bulk string or `*` array header with its number `n`, the body starting at
   * `next` in `chunk`; the position after what was consumed of `chunk`.
   */
  #number(type: number, n: number, chunk: Buffer, next: number): number {
    if (type === 0x3a) {
      this.#value(n, VALUE_OVERHEAD_BYTES);
      return next;
    }
    if (n === -1) {
      this.#value(null, 0);
      return next;
    }
    if (n < 0) throw new RespProtocolError(`bad length ${n}`);
    return type === 0x24 ? this.#bulkHeader(n, chunk, next) : this.#arrayHeader(n, next);
  }

  #bulkHeader(length: number, chunk: Buffer, next: number): number {
    // Spelled out rather than through #skipping / #overElement / #charge: this runs for every
    // value of every entry, and the hot path's throughput depends on it.
    const stack = this.#stack;
    const depth = stack.length;
    const bounds = this.#bounds;
    const top = stack[depth - 1];
    const atEntries = depth === bounds.entryDepth;
    const skip = top !== undefined && (top.items === null || (this.#cut && atEntries));
    if (this.#cut && atEntries) this.#skippedElements += 1;
    const dropped = length > bounds.maxValueBytes;
    const element =
      bounds.entryDepth > 0 && depth > bounds.entryDepth ? stack[bounds.entryDepth] : undefined;
    const over =
      !skip &&
      !dropped &&
      element !== undefined &&
      element.items !== null &&
      (element.overValues > 0 || element.charged + length > bounds.maxElementBytes);
    const keep = !skip && !dropped && !over;
    if (keep && next + length + 2 <= chunk.length) {
      // The common case: the value and its CRLF in this chunk, kept as a view of it.
      if (chunk[next + length] !== CR || chunk[next + length + 1] !== LF) {
        throw new RespProtocolError('bulk string not ended by CRLF');
      }
      const owned = this.#reused ? (this.#copy ??= Buffer.from(chunk)) : chunk;
      const view = owned.subarray(next, next + length);
      if (top === undefined || atEntries || top.remaining === 1) {
        this.#keepView(owned, view);
        return next + length + 2;
      }
      let chunkBytes = 0;
      if (this.#chargedChunk !== owned) {
        this.#chargedChunk = owned;
        chunkBytes = owned.length - length;
      }
      this.#kept += length + VALUE_OVERHEAD_BYTES + chunkBytes;
      if (element !== undefined) element.charged += length + VALUE_OVERHEAD_BYTES;
      top.items!.push(view);
      top.remaining -= 1;
      return next + length + 2;
    }
    const bulk: Bulk = {
      length,
      need: length,
      crlf: 2,
      target: undefined,
      view: undefined,
      chunk: undefined,
      skip: !keep,
      dropped: dropped && !skip && !this.#overElement(0),
    };
    if (keep) {
      if (next + length <= chunk.length) {
        const owned = this.#reused ? (this.#copy ??= Buffer.from(chunk)) : chunk;
        bulk.view = owned.subarray(next, next + length);
        bulk.chunk = owned;
      } else {
        bulk.target = Buffer.allocUnsafe(length);
      }
    }
    this.#bulk = bulk;
    return this.#continueBulk(chunk, next);
  }

  #arrayHeader(count: number, next: number): number {
    if (count === 0) {
      this.#value(this.#skipping() ? null : [], VALUE_OVERHEAD_BYTES);
      return next;
    }
    if (this.#stack.length >= MAX_DEPTH) throw new RespProtocolError('nested too deep');
    let skip = this.#skipping();
    if (this.#cut && this.#stack.length === this.#bounds.entryDepth) this.#skippedElements += 1;
    if (!skip && this.#overElement(VALUE_OVERHEAD_BYTES)) {
      skip = true;
      this.#skipped(0, false);
    }
    this.#charge(skip ? 0 : VALUE_OVERHEAD_BYTES);
    this.#stack.push({
      items: skip ? null : [],
      remaining: count,
      charged: 0,
      overBytes: 0,
      overValues: 0,
    });
    return next;
  }

  /** Keeps `view`, a value inside `chunk`: the chunk is charged once per reply. */
  #keepView(chunk: Buffer, view: Buffer): void {
    let chunkBytes = 0;
    if (this.#chargedChunk !== chunk) {
      this.#chargedChunk = chunk;
      chunkBytes = chunk.length;
    }
    this.#charge(view.length + VALUE_OVERHEAD_BYTES, chunkBytes - view.length);
    this.#completeValue(view);
  }

  /** Reads as much of the bulk string in progress as `chunk` holds from `pos`; the next position. */
  #continueBulk(chunk: Buffer, pos: number): number {
    const bulk = this.#bulk!;
    if (bulk.need > 0) {
      const take = Math.min(bulk.need, chunk.length - pos);
      if (bulk.target !== undefined) {
        chunk.copy(bulk.target, bulk.length - bulk.need, pos, pos + take);
      }
      bulk.need -= take;
      pos += take;
      if (bulk.need > 0) return pos;
    }
    while (bulk.crlf > 0 && pos < chunk.length) {
      const expected = bulk.crlf === 2 ? CR : LF;
      if (chunk[pos] !== expected) throw new RespProtocolError('bulk string not ended by CRLF');
      bulk.crlf -= 1;
      pos += 1;
    }
    if (bulk.crlf > 0) return pos;
    this.#bulk = undefined;
    if (bulk.skip) {
      if (bulk.dropped) this.#value(new Dropped(bulk.length), VALUE_OVERHEAD_BYTES);
      else this.#skipped(bulk.length, true);
      return pos;
    }
    if (bulk.target !== undefined) {
      this.#charge(bulk.length + VALUE_OVERHEAD_BYTES);
      this.#completeValue(bulk.target);
      return pos;
    }
    this.#keepView(bulk.chunk!, bulk.view!);
    return pos;
  }

  /**
   * Charges `bytes` to the reply and to the element in progress, and `chunkBytes` more to the
   * reply only (what a view keeps alive of its chunk: memory, not the element's own size).
   */
  #charge(bytes: number, chunkBytes = 0): void {
    this.#kept += bytes + chunkBytes;
    const element = this.#element();
    if (element !== undefined) element.charged += bytes;
  }

  /** True when keeping `cost` more bytes would take the element in progress past its bound. */
  #overElement(cost: number): boolean {
    const element = this.#element();
    return (
      element !== undefined &&
      element.items !== null &&
      (element.overValues > 0 || element.charged + cost > this.#bounds.maxElementBytes)
    );
  }

  /**
   * A value skipped: counted when it is inside an element over its bound (after the cut nothing
   * is counted: the element is read again later); `complete` when it ends here (not an array).
   */
  #skipped(bytes: number, complete: boolean): void {
    const element = this.#element();
    if (element !== undefined && element.items !== null) {
      element.overBytes += bytes;
      element.overValues += 1;
    }
    if (complete) this.#completeValue(undefined);
  }

  /** A value other than a bulk string (small by construction: a line of at most 64 KiB). */
  #value(value: RespValue, cost: number): void {
    if (this.#skipping()) {
      if (this.#cut && this.#stack.length === this.#bounds.entryDepth) this.#skippedElements += 1;
      this.#completeValue(undefined);
      return;
    }
    if (this.#overElement(cost)) {
      this.#skipped(cost, true);
      return;
    }
    this.#charge(cost);
    this.#completeValue(value);
  }

  /** Adds a value (undefined: skipped) to the array in progress, closing every array it fills. */
  #completeValue(value: RespValue | undefined): void {
    for (;;) {
      const top = this.#stack[this.#stack.length - 1];
      if (top === undefined) {
        this.#finish(value ?? null);
        return;
      }
      const atEntries = this.#stack.length === this.#bounds.entryDepth;
      if (value !== undefined && top.items !== null && !(atEntries && this.#cut)) {
        top.items.push(value);
        const bounds = this.#bounds;
        const limit = Math.min(bounds.maxReplyBytes, bounds.budget?.remaining ?? Infinity);
        if (atEntries && this.#kept >= limit) this.#cut = true;
      }
      top.remaining -= 1;
      if (top.remaining > 0) return;
      this.#stack.pop();
      if (
        top.items !== null &&
        top.overValues > 0 &&
        this.#stack.length === this.#bounds.entryDepth
      ) {
        top.items.push(new Truncated(top.overBytes, top.overValues));
      }
      value = top.items ?? undefined;
    }
  }

  #finish(value: RespValue): void {
    const reply: ParsedReply = {
      value,
      keptBytes: this.#kept,
      cut: this.#skippedElements > 0,
    };
    this.#inReply = false;
    this.#chargedChunk = undefined;
    if (this.#bounds.budget !== undefined) this.#bounds.budget.remaining -= this.#kept;
    this.#onReply(reply);
  }
}

/** A header's integer, without making a string of it. */
function parseInteger(body: Buffer): number {
  let i = 0;
  let sign = 1;
  if (body[0] === 0x2d) {
    sign = -1;
    i = 1;
  }
  if (i >= body.length || body.length - i > 18) {
    throw new RespProtocolError('bad integer in a header');
  }
  let n = 0;
  for (; i < body.length; i++) {
    const digit = body[i]! - 0x30;
    if (digit < 0 || digit > 9) throw new RespProtocolError('bad integer in a header');
    n = n * 10 + digit;
  }
  return sign * n;
}
