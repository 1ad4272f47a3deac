/**
 * Redis stream entry ids (`<ms>-<seq>`, both unsigned 64-bit): parsing, total order, lag.
 * Pure; ids are compared as numbers, never as strings ("9-0" < "10-0").
 */

/** A parsed stream id. */
export interface StreamId {
  readonly ms: bigint;
  readonly seq: bigint;
}

const MAX_U64 = (1n << 64n) - 1n;
const ID_RE = /^(\d{1,20})(?:-(\d{1,20}))?$/;

/** The id before every entry: reading after it reads the whole stream. */
export const STREAM_START = '0-0';

/**
 * Parses `"<ms>-<seq>"` or `"<ms>"` (seq 0).
 * @throws {RangeError} on anything else, or a part above 2^64 - 1.
 */
export function parseStreamId(id: string): StreamId {
  const match = ID_RE.exec(id);
  if (match === null) throw new RangeError(`invalid stream id: ${JSON.stringify(id)}`);
  const ms = BigInt(match[1]!);
  const seq = match[2] === undefined ? 0n : BigInt(match[2]);
  if (ms > MAX_U64 || seq > MAX_U64) throw new RangeError(`stream id out of range: ${id}`);
  return { ms, seq };
}

/** True when `id` is a well-formed stream id. */
export function isStreamId(id: string): boolean {
  try {
    parseStreamId(id);
    return true;
  } catch {
    return false;
  }
}

/** Formats a parsed id as `<ms>-<seq>`. */
export function formatStreamId(id: StreamId): string {
  return `${id.ms}-${id.seq}`;
}

/** Numeric order of two ids: negative, zero or positive, as Redis orders them. */
export function compareStreamIds(a: string, b: string): number {
  const x = parseStreamId(a);
  const y = parseStreamId(b);
  if (x.ms !== y.ms) return x.ms < y.ms ? -1 : 1;
  if (x.seq !== y.seq) return x.seq < y.seq ? -1 : 1;
  return 0;
}

/** The larger of two ids. */
export function maxStreamId(a: string, b: string): string {
  return compareStreamIds(a, b) >= 0 ? a : b;
}

/** Milliseconds part of an id, as a JS number (exact below 2^53, i.e. for any real clock). */
export function streamIdMs(id: string): number {
  return Number(parseStreamId(id).ms);
}

/** Milliseconds between `behind` and `ahead` (0 when `behind` is not behind). */
export function lagMs(behind: string, ahead: string): number {
  const b = parseStreamId(behind);
  const a = parseStreamId(ahead);
  return a.ms > b.ms ? Number(a.ms - b.ms) : 0;
}

/** The smallest id greater than `id` (for exclusive range starts); undefined at the maximum id. */
export function nextStreamId(id: string): string | undefined {
  const { ms, seq } = parseStreamId(id);
  if (seq < MAX_U64) return `${ms}-${seq + 1n}`;
  if (ms < MAX_U64) return `${ms + 1n}-0`;
  return undefined;
}

/** The largest id smaller than `id`; undefined for `0-0`. */
export function previousStreamId(id: string): string | undefined {
  const { ms, seq } = parseStreamId(id);
  if (seq > 0n) return `${ms}-${seq - 1n}`;
  if (ms > 0n) return `${ms - 1n}-${MAX_U64}`;
  return undefined;
}
