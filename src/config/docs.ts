/**
 * Renders docs/CONFIG.md from the schema's documentation, so the reference cannot drift from the
 * code. `scripts/gen-config-doc.ts` writes it; a unit test checks the committed file is current.
 */
import { z } from 'zod';
import { configDocs, configSchema, unwrapSchema } from './schema.js';
import type { OptionDoc } from './schema.js';

interface DocSection {
  readonly path: string;
  readonly description: string;
  readonly options: readonly (OptionDoc & { readonly name: string })[];
}

/** Sections in document order, depth first, each with the options directly inside it. */
function collectSections(schema: z.ZodType, path: string, out: DocSection[]): void {
  const doc = configDocs.get(schema);
  const inner = unwrapSchema(schema);
  if (inner instanceof z.ZodArray) {
    collectSections(inner.element as z.ZodType, `${path}[]`, out);
    return;
  }
  if (!(inner instanceof z.ZodObject)) return;
  const options: (OptionDoc & { name: string })[] = [];
  const children: [string, z.ZodType][] = [];
  const shape = inner.shape as Record<string, z.ZodType>;
  for (const [name, child] of Object.entries(shape)) {
    const childDoc = configDocs.get(child);
    if (childDoc?.kind === 'option') options.push({ ...childDoc, name });
    const childPath = path ? `${path}.${name}` : name;
    const childInner = unwrapSchema(child);
    if (childInner instanceof z.ZodObject || childInner instanceof z.ZodArray) {
      children.push([childPath, child]);
    }
  }
  if (options.length > 0) {
    out.push({ path, description: doc?.description ?? '', options });
  }
  for (const [childPath, child] of children) collectSections(child, childPath, out);
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|');
}

function code(text: string): string {
  return text === 'required' || text === 'none' ? `_${text}_` : `\`${text}\``;
}

const INTRO = `# Configuration reference

<!-- Generated from src/config/schema.ts by \`npx tsx scripts/gen-config-doc.ts\`. Do not edit. -->

The daemon reads one YAML file (\`replication-engine run -c node.yaml\`). The \`replication:\`
section is exactly the Rust replication-engine's: the same option names and defaults. Beside it,
\`local:\`, \`store:\` and \`http:\` configure this node's own Redis, store and HTTP server. Only
\`replication.local_node_id\` is required:

\`\`\`yaml
replication:
  local_node_id: "uk.node.london-1"
  peers:
    - node_id: "uk.node.manchester-1"
      redis_url: "rediss://replicator:\${PEER_PASSWORD}@peer1:6379"
\`\`\`

Library users pass the same shape (snake_case) to \`resolveConfig()\`.

## Values

- **Durations** are written \`"250ms"\`, \`"5s"\`, \`"2m"\`, \`"1h"\`, \`"7d"\` (or compounds such as
  \`"1h30m"\`) or as a bare number. A bare number counts seconds for options ending in \`_sec\`
  and for \`block_timeout\` and \`tombstone_ttl\`, and milliseconds for options ending in \`_ms\`.
- **Byte sizes** are an integer number of bytes, or a string with a unit: \`B\`, \`KB\`/\`MB\`/\`GB\`
  (powers of 1000) or \`KiB\`/\`MiB\`/\`GiB\` (powers of 1024), e.g. \`"512KB"\`, \`"64MiB"\`.
- **Environment variables**: \`\${NAME}\` in any string value is replaced by the variable's value
  (an error when it is not set), \`\${NAME:-default}\` by the default when it is unset or empty, and
  \`$\${\` stands for a literal \`\${\`. An unquoted value that becomes a number or \`true\`/\`false\`
  takes that type (\`port: \${HTTP_PORT}\`); one that becomes empty counts as absent.
- **Empty values** (\`key:\` with nothing after it) mean "use the default".
- **Unknown options are errors**, as are values of the wrong type or out of range. An error names
  the file, line, column and path of the option, what was expected and what was found, e.g.
  \`node.yaml:12:7 replication.peers[1].redis_url: expected a redis:// or rediss:// URL, found "http://x"\`.
  Passwords in URLs and values of options named like \`token\` or \`password\` are never shown.
- **Redis URLs** are \`redis://[user:password@]host[:port][/db]\`; \`rediss://\` turns TLS on, with
  certificate verification.
- **Node ids** (\`local_node_id\`, \`peers[].node_id\`) are any Unicode text of 1 to 256 UTF-16
  code units without whitespace, control characters or lone surrogates (\`"ü-node"\` and
  \`"東京-1"\` are fine). Peers' \`node_id\`s must be unique and differ from \`local_node_id\`.
  Ids compare by the bytes of their UTF-8, on every node alike (docs/PROTOCOL.md §1). In the
  local Redis's \`CLIENT LIST\` the daemon's connection is named \`replication-engine:<id>\`, with
  every character outside \`!\`..\`~\`, and \`%\`, written as the \`%XX\` escapes of its UTF-8
  bytes (\`replication-engine:%C3%BC-node\`; \`decodeURIComponent\` gives the id back).
- **TLS files** are read when the config is loaded; relative paths are resolved against the
  directory of the config file.
- \`min_batch_size\` ≤ \`batch_size\` ≤ \`max_batch_size\`, \`backoff_base_sec\` ≤
  \`backoff_max_sec\`, and \`store.tombstone_ttl\` must exceed \`cold_path.interval_sec\` (a
  tombstone must outlive at least one repair cycle, or a missed delete could be undone).
`;

/** The text of docs/CONFIG.md. */
export function renderConfigDoc(): string {
  const sections: DocSection[] = [];
  collectSections(configSchema, '', sections);
  const parts = [INTRO];
  for (const section of sections) {
    parts.push(`\n## \`${section.path}\`\n\n${section.description}\n`);
    parts.push('\n| Option | Type | Default | Description |\n|---|---|---|---|\n');
    for (const option of section.options) {
      parts.push(
        `| \`${option.name}\` | ${cell(option.type)} | ${cell(code(option.default))} | ${cell(option.description)} |\n`,
      );
    }
  }
  return parts.join('');
}
