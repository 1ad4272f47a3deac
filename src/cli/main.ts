/**
 * The `replication-engine` command line: parses the command, runs it, and exits with its code.
 * This module runs on import (`bin/replication-engine.js` imports the built copy).
 */
import { readFileSync } from 'node:fs';
import { ReplicationError } from '../errors.js';
import { redactSecrets } from '../observability/redact.js';
import { adminCommand, statusCommand } from './admin.js';
import type { Io, ParsedArgs } from './args.js';
import { CliError, UsageError, parseCommandArgs, write } from './args.js';
import { EXIT, PROGRAM, commandHelp, findCommand, programHelp } from './commands.js';
import { delCommand, getCommand, lsCommand, putCommand } from './data.js';
import { demoCommand } from './demo.js';
import { runCommand } from './run.js';
import { watchCommand } from './watch.js';

type Handler = (args: ParsedArgs, io: Io) => Promise<number>;

const HANDLERS: Readonly<Record<string, Handler>> = {
  run: runCommand,
  demo: demoCommand,
  put: putCommand,
  get: getCommand,
  del: delCommand,
  watch: watchCommand,
  ls: lsCommand,
  status: statusCommand,
  repair: (args, io) => adminCommand('repair', args, io),
  pause: (args, io) => adminCommand('pause', args, io),
  resume: (args, io) => adminCommand('resume', args, io),
  resync: (args, io) => adminCommand('resync', args, io),
};

function version(): string {
  try {
    const pkg = JSON.parse(
      readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** Runs the CLI with `argv` (without node and the script); resolves with the exit code. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help') {
    await write(name === undefined ? io.stderr : io.stdout, programHelp());
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '-v' || name === '--version') {
    await write(io.stdout, `${version()}\n`);
    return EXIT.ok;
  }
  if (name === 'help') {
    const topic = rest[0] === undefined ? undefined : findCommand(rest[0]);
    if (rest[0] !== undefined && topic === undefined) {
      await write(io.stderr, `${PROGRAM}: unknown command ${JSON.stringify(rest[0])}\n`);
      return EXIT.usage;
    }
    await write(io.stdout, topic === undefined ? programHelp() : commandHelp(topic));
    return EXIT.ok;
  }
  const spec = findCommand(name);
  const handler = HANDLERS[name];
  if (spec === undefined || handler === undefined) {
    await write(
      io.stderr,
      `${PROGRAM}: unknown command ${JSON.stringify(name)}\nRun \`${PROGRAM} --help\` for the commands.\n`,
    );
    return EXIT.usage;
  }
  try {
    const args = parseCommandArgs(spec, rest);
    if (args.values['help'] === true) {
      await write(io.stdout, commandHelp(spec));
      return EXIT.ok;
    }
    return await handler(args, io);
  } catch (error) {
    if (error instanceof UsageError) {
      await write(
        io.stderr,
        `${PROGRAM} ${name}: ${error.message}\nRun \`${PROGRAM} ${name} --help\` for usage.\n`,
      );
      return error.exitCode;
    }
    if (error instanceof CliError) {
      await write(io.stderr, `${PROGRAM} ${name}: ${redactSecrets(error.message)}\n`);
      return error.exitCode;
    }
    const message =
      error instanceof ReplicationError || error instanceof Error ? error.message : String(error);
    await write(io.stderr, `${PROGRAM} ${name}: ${redactSecrets(message)}\n`);
    return EXIT.failure;
  }
}

const io: Io = {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
};

main(process.argv.slice(2), io).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${PROGRAM}: ${redactSecrets(String(error))}\n`);
    process.exit(EXIT.failure);
  },
);
