/**
 * Structured mutations of YAML config files for fuzzing parseConfig: line edits, odd scalars,
 * YAML syntax (anchors, tags, flow collections), `${VAR}` references, and value swaps at real
 * config paths. Seeds are the project's own example configs.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { parse, stringify } from 'yaml';
import { FUZZ_ENV } from './inputs.js';

export { FUZZ_ENV };

/** A small, valid config. */
export const MINIMAL_CONFIG = `replication:
  local_node_id: node-a
  peers:
    - node_id: node-b
      redis_url: redis://127.0.0.1:6380
  cursor:
    sqlite_path: /tmp/cursors.db
http:
  enabled: false
`;

/** A config using most sections, env references and durations. */
export const FULL_CONFIG = `replication:
  local_node_id: \${NODE_ID}
  settings:
    hot_path: { batch_size: 200, block_timeout: 250ms, adaptive_batch_size: true }
    cold_path: { enabled: true, interval_sec: 2m, max_items_per_cycle: 500 }
    peer_health: { enabled: true, ping_interval_sec: 5s, idle_threshold_sec: 10 }
    slo: { max_replication_lag_sec: 60 }
  peers:
    - node_id: node-b
      redis_url: rediss://user:\${PASSWORD}@peer-b:6379
      redis_prefix: 'sync:'
      priority: 1
      circuit_failure_threshold: 3
      circuit_reset_timeout_sec: 10s
  cursor: { sqlite_path: ./cursors.db, wal_mode: true }
local:
  redis_url: redis://127.0.0.1:6379
  redis_prefix: ''
store:
  cdc_maxlen: 100000
  tombstone_ttl: 7d
  relay: false
  max_item_bytes: 1048576
  conflict_log: true
http: { host: 127.0.0.1, port: 9090, token: '\${TOKEN}' }
`;

/** The seed configs, as text. */
export function seedConfigs(): string[] {
  return [
    readFileSync(new URL('../fixtures/seed-example.yaml', import.meta.url), 'utf8'),
    MINIMAL_CONFIG,
    FULL_CONFIG,
  ];
}

const ODD_SCALARS = [
  '',
  '~',
  'null',
  'true',
  'no',
  '-1',
  '0',
  '1e309',
  '-0',
  '.nan',
  '0x10',
  '0o17',
  '1_000',
  '9999999999999999999999',
  '5x',
  '1.5s',
  '-5s',
  '250ms',
  '2m',
  '7d',
  '1h30m',
  '"${NODE_ID}"',
  '${UNSET}',
  '${EMPTY}',
  '${WEIRD}',
  '$${NODE_ID}',
  '${',
  '&a x',
  '*a',
  '*missing',
  '!!binary aGVsbG8=',
  '!!str 5',
  '!custom x',
  '[',
  '{',
  '[1, 2]',
  '{a: 1}',
  "'",
  '"\\u0000"',
  '|\n  block',
  'redis://u:p@h:1',
  'rediss://',
  'ftp://x',
  'redis://[::1]:6379',
  '\u0000',
  '\t',
  '<<: *a',
  '? complex',
  '---',
  '...',
  '#',
  '%YAML 1.1',
];

const oddScalar = fc.oneof(fc.constantFrom(...ODD_SCALARS), fc.string({ maxLength: 20 }));

const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, -1, 0, 1.5, 2 ** 53 + 2, -1e308, '', '5s', 'redis://x:1'),
  fc.string({ maxLength: 20 }),
  fc.jsonValue({ maxDepth: 2 }),
);

type TextMutation = (text: string) => string;

