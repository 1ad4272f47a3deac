/**
 * Building blocks of the config schema: option types (durations, sizes, node ids…) that carry
 * their own documentation in {@link configDocs}, from which docs/CONFIG.md is generated.
 */
import { z } from 'zod';
import { formatDuration, formatSize, parseDuration, parseSize } from './units.js';
import type { DurationUnit } from './units.js';
/** Documentation of one option: what docs/CONFIG.md prints in its row. */
export interface OptionDoc {
  readonly kind: 'option';
  /** How the value is written, e.g. `integer`, `duration`. */
  readonly type: string;
  /** The default as it would be written in YAML; `required` or `none` when there is none. */
  readonly default: string;
  readonly description: string;
}

/** Documentation of a section (a mapping of options). */
export interface SectionDoc {
  readonly kind: 'section';
  readonly description: string;
}

/** The documentation attached to a schema node. */
export type SchemaDoc = OptionDoc | SectionDoc;

/** Documentation of every option and section of the config schema, keyed by schema node. */
export const configDocs = z.registry<SchemaDoc>();

/** Largest `max_item_bytes`: Redis's default `proto-max-bulk-len`. */
export const MAX_ITEM_BYTES_LIMIT = 512 * 1024 * 1024;

// \p{Cs} matches only a lone surrogate under the u flag: it has no UTF-8 form, so no store (and no
// byte order) could keep the id as written.
const NODE_ID = /^[^\s\p{Cc}\p{Cs}]+$/u;

/** Attaches an option's documentation to its schema. */
export function option<S extends z.ZodType>(
  schema: S,
  type: string,
  defaultValue: string,
  description: string,
): S {
  configDocs.add(schema, { kind: 'option', type, default: defaultValue, description });
  return schema;
}

/** Attaches a section's documentation to its schema. */
export function section<S extends z.ZodType>(schema: S, description: string): S {
  configDocs.add(schema, { kind: 'section', description });
  return schema;
}

function yamlValue(value: string | number | boolean): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

/** A boolean option with a default. */
export function bool(defaultValue: boolean, description: string) {
  return option(z.boolean().default(defaultValue), 'boolean', yamlValue(defaultValue), description);
}

/** An integer option with a default and an optional range. */
export function int(
  defaultValue: number,
  description: string,
  range: { min?: number; max?: number },
) {
  let schema = z.number().int();
  if (range.min !== undefined) schema = schema.min(range.min);
  if (range.max !== undefined) schema = schema.max(range.max);
  return option(schema.default(defaultValue), 'integer', yamlValue(defaultValue), description);
}

/** A string option with a default. */
export function str(defaultValue: string, description: string, minLength = 0) {
  return option(
    z.string().min(minLength).default(defaultValue),
    'string',
    yamlValue(defaultValue),
    description,
  );
}

/** A non-empty string option with no default. */
export function optionalStr(description: string) {
  return option(z.string().min(1).optional(), 'string', 'none', description);
}

/** A required node id: non-empty Unicode text without whitespace, controls or lone surrogates. */
export function nodeId(description: string) {
  return option(
    z.string().min(1).max(256).regex(NODE_ID, {
      error: 'expected a node id without whitespace, control characters or lone surrogates',
    }),
    'string',
    'required',
    description,
  );
}

/**
 * A duration: `"250ms"`, `"5s"`, `"2m"`, `"1h"`, `"7d"` (or compounds such as `"1h30m"`), or a bare
 * number counted in `bareUnit`. Resolves to whole milliseconds.
 */
export function duration(
  defaultValue: string | number,
  bareUnit: DurationUnit,
  description: string,
  minMs = 1,
) {
  const unitName = bareUnit === 's' ? 'seconds' : 'milliseconds';
  const schema = z
    .unknown()
    .transform((value, ctx): number => {
      const ms = parseDuration(value, bareUnit);
      if (ms === undefined) {
        ctx.issues.push({
          code: 'custom',
          message: `expected a duration such as "5s", "250ms", "2m", "1h", "7d", or a number of ${unitName}`,
          input: value,
        });
        return z.NEVER;
      }
      if (ms < minMs) {
        ctx.issues.push({
          code: 'custom',
          message: `expected a duration of at least ${formatDuration(minMs)}`,
          input: value,
        });
        return z.NEVER;
      }
      return ms;
    })
    .prefault(defaultValue);
  return option(
    schema,
    `duration (bare number: ${unitName})`,
    yamlValue(defaultValue),
    description,
  );
}

/** A byte size: an integer, or `"512KB"` (1000-based), `"64MiB"` (1024-based), `"100B"`. */
export function size(defaultValue: string | number, description: string, min: number, max: number) {
  const schema = z
    .unknown()
    .transform((value, ctx): number => {
      const bytes = parseSize(value);
      if (bytes === undefined) {
        ctx.issues.push({
          code: 'custom',
          message: 'expected a byte size such as 1048576, "512KB" or "64MiB"',
          input: value,
        });
        return z.NEVER;
      }
      if (bytes < min || bytes > max) {
        ctx.issues.push({
          code: 'custom',
          message:
            max === Number.MAX_SAFE_INTEGER
              ? `expected a byte size of at least ${formatSize(min)}`
              : `expected a byte size from ${formatSize(min)} to ${formatSize(max)}`,
          input: value,
        });
        return z.NEVER;
      }
      return bytes;
    })
    .prefault(defaultValue);
  return option(schema, 'byte size', yamlValue(defaultValue), description);
}

/** The schema inside any default, prefault and optional wrappers. */
export function unwrapSchema(schema: z.ZodType): z.ZodType {
  let inner = schema;
  while (
    inner instanceof z.ZodDefault ||
    inner instanceof z.ZodPrefault ||
    inner instanceof z.ZodOptional
  ) {
    inner = inner.def.innerType as z.ZodType;
  }
  return inner;
}
