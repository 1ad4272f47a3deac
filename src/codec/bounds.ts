/**
 * The largest clocks and versions a record may carry (SPEC §8, "clocks and versions stay safe
 * integers"). A local write on top of a record adds 1 to its version and at least 1 to its clock,
 * so a bound of 2^53 − 2^20 leaves a million writes of room below 2^53 − 1, past which JavaScript
 * numbers (and Lua's doubles) stop being exact: a record beyond it, however it arrives, is refused.
 * Pure.
 */

/** Largest `updatedAt` (ms since the epoch) a record may carry: 2^53 − 2^20 (year ~285,000). */
export const MAX_UPDATED_AT = 2 ** 53 - 2 ** 20;

/** Largest `version` a record may carry: 2^53 − 2^20. */
export const MAX_VERSION = 2 ** 53 - 2 ** 20;

/** True when `value` is an integer in [0, max]. */
export function isBoundedInt(value: unknown, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= max;
}