const textMutationArb: fc.Arbitrary<TextMutation> = fc.oneof(
  // Replace the value after some `key:` with an odd scalar.
  fc.tuple(fc.nat(), oddScalar).map(([i, value]) => (text: string) => {
    const lines = text.split('\n');
    const withValue = lines.map((l, n) => [l, n] as const).filter(([l]) => /:\s*\S/.test(l));
    const pick = withValue[i % Math.max(1, withValue.length)];
    if (pick === undefined) return text;
    const [line, n] = pick;
    lines[n] = line.replace(/:\s*.*$/, `: ${value}`);
    return lines.join('\n');
  }),
  // Delete, duplicate or swap lines.
  fc
    .tuple(fc.nat(), fc.nat(), fc.constantFrom('delete', 'duplicate', 'swap'))
    .map(([a, b, how]) => (text: string) => {
      const lines = text.split('\n');
      const i = a % lines.length;
      const j = b % lines.length;
      if (how === 'delete') lines.splice(i, 1);
      else if (how === 'duplicate') lines.splice(i, 0, lines[i]!);
      else [lines[i], lines[j]] = [lines[j]!, lines[i]!];
      return lines.join('\n');
    }),
  // Re-indent a line.
  fc
    .tuple(fc.nat(), fc.integer({ min: 0, max: 8 }), fc.boolean())
    .map(([a, spaces, tab]) => (text: string) => {
      const lines = text.split('\n');
      const i = a % lines.length;
      lines[i] = (tab ? '\t' : ' '.repeat(spaces)) + lines[i]!.trimStart();
      return lines.join('\n');
    }),
  // Insert text anywhere.
  fc
    .tuple(fc.nat(), fc.oneof(oddScalar, fc.string({ maxLength: 10 })))
    .map(([a, s]) => (text: string) => {
      const at = a % (text.length + 1);
      return text.slice(0, at) + s + text.slice(at);
    }),
  // Truncate.
  fc.nat().map((a) => (text: string) => text.slice(0, a % (text.length + 1))),
);

/** Every path to a scalar or collection in a parsed document. */
function pathsOf(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [prefix];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...pathsOf(v, [...prefix, i])));
  else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) out.push(...pathsOf(v, [...prefix, k]));
  }
  return out;
}

function setPath(
  root: unknown,
  path: readonly (string | number)[],
  value: unknown,
  remove: boolean,
): unknown {
  if (path.length === 0) return value;
  let node = root as Record<string | number, unknown>;
  for (const seg of path.slice(0, -1)) node = node[seg] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  if (remove) {
    if (Array.isArray(node) && typeof last === 'number') node.splice(last, 1);
    else delete node[last];
  } else node[last] = value;
  return root;
}

type TreeMutation = (doc: unknown) => unknown;

const treeMutationArb: fc.Arbitrary<TreeMutation> = fc
  .tuple(fc.nat(), oddValue, fc.constantFrom('set', 'remove', 'add'), fc.string({ maxLength: 12 }))
  .map(([i, value, how, name]) => (doc: unknown) => {
    const paths = pathsOf(doc);
    const path = paths[i % paths.length]!;
    if (how === 'add') {
      const target =
        path.length === 0
          ? doc
          : path.reduce<unknown>((n, s) => (n as Record<string, unknown>)[s], doc);
      if (target !== null && typeof target === 'object' && !Array.isArray(target)) {
        (target as Record<string, unknown>)[name] = value;
      }
      return doc;
    }
    return setPath(doc, path, value, how === 'remove');
  });

/** A seed config with one to four text-level mutations. */
export const mutatedTextArb: fc.Arbitrary<string> = fc
  .tuple(
    fc.constantFrom(...seedConfigs()),
    fc.array(textMutationArb, { minLength: 1, maxLength: 4 }),
  )
  .map(([text, mutations]) => mutations.reduce((t, m) => m(t), text));

/** A seed config parsed, mutated at real paths, and written back as YAML. */
export const mutatedTreeArb: fc.Arbitrary<string> = fc
  .tuple(
    fc.constantFrom(...seedConfigs()),
    fc.array(treeMutationArb, { minLength: 1, maxLength: 4 }),
  )
  .map(([text, mutations]) => {
    const doc: unknown = parse(text);
    return stringify(mutations.reduce((d, m) => m(d), doc)) ?? '';
  });
