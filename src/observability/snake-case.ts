/**
 * The wire casing: every JSON answer of the admin API and `--json` output uses snake_case keys,
 * like the YAML config and `/health`, whatever the casing of the TypeScript object behind it.
 */

/** `divergentKeys` → `divergent_keys`. */
export function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** `value` with every object key in snake_case, recursively (arrays and plain values kept). */
export function snakeCaseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeCaseKeys);
  if (value === null || typeof value !== 'object' || Buffer.isBuffer(value)) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, inner]) => [snakeCase(key), snakeCaseKeys(inner)]),
  );
}
