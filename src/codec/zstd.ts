/**
 * zstd for CDC payloads: compression as the Rust sync-engine does it (level 3, only when it helps),
 * and decompression that never allocates more than a caller-given bound, whatever a frame claims.
 */
import { createRequire } from 'node:module';
import { compress as zstdCompress } from 'zstd-napi';
import type * as Binding from 'zstd-napi/binding.js';
import { CorruptEntryError } from '../errors.js';

const require = createRequire(import.meta.url);
const binding = require('zstd-napi/binding.js') as typeof Binding;

/** The four bytes every zstd frame starts with. */
export const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/**
 * Contents shorter than this are stored raw (as the Rust sync-engine does), unless they begin
 * with the zstd magic.
 */
export const COMPRESS_MIN_BYTES = 64;

/** Default bound on a decompressed item (SPEC §3 `max_item_bytes`). */
export const DEFAULT_MAX_ITEM_BYTES = 64 * 1024 * 1024;

const CHUNK = 64 * 1024;

let context: InstanceType<typeof binding.DCtx> | undefined;

/** One decompression context for the process: creating one per frame costs more than decoding. */
function sharedContext(): InstanceType<typeof binding.DCtx> {
  context ??= new binding.DCtx();
  return context;
}

/** A frame that declares its size (already checked against the bound): one-shot into `out`, that size. */
function decompressDeclared(frame: Uint8Array, declared: number, out: Buffer): Buffer {
  let written: number;
  try {
    written = sharedContext().decompress(out, frame);
  } catch (cause) {
    throw new CorruptEntryError('bad_zstd', 'zstd frame is corrupt or truncated', { cause });
  }
  if (written !== declared) {
    throw new CorruptEntryError(
      'bad_zstd',
      `zstd frame declared ${declared} bytes but held ${written}`,
    );
  }
  return out;
}

/** True when `data` starts with the zstd frame magic. */
export function hasZstdMagic(data: Uint8Array): boolean {
  return (
    data.length >= 4 && data[0] === 0x28 && data[1] === 0xb5 && data[2] === 0x2f && data[3] === 0xfd
  );
}

/**
 * The bytes to put in a CDC `data` field: zstd level 3 when the content is at least 64 bytes and
 * the frame is smaller than the content, or whenever the content begins with the zstd magic (a
 * `.zst` file, any such binary: raw, every reader would take it for a frame); the content itself
 * otherwise.
 */
export function encodeData(content: Buffer): { data: Buffer; compressed: boolean } {
  const magic = hasZstdMagic(content);
  if (magic || content.length >= COMPRESS_MIN_BYTES) {
    const frame = zstdCompress(content, { compressionLevel: 3 });
    if (magic || frame.length < content.length) return { data: frame, compressed: true };
  }
  return { data: content, compressed: false };
}

/** Frames that declare at most this many bytes are decompressed by {@link withContent} in place. */
const SCRATCH_BYTES = 256 * 1024;
let scratch: Buffer | undefined;

/**
 * Calls `use` with what `frame` decompresses to, checked as {@link decompressBounded} checks it,
 * and returns what `use` returns. A frame declaring up to 256 KiB is decompressed into one buffer
 * the process reuses, so reading a content only to hash it allocates nothing: `use` must be done
 * with the bytes when it returns (keep a copy, not the view), and must not call this again.
 *
 * @throws {CorruptEntryError}
 */
export function withContent<T>(
  frame: Uint8Array,
  maxBytes: number,
  use: (content: Buffer) => T,
): T {
  const declared = declaredSize(frame, maxBytes);
  if (declared === null) return use(decompressStreaming(frame, maxBytes));
  if (declared > SCRATCH_BYTES) {
    return use(decompressDeclared(frame, declared, Buffer.allocUnsafe(declared)));
  }
  scratch ??= Buffer.allocUnsafeSlow(SCRATCH_BYTES);
  return use(decompressDeclared(frame, declared, scratch.subarray(0, declared)));
}

/** The size a frame declares (null when it does not), refused when it is over `maxBytes`. */
function declaredSize(frame: Uint8Array, maxBytes: number): number | null {
  let declared = headerContentSize(frame);
  if (declared === undefined) {
    try {
      declared = binding.getFrameContentSize(frame);
    } catch (cause) {
      throw new CorruptEntryError('bad_zstd', 'zstd frame header is invalid', { cause });
    }
  }
  if (declared !== null && declared > maxBytes) {
    throw new CorruptEntryError(
      'too_large',
      `zstd frame declares ${declared} bytes, over the ${maxBytes}-byte limit`,
    );
  }
  return declared;
}

