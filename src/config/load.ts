/**
 * Reading a YAML config file: syntax, `${ENV}` interpolation, then {@link resolveConfig}, with every
 * problem reported as `file:line:column path: expected …, found …`.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import type { Document } from 'yaml';
import { ConfigError } from '../errors.js';
import { interpolateDocument } from './interpolate.js';
import type { Environment } from './interpolate.js';
import { ConfigValidationError, formatPath, redactCredentials } from './issues.js';
import type { ConfigIssue, ConfigPath, SourcePosition } from './issues.js';
import { resolveConfig } from './resolve.js';
import type { ResolvedConfig } from './types.js';

/** Options of {@link parseConfig}. */
export interface ParseConfigOptions {
  /** Where `${VAR}` references are looked up. @default process.env */
  readonly env?: Environment;
  /** Shown in error messages, usually the file name. @default '<config>' */
  readonly sourceName?: string;
  /** Directory relative `tls.*_file` paths are resolved against. @default process.cwd() */
  readonly baseDir?: string;
}

function positionOf(offset: number, lineCounter: LineCounter): SourcePosition {
  const { line, col } = lineCounter.linePos(offset);
  return { line, column: col, offset };
}

/** The source offset of `path`: a mapping entry's key, a list item, or the nearest ancestor. */
function offsetOf(doc: Document, path: ConfigPath): number {
  let node: unknown = doc.contents;
  let offset = doc.contents?.range?.[0] ?? 0;
  for (const segment of path) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find(
        (item) => isScalar(item.key) && String(item.key.value) === String(segment),
      );
      if (!pair || !isScalar(pair.key)) break;
      offset = pair.key.range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item: unknown = node.items[segment];
      if (!isScalar(item) && !isMap(item) && !isSeq(item) && !isAlias(item)) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset;
}

/**
 * Parses, interpolates and resolves the text of a YAML config file.
 * @throws {ConfigError} (a {@link ConfigValidationError}) locating every problem in the text.
 */
export function parseConfig(text: string, options: ParseConfigOptions = {}): ResolvedConfig {
  const sourceName = options.sourceName ?? '<config>';
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const issues: ConfigIssue[] = doc.errors.map((error) => ({
      path: '',
      // yaml's messages name the construct, not the text; redact anyway in case one quotes it.
      message: `invalid YAML: ${redactCredentials(error.message)}`,
      position: positionOf(error.pos[0], lineCounter),
    }));
    throw new ConfigValidationError(issues, sourceName);
  }
  const locate = (path: ConfigPath): SourcePosition => positionOf(offsetOf(doc, path), lineCounter);

  const unset = interpolateDocument(doc, options.env ?? process.env);
  if (unset.length > 0) {
    const issues = unset.map(({ path, message }) => ({
      path: formatPath(path),
      message,
      position: locate(path),
    }));
    throw new ConfigValidationError(issues, sourceName);
  }

  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    throw new ConfigValidationError(
      [{ path: '', message: `invalid YAML: ${(error as Error).message}` }],
      sourceName,
    );
  }
  return resolveConfig(value, {
    name: sourceName,
    baseDir: options.baseDir ?? process.cwd(),
    locate,
  });
}

/**
 * Reads and resolves a YAML config file; relative TLS file paths are resolved against its directory.
 * @throws {ConfigError} when the file cannot be read or any option is invalid.
 */
export function loadConfigFile(path: string, env: Environment = process.env): ResolvedConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    const why = code === 'ENOENT' ? 'no such file' : code;
    throw new ConfigError('', `${path}: cannot read the config file (${why})`, { cause: error });
  }
  return parseConfig(text, {
    env,
    sourceName: path,
    baseDir: dirname(resolvePath(path)),
  });
}
