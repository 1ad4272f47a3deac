/**
 * Every command of the `replication-engine` CLI: its options (what `parseArgs` accepts) and its
 * help text, rendered from the same definitions so the two cannot disagree. docs/CLI.md quotes
 * each help text verbatim (a test checks it).
 */

/** One option of a command, as `node:util` `parseArgs` takes it, plus its documentation. */
export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** Placeholder of the value in the help, e.g. `FILE`. */
  readonly value?: string;
  readonly description: string;
}

/** One command. */
export interface CommandSpec {
  readonly name: string;
  /** Arguments after the command name, e.g. `KEY [VALUE]`. */
  readonly args: string;
  /** One line, for the command list. */
  readonly summary: string;
  /** Paragraphs shown under the usage line. */
  readonly description: string;
  readonly options: Readonly<Record<string, OptionSpec>>;
  readonly exitCodes: readonly (readonly [code: number, meaning: string])[];
}

export const PROGRAM = 'replication-engine';

/** Exit codes shared by every command. */
export const EXIT = {
  ok: 0,
  /** The operation failed, the key is absent, the daemon is unhealthy. */
  failure: 1,
  /** Bad usage or config; for `status`/admin commands also: the daemon is unreachable. */
  usage: 2,
  /** Interrupted by Ctrl-C (128 + SIGINT). */
  interrupted: 130,
} as const;

const HELP: OptionSpec = { type: 'boolean', short: 'h', description: 'Show this help and exit.' };

const TARGET: Readonly<Record<string, OptionSpec>> = {
  config: {
    type: 'string',
    short: 'c',
    value: 'FILE',
    description: "A node's YAML config: its local: Redis and prefix, and its local_node_id.",
  },
  redis: {
    type: 'string',
    value: 'URL',
    description: 'Redis URL of the node (redis:// or rediss://), instead of --config.',
  },
  prefix: {
    type: 'string',
    value: 'P',
    description: 'Key prefix of the node\'s store, with --redis (default "").',
  },
  'node-id': {
    type: 'string',
    value: 'ID',
    description: 'Node id written as the origin of the change, with --redis.',
  },
};

const DAEMON: Readonly<Record<string, OptionSpec>> = {
  url: {
    type: 'string',
    value: 'URL',
    description: "Base URL of the daemon's HTTP server (default http://127.0.0.1:9090).",
  },
  config: {
    type: 'string',
    short: 'c',
    value: 'FILE',
    description: "Find the HTTP host, port and token in the daemon's YAML config instead.",
  },
  timeout: {
    type: 'string',
    value: 'DURATION',
    description: 'How long to wait for the daemon, e.g. "5s" (default 10s).',
  },
  json: { type: 'boolean', description: 'Print the JSON answer instead of a summary.' },
};

const ADMIN: Readonly<Record<string, OptionSpec>> = {
  peer: { type: 'string', value: 'ID', description: 'The peer (its node_id). Required.' },
  ...DAEMON,
  token: {
    type: 'string',
    value: 'TOKEN',
    description: "The daemon's http.token (default: $REPLICATION_ENGINE_TOKEN, else --config's).",
  },
};

const ADMIN_EXIT: CommandSpec['exitCodes'] = [
  [0, 'done'],
  [1, 'the daemon refused or failed (unknown peer, bad token, error)'],
  [2, 'bad usage, bad config, or the daemon is unreachable'],
];