/** Bytes of a frame header's Dictionary_ID field, by its flag. */
const DICT_ID_BYTES = [0, 1, 2, 4] as const;
/** Bytes of its Frame_Content_Size field, by its flag (flag 0: 1 byte in a single segment). */
const CONTENT_SIZE_BYTES = [0, 2, 4, 8] as const;

/**
 * The content size a zstd frame header declares (RFC 8878 §3.1.1.1), read here rather than by a
 * native call on every replicated frame: null when it declares none; undefined for any header
 * libzstd might refuse (no magic, reserved bit set, window over 2³¹, cut short), which is left to
 * libzstd and its error. A property test holds it to `getFrameContentSize`.
 */
export function headerContentSize(frame: Uint8Array): number | null | undefined {
  const descriptor = frame[4];
  if (descriptor === undefined || (descriptor & 0x08) !== 0 || !hasZstdMagic(frame))
    return undefined;
  const singleSegment = (descriptor & 0x20) !== 0;
  let at = 5;
  if (!singleSegment) {
    const window = frame[at];
    if (window === undefined || (window >> 3) + 10 > 31) return undefined;
    at += 1;
  }
  at += DICT_ID_BYTES[descriptor & 0x03]!;
  const flag = descriptor >> 6;
  const size = flag === 0 ? (singleSegment ? 1 : 0) : CONTENT_SIZE_BYTES[flag]!;
  if (frame.length < at + size) return undefined;
  const byteAt = (i: number): number => frame[at + i]!;
  switch (size) {
    case 0:
      return null;
    case 1:
      return byteAt(0);
    case 2:
      return byteAt(0) + byteAt(1) * 0x100 + 256;
    case 4:
      return byteAt(0) + byteAt(1) * 0x100 + byteAt(2) * 0x10000 + byteAt(3) * 0x1000000;
    default: {
      const low = byteAt(0) + byteAt(1) * 0x100 + byteAt(2) * 0x10000 + byteAt(3) * 0x1000000;
      const high = byteAt(4) + byteAt(5) * 0x100 + byteAt(6) * 0x10000 + byteAt(7) * 0x1000000;
      return high * 0x100000000 + low;
    }
  }
}

/**
 * Decompresses a zstd frame, failing with `too_large` as soon as the output would pass `maxBytes`
 * (a frame's declared size is checked first, then the streaming decoder is capped chunk by chunk),
 * and with `bad_zstd` on any malformed or truncated input.
 *
 * @throws {CorruptEntryError}
 */
export function decompressBounded(frame: Uint8Array, maxBytes: number): Buffer {
  const declared = declaredSize(frame, maxBytes);
  if (declared !== null) return decompressDeclared(frame, declared, Buffer.allocUnsafe(declared));
  return decompressStreaming(frame, maxBytes);
}

/** A frame of unknown size (streaming encoders): decoded chunk by chunk, stopping at the bound. */
function decompressStreaming(frame: Uint8Array, maxBytes: number): Buffer {
  const dctx = sharedContext();
  dctx.reset(binding.ResetDirective.sessionOnly);
  const chunks: Buffer[] = [];
  let total = 0;
  let input = frame;
  let remaining = 1; // ZSTD_decompressStream's hint: 0 once a frame is complete and flushed
  try {
    while (true) {
      const out = Buffer.allocUnsafe(CHUNK);
      const [hint, produced, consumed] = dctx.decompressStream(out, input);
      remaining = hint;
      input = input.subarray(consumed);
      if (produced > 0) {
        total += produced;
        if (total > maxBytes) {
          throw new CorruptEntryError(
            'too_large',
            `zstd frame expands past the ${maxBytes}-byte limit`,
          );
        }
        chunks.push(produced === out.length ? out : out.subarray(0, produced));
      }
      if (remaining === 0) break;
      // No progress possible: input exhausted before the frame ended.
      if (input.length === 0 && produced < out.length) break;
    }
  } catch (cause) {
    if (cause instanceof CorruptEntryError) throw cause;
    throw new CorruptEntryError('bad_zstd', 'zstd frame is corrupt', { cause });
  }
  if (remaining !== 0) throw new CorruptEntryError('bad_zstd', 'zstd frame is truncated');
  if (input.length !== 0)
    throw new CorruptEntryError('bad_zstd', 'trailing bytes after zstd frame');
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
}
