/**
 * Turns zod's issues into config problems that say what was expected and what was found.
 */
import { z } from 'zod';
import { formatPath, showValue } from './issues.js';
import type { ConfigPath } from './issues.js';
import { configSchema, unwrapSchema } from './schema.js';
import { nearest } from './did-you-mean.js';

/** A problem before it is located in the source. */
export interface RawIssue {
  readonly path: ConfigPath;
  readonly message: string;
}

const TYPE_NAMES: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'a boolean (true or false)',
  object: 'a mapping',
  array: 'a list',
};

/** The value at `path` in `input`, or undefined. */
export function valueAt(input: unknown, path: ConfigPath): unknown {
  let value = input;
  for (const segment of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string | number, unknown>)[segment];
  }
  return value;
}

/** The option names of the mapping at `path` of the config schema. */
function optionNamesAt(path: ConfigPath): string[] {
  let schema: z.ZodType = configSchema;
  for (const segment of path) {
    const inner = unwrapSchema(schema);
    if (inner instanceof z.ZodObject && typeof segment === 'string') {
      const next = (inner.shape as Record<string, z.ZodType | undefined>)[segment];
      if (!next) return [];
      schema = next;
    } else if (inner instanceof z.ZodArray && typeof segment === 'number') {
      schema = inner.element as z.ZodType;
    } else {
      return [];
    }
  }
  const inner = unwrapSchema(schema);
  return inner instanceof z.ZodObject ? Object.keys(inner.shape) : [];
}

function unknownKeyMessage(parent: ConfigPath, key: string): string {
  const known = optionNamesAt(parent);
  const near = nearest(key, known);
  if (near !== undefined) return `unknown option "${key}" (did you mean "${near}"?)`;
  const where = parent.length > 0 ? ` in ${formatPath(parent)}` : ' at the top level';
  return `unknown option "${key}"${where}; expected one of: ${known.join(', ')}`;
}

function bound(inclusive: boolean | undefined, below: boolean, limit: number | bigint): string {
  const op = below ? (inclusive === false ? '>' : '≥') : inclusive === false ? '<' : '≤';
  return `${op} ${String(limit)}`;
}

function expectation(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return `expected ${TYPE_NAMES[issue.expected] ?? issue.expected}`;
    case 'too_small':
      if (issue.origin === 'string') {
        return Number(issue.minimum) === 1
          ? 'expected a non-empty string'
          : `expected at least ${String(issue.minimum)} characters`;
      }
      if (issue.origin === 'array') return `expected at least ${String(issue.minimum)} entries`;
      return `expected a number ${bound(issue.inclusive, true, issue.minimum)}`;
    case 'too_big':
      if (issue.origin === 'string') return `expected at most ${String(issue.maximum)} characters`;
      if (issue.origin === 'array') return `expected at most ${String(issue.maximum)} entries`;
      return `expected a number ${bound(issue.inclusive, false, issue.maximum)}`;
    case 'invalid_value':
      return `expected one of ${issue.values.map((value) => JSON.stringify(value)).join(', ')}`;
    default:
      return issue.message;
  }
}

/** Converts one zod issue (there is one problem per unknown key). */
export function fromZodIssue(issue: z.core.$ZodIssue, input: unknown): RawIssue[] {
  const path = issue.path.filter(
    (segment): segment is string | number => typeof segment !== 'symbol',
  );
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({
      path: [...path, key],
      message: unknownKeyMessage(path, key),
    }));
  }
  const found = valueAt(input, path);
  const expected = expectation(issue);
  if (found === undefined && issue.code === 'invalid_type') {
    return [{ path, message: `missing (${expected})` }];
  }
  return [{ path, message: `${expected}, found ${showValue(found, path)}` }];
}
