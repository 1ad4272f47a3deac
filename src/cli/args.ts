/**
 * Argument parsing (node:util parseArgs) against a command's spec, and the errors commands use to
 * choose their exit code.
 */
import { parseArgs } from 'node:util';
import { nearest } from '../config/did-you-mean.js';
import type { CommandSpec } from './commands.js';
import { EXIT } from './commands.js';

/** Where a command reads and writes; the process's streams in real use. */
export interface Io {
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
}

/** A command failed in a way that has its own exit code and a one-line message for stderr. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Wrong arguments: exit 2, with a pointer to `--help`. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT.usage);
    this.name = 'UsageError';
  }
}

/** What `parseArgs` returned for a command. */
export interface ParsedArgs {
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
  readonly positionals: readonly string[];
}

/** Parses `argv` (after the command name) strictly against `spec`'s options. */
export function parseCommandArgs(spec: CommandSpec, argv: readonly string[]): ParsedArgs {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const [name, option] of Object.entries(spec.options)) {
    options[name] = {
      type: option.type,
      ...(option.short !== undefined && { short: option.short }),
    };
  }
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      options,
      allowPositionals: true,
      strict: true,
    });
    return { values, positionals };
  } catch (error) {
    throw new UsageError(usageMessage(spec, error as Error & { code?: string }));
  }
}

/** parseArgs' error as a sentence; an unknown option gets the nearest known one. */
function usageMessage(spec: CommandSpec, error: Error & { code?: string }): string {
  if (error.code !== 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return error.message;
  const given = /'(-{1,2}[^'=\s]+)/.exec(error.message)?.[1];
  if (given === undefined) return error.message;
  const near = nearest(given.replace(/^-+/, ''), Object.keys(spec.options));
  return near === undefined
    ? `unknown option ${given}`
    : `unknown option ${given} (did you mean --${near}?)`;
}

/** The string value of option `name`, if given. */
export function stringOption(args: ParsedArgs, name: string): string | undefined {
  const value = args.values[name];
  return typeof value === 'string' ? value : undefined;
}

/** Whether boolean option `name` was given. */
export function flag(args: ParsedArgs, name: string): boolean {
  return args.values[name] === true;
}

/** Exactly `count` positionals (`names` for the message), or a {@link UsageError}. */
export function positionals(
  args: ParsedArgs,
  names: readonly string[],
  optional: readonly string[] = [],
): string[] {
  const given = args.positionals;
  if (given.length < names.length) {
    throw new UsageError(`missing ${names.slice(given.length).join(' ')}`);
  }
  if (given.length > names.length + optional.length) {
    const extra = given.slice(names.length + optional.length);
    throw new UsageError(`unexpected argument${extra.length > 1 ? 's' : ''}: ${extra.join(' ')}`);
  }
  return [...given];
}

/** Writes `text` and resolves once it is handed to the OS (so exiting afterwards loses nothing). */
export function write(stream: NodeJS.WritableStream, text: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(text, (error) => (error ? reject(error) : resolve()));
  });
}

/** Reads a stream to its end. */
export async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}
