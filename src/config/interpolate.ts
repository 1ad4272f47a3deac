/**
 * `${VAR}` and `${VAR:-default}` in the string values of a YAML document, before validation.
 */
import { isMap, isScalar, isSeq } from 'yaml';
import type { Document } from 'yaml';
import type { ConfigPath } from './issues.js';

/** The environment interpolation reads. */
export type Environment = Readonly<Record<string, string | undefined>>;

/** A problem found while interpolating, before it is located. */
export interface InterpolationIssue {
  readonly path: ConfigPath;
  readonly message: string;
}

const REFERENCE = /\$\$\{|\$\{([^}]*)\}|\$\{/g;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const NUMBER = /^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$/;

/**
 * Expands references in `text`: `${NAME}` (an error when unset), `${NAME:-default}` (the default
 * when unset or empty) and `$${` for a literal `${`.
 */
export function interpolate(
  text: string,
  env: Environment,
): { value: string; error?: undefined } | { value?: undefined; error: string } {
  let error: string | undefined;
  const value = text.replace(REFERENCE, (match: string, body: string | undefined) => {
    if (match === '$${') return '${';
    if (body === undefined) {
      error ??= 'unterminated "${" (write "$${" for a literal "${")';
      return match;
    }
    const separator = body.indexOf(':-');
    const name = separator === -1 ? body : body.slice(0, separator);
    if (!NAME.test(name)) {
      error ??= `invalid environment variable reference "\${${name}}"`;
      return match;
    }
    const set = env[name];
    if (separator !== -1) return set === undefined || set === '' ? body.slice(separator + 2) : set;
    if (set === undefined) {
      error ??= `environment variable ${name} is not set (write \${${name}:-default} to give a default)`;
      return match;
    }
    return set;
  });
  return error === undefined ? { value } : { error };
}

/**
 * An unquoted value that interpolates to a number or boolean takes that type, as if it had been
 * written in the file (`port: ${PORT}`); one that interpolates to nothing is absent.
 */
function plainValue(text: string): string | number | boolean | null {
  if (text === '') return null;
  if (NUMBER.test(text)) return Number(text);
  if (/^(?:true|True|TRUE)$/.test(text)) return true;
  if (/^(?:false|False|FALSE)$/.test(text)) return false;
  return text;
}

function visit(
  node: unknown,
  path: ConfigPath,
  env: Environment,
  issues: InterpolationIssue[],
): void {
  if (isMap(node)) {
    for (const pair of node.items) {
      const key: unknown = isScalar(pair.key) ? pair.key.value : pair.key;
      visit(pair.value, [...path, String(key)], env, issues);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, index) => visit(item, [...path, index], env, issues));
  } else if (isScalar(node) && typeof node.value === 'string' && node.value.includes('${')) {
    const result = interpolate(node.value, env);
    if (result.error !== undefined) {
      issues.push({ path, message: result.error });
    } else {
      node.value = node.type === 'PLAIN' ? plainValue(result.value) : result.value;
    }
  }
}

/** Interpolates every string value of `doc` in place; returns the problems (unset variables…). */
export function interpolateDocument(doc: Document, env: Environment): InterpolationIssue[] {
  const issues: InterpolationIssue[] = [];
  visit(doc.contents, [], env, issues);
  return issues;
}