function adminCommand(name: string, summary: string, description: string): CommandSpec {
  return {
    name,
    args: '--peer ID',
    summary,
    description,
    options: { ...ADMIN, help: HELP },
    exitCodes: ADMIN_EXIT,
  };
}

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'run',
    args: '-c FILE',
    summary:
      'Run a node: replicate its peers, serve its dashboard, metrics, health checks and admin API.',
    description: [
      'Runs the daemon in the foreground. The config is checked before anything connects; an',
      'invalid file is reported with its line and path, and the command exits 2.',
      '',
      'Signals: SIGTERM or SIGINT drain (finish the batches in flight, save the cursors) and exit 0;',
      'a second one exits 1 at once. SIGHUP reloads the config file and applies it live (peers',
      'added, removed or changed, settings changed); an invalid file is logged and the running',
      'config stays. Logs are JSON lines on stdout; $REPLICATION_ENGINE_LOG_LEVEL sets the',
      'default level.',
    ].join('\n'),
    options: {
      config: {
        type: 'string',
        short: 'c',
        value: 'FILE',
        description: "The node's YAML config (see docs/CONFIG.md). Required.",
      },
      'log-level': {
        type: 'string',
        value: 'LEVEL',
        description: 'trace, debug, info, warn, error, fatal or silent (default info).',
      },
      help: HELP,
    },
    exitCodes: [
      [0, 'stopped by SIGTERM or SIGINT after draining'],
      [1, 'failed to start (HTTP port, cursor database, store of another node) or a second signal'],
      [2, 'bad usage or invalid config'],
    ],
  },
  {
    name: 'demo',
    args: '',
    summary: 'Start a local three-node mesh and watch it replicate, fail and converge.',
    description: [
      'Needs only Node and redis-server on PATH. Starts three redis-servers on free ports (in a',
      'temp dir) and three nodes replicating each other, then narrates: writes on every node,',
      "deletes, conflicting writes of the same key on all three, one node's Redis killed and",
      'brought back with its data, and finally the three stores side by side: the same key counts',
      'and the same Merkle root. While it runs, a live dashboard shows the three nodes side by',
      'side (lag, circuits, applies, repairs) at the loopback URL printed at the start. Ctrl-C',
      'stops it at any point; the end or Ctrl-C leaves no process and no file behind. With',
      "--cluster, paris's store is a 3-master Redis Cluster started on free ports (needs",
      'redis-cli too), tailed and repaired from by the other two as a cluster peer.',
    ].join('\n'),
    options: {
      quick: { type: 'boolean', description: 'Fewer writes and no pauses: runs in seconds.' },
      stay: {
        type: 'boolean',
        description: 'At the end, keep the mesh and its dashboard running until Ctrl-C (exit 0).',
      },
      cluster: {
        type: 'boolean',
        description: 'Run paris on a 3-master Redis Cluster; the others tail its 16 streams.',
      },
      help: HELP,
    },
    exitCodes: [
      [0, 'the three nodes converged'],
      [1, 'they did not, or the demo could not start (is redis-server on PATH?)'],
      [2, 'bad usage'],
      [130, 'interrupted by Ctrl-C (everything cleaned up)'],
    ],
  },
  {
    name: 'put',
    args: 'KEY [VALUE]',
    summary: "Write a document to a node's store (VALUE, or stdin).",
    description: [
      "Writes KEY on the node, as a local write: it gets the node's next clock and replicates.",
      'The content is VALUE, or stdin when VALUE is absent or "-", byte for byte (read from a',
      'terminal, it ends with Ctrl-D). An empty value, as VALUE or stdin, is refused unless',
      '--empty. Its content type is json when it parses as JSON, binary otherwise, unless --json',
      'or --binary says. With --ttl, the document expires that long from now: from then on no',
      'node serves it (get and ls say not found); a later put without --ttl clears the expiry.',
    ].join('\n'),
    options: {
      ...TARGET,
      json: { type: 'boolean', description: 'Store as json (the content must parse as JSON).' },
      binary: { type: 'boolean', description: 'Store as binary.' },
      empty: { type: 'boolean', description: 'Store an empty value (an empty VALUE or stdin).' },
      ttl: {
        type: 'string',
        value: 'DURATION',
        description: 'Expire the document after DURATION (30s, 15m, 2h, 7d; a bare number is ms).',
      },
      help: HELP,
    },
    exitCodes: [
      [0, 'stored'],
      [1, 'failed (Redis unreachable, content too large or not JSON with --json)'],
      [2, 'bad usage or invalid config'],
    ],
  },
  {
    name: 'get',
    args: 'KEY',
    summary: "Print a document from a node's store.",
    description: [
      'Prints the content of KEY to stdout byte for byte. With --json, prints the record instead:',
      'key, version, updated_at, origin, content_hash, content_type, deleted, and content (text',
      'when it is UTF-8 text, whatever its type, else base64; content_encoding says which); a',
      "deleted key's tombstone (an expired document, with expires_at) is printed too, but the exit",
      'code is still 1.',
    ].join('\n'),
    options: {
      ...TARGET,
      json: { type: 'boolean', description: 'Print the record and its metadata as JSON.' },
      help: HELP,
    },
    exitCodes: [
      [0, 'found'],
      [1, 'absent, deleted, expired, or failed (message on stderr)'],
      [2, 'bad usage or invalid config'],
    ],
  },
  {
    name: 'del',
    args: 'KEY',
    summary: "Delete a document from a node's store (writes a tombstone).",
    description: [
      'Deletes KEY by writing a tombstone with the next clock; the tombstone replicates and beats',
      'older writes everywhere. Deleting an absent key writes a tombstone too.',
    ].join('\n'),
    options: { ...TARGET, help: HELP },
    exitCodes: [
      [0, 'deleted'],
      [1, 'failed'],
      [2, 'bad usage or invalid config'],
    ],
  },
  {
    name: 'watch',
    args: '[PREFIX]',
    summary: "Print a node's change feed: every change its store applies, until Ctrl-C.",
    description: [
      'Prints one line per change the store applies, local or replicated (by the hot path or a',
      'repair), in the order it applied them: when, put or del, the key, its version and origin,',
      'where it came from (local, hot:PEER, repair:PEER, supersede:PEER) and its position. Only',
      'keys that start with PREFIX, when given. Starts with the changes made from now on, or after',
      '--from POSITION (a position printed before: nothing after it is missed while the feed still',
      'holds it), or with the oldest change the feed holds (--from start). A "resync" line says',
      'the feed was trimmed past the position (store.change_feed_maxlen): changes were lost to',
      'this watch. SIGINT (Ctrl-C) or SIGTERM stops it.',
    ].join('\n'),
    options: {
      ...TARGET,
      from: {
        type: 'string',
        value: 'POSITION',
        description: 'Start after this position, or "now" (the default) or "start".',
      },
      json: {
        type: 'boolean',
        description: "Print each change as one line of JSON, with its record (get --json's form).",
      },
      purges: { type: 'boolean', description: 'Print purged tombstones too (op purge).' },
      help: HELP,
    },
    exitCodes: [
      [0, 'stopped by SIGINT or SIGTERM'],
      [1, 'failed (Redis unreachable or failing, the change feed off, a bad --from)'],
      [2, 'bad usage or invalid config'],
    ],
  },
  {
    name: 'ls',
    args: '[PREFIX]',
    summary: "List the keys of a node's store (those starting with PREFIX).",
    description: [
      'Prints the key of every live document whose key starts with PREFIX (every key without',
      'one), one a line; PREFIX is plain text, not a pattern. The store is read in pages of 100, so',
      "a large store is never loaded at once; the order is the store's (by a hash of the key), not",
      'sorted. A key present for the whole listing is printed exactly once, even while the node',
      'takes writes. With --json, one record a line as get --json prints it (content included);',
      'with --count, only how many there are.',
    ].join('\n'),
    options: {
      ...TARGET,
      json: { type: 'boolean', description: 'Print each record as one line of JSON.' },
      deleted: {
        type: 'boolean',
        description: 'Include deleted and expired keys, marked "(deleted)" or "(expired)".',
      },
      limit: { type: 'string', value: 'N', description: 'Stop after N keys.' },
      count: { type: 'boolean', description: 'Print only the number of keys.' },
      help: HELP,
    },
    exitCodes: [
      [0, 'listed (none is not an error)'],
      [1, 'failed (Redis unreachable)'],
      [2, 'bad usage or invalid config'],
    ],
  },
  {
    name: 'status',
    args: '',
    summary: "Show a running daemon's health: state, peers, lag, circuits, repairs.",
    description: "Reads the daemon's /health and prints it for a person (or as JSON with --json).",
    options: { ...DAEMON, help: HELP },
    exitCodes: [
      [0, 'healthy'],
      [1, 'unhealthy (a peer down, a circuit open, not running)'],
      [2, 'bad usage, bad config, or the daemon is unreachable'],
    ],
  },
  {
    name: 'repair',
    args: '--peer ID [--dry-run]',
    summary: 'Run a Merkle repair with a peer now (or list what it would change).',
    description: [
      "Asks the daemon to compare its Merkle tree with the peer's and apply the peer's winning",
      'records now. With --dry-run nothing changes: the keys a repair would change are listed.',
    ].join('\n'),
    options: {
      ...ADMIN,
      'dry-run': { type: 'boolean', description: 'List what would change; change nothing.' },
      help: HELP,
    },
    exitCodes: ADMIN_EXIT,
  },
  adminCommand(
    'pause',
    'Stop replicating from a peer until resumed.',
    'Asks the daemon to stop reading from the peer (the batches in flight, at most three, still land).',
  ),
  adminCommand('resume', 'Resume replicating from a paused peer.', 'Undoes pause.'),
  adminCommand(
    'resync',
    "Forget a peer's cursor, read its stream again and repair it.",
    "Asks the daemon to reset the peer's cursor (its stream is read again from the start; LWW\nmakes that harmless) and to run a repair with it at once.",
  ),
];

