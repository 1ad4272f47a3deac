/**
 * Durations and byte sizes as people write them in a config file. Pure: no I/O.
 */

/** The unit a bare number stands for in a duration option. */
export type DurationUnit = 'ms' | 's';

const DURATION_UNITS_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;
const BARE_NUMBER = /^\d+(?:\.\d+)?$/;

/**
 * Parses `"250ms"`, `"5s"`, `"2m"`, `"1h"`, `"7d"`, compounds such as `"1h30m"`, or a plain
 * non-negative number (or numeric string) counted in `bareUnit`, into whole milliseconds.
 * Returns `undefined` when the value is not a duration.
 */
export function parseDuration(value: unknown, bareUnit: DurationUnit): number | undefined {
  const unitMs = DURATION_UNITS_MS[bareUnit] ?? 1;
  if (typeof value === 'number') {
    return Number.isFinite(value) && value >= 0 ? Math.round(value * unitMs) : undefined;
  }
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (BARE_NUMBER.test(text)) return Math.round(Number(text) * unitMs);
  let total = 0;
  DURATION_PART.lastIndex = 0;
  while (DURATION_PART.lastIndex < text.length) {
    const match = DURATION_PART.exec(text);
    if (!match) return undefined;
    total += Number(match[1]) * (DURATION_UNITS_MS[match[2] ?? ''] ?? Number.NaN);
  }
  return Number.isFinite(total) ? Math.round(total) : undefined;
}

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

const SIZE = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i;

/**
 * Parses a byte size: a non-negative integer, or a string such as `"512KB"` (SI, 1000-based),
 * `"64MiB"` (IEC, 1024-based) or `"100B"`; units are case-insensitive. Returns `undefined` when
 * the value is not a size or is not a whole number of bytes.
 */
export function parseSize(value: unknown): number | undefined {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  }
  if (typeof value !== 'string') return undefined;
  const match = SIZE.exec(value.trim());
  if (!match) return undefined;
  const unit = SIZE_UNITS[(match[2] ?? '').toLowerCase() || 'b'];
  if (unit === undefined) return undefined;
  const bytes = Number(match[1]) * unit;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** Formats milliseconds the way the docs and error messages show them (`"5s"`, `"7d"`). */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const size = DURATION_UNITS_MS[unit] ?? 1;
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** Formats a byte count the way the docs and error messages show it (`"64MiB"`, `"1000"`). */
export function formatSize(bytes: number): string {
  for (const unit of ['GiB', 'MiB', 'KiB'] as const) {
    const size = SIZE_UNITS[unit.toLowerCase()] ?? 1;
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}
