/**
 * Config problems and how they read: `node.yaml:12:5 replication.peers[1].redis_url: expected …,
 * found "…"`. Secrets (passwords in URLs, values under password/token/secret keys) never appear.
 */
import { ConfigError } from '../errors.js';

/** A path into the config: mapping keys and list indices. */
export type ConfigPath = readonly (string | number)[];

/** A 1-based position in the source text. */
export interface SourcePosition {
  readonly line: number;
  readonly column: number;
  /** Offset in the source text, to order problems as they appear. */
  readonly offset: number;
}

/** One problem with a config. */
export interface ConfigIssue {
  /** Dotted, indexed path, e.g. `replication.peers[1].redis_url`; `''` for the whole document. */
  readonly path: string;
  /** What was expected and what was found, secrets redacted. */
  readonly message: string;
  /** Where in the source the problem is, when the config came from text. */
  readonly position?: SourcePosition;
}

/** Where a config came from, for error messages and relative file paths. */
export interface ConfigSource {
  /** Shown before each problem, e.g. the file name. */
  readonly name?: string;
  /** Directory relative `tls.*_file` paths are resolved against. @default process.cwd() */
  readonly baseDir?: string;
  /** Finds the source position of a config path (from the YAML document). */
  readonly locate?: (path: ConfigPath) => SourcePosition | undefined;
}

/**
 * A config failed validation. `path` is the first problem's path; `issues` lists them all, in the
 * order they appear in the source. The message has one line per problem.
 */
export class ConfigValidationError extends ConfigError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[], sourceName?: string) {
    super('', issues.map((issue) => formatIssue(issue, sourceName)).join('\n'));
    // ConfigError's constructor would put the path in front of the location; set it afterwards.
    (this as { path: string }).path = issues[0]?.path ?? '';
    this.issues = issues;
  }
}

/** Renders `source:line:column path: message`, leaving out the parts that are unknown. */
export function formatIssue(issue: ConfigIssue, sourceName?: string): string {
  let where = sourceName ?? '';
  if (issue.position) {
    where = `${where || '<config>'}:${issue.position.line}:${issue.position.column}`;
  }
  const subject = issue.path || (where ? '' : '(config)');
  const head = [where, subject].filter((part) => part !== '').join(' ');
  return `${head}: ${issue.message}`;
}

/** `replication.peers[1].redis_url` from `['replication', 'peers', 1, 'redis_url']`. */
export function formatPath(path: ConfigPath): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else if (/^[A-Za-z_][\w-]*$/.test(segment)) text += text === '' ? segment : `.${segment}`;
    else text += `[${JSON.stringify(segment)}]`;
  }
  return text;
}

const SECRET_KEY = /password|passwd|token|secret|credential/i;
// Greedy up to the last `@`: a password may itself contain unescaped `@`, `/`, `#` or spaces, and
// hiding too much of a bad value is harmless where showing part of a password is not.
const URL_CREDENTIALS = /(\/\/[^/@\s:]*):.*@/g;

/** True when a value at this path is a secret and must never be shown. */
export function isSecretPath(path: ConfigPath): boolean {
  return path.some((segment) => typeof segment === 'string' && SECRET_KEY.test(segment));
}

/** Replaces the password of every `scheme://user:password@` in `text` with `***`. */
export function redactCredentials(text: string): string {
  return text.replace(URL_CREDENTIALS, '$1:***@');
}

const MAX_SHOWN = 80;

/** How a found value is shown in a message: JSON-like, shortened, secrets redacted. */
export function showValue(value: unknown, path: ConfigPath): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (isSecretPath(path)) return '"***"';
  if (typeof value === 'string') {
    let text = redactCredentials(value);
    if (text.length > MAX_SHOWN) text = `${text.slice(0, MAX_SHOWN)}…`;
    return JSON.stringify(text);
  }
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return String(value);
  }
  return typeof value;
}