/** The command named `name`, if any. */
export function findCommand(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name);
}

function optionLabel(name: string, spec: OptionSpec): string {
  const long = `--${name}${spec.value !== undefined ? ` ${spec.value}` : ''}`;
  return spec.short !== undefined ? `-${spec.short}, ${long}` : `    ${long}`;
}

function column(rows: readonly (readonly [string, string])[], indent = '  '): string[] {
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `${indent}${left.padEnd(width)}  ${right}`.trimEnd());
}

/** The `--help` text of a command. */
export function commandHelp(spec: CommandSpec): string {
  const args = spec.args === '' ? '' : ` ${spec.args}`;
  const lines = [`Usage: ${PROGRAM} ${spec.name}${args} [options]`, '', spec.description, ''];
  lines.push('Options:');
  lines.push(
    ...column(Object.entries(spec.options).map(([n, o]) => [optionLabel(n, o), o.description])),
  );
  lines.push('', 'Exit codes:');
  lines.push(...column(spec.exitCodes.map(([code, meaning]) => [String(code), meaning])));
  return `${lines.join('\n')}\n`;
}

/** The top-level `--help` text. */
export function programHelp(): string {
  const lines = [
    `Usage: ${PROGRAM} <command> [options]`,
    '',
    'Active-active replication of documents across a mesh of Redis-backed nodes.',
    '',
    'Commands:',
    ...column(COMMANDS.map((c) => [c.name, c.summary])),
    '',
    'Options:',
    ...column([
      ['-h, --help', 'Show this help and exit.'],
      ['-v, --version', 'Print the version and exit.'],
    ]),
    '',
    `Run \`${PROGRAM} <command> --help\` for a command's options and exit codes.`,
  ];
  return `${lines.join('\n')}\n`;
}
