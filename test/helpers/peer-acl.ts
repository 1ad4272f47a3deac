/**
 * The peer ACLs docs/OPERATIONS.md gives, read from the doc as an operator would copy them, and
 * the config of a daemon that replicates from a peer through such a user (the ACL tests).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';

/**
 * The `ACL SETUSER replicator …` line of docs/OPERATIONS.md as arguments, its password
 * `password`: the single instance's (the first), or a cluster's (the one naming hash tags).
 */
export function documentedPeerAcl(password: string, layout: 'single' | 'cluster'): string[] {
  const doc = readFileSync(new URL('../../docs/OPERATIONS.md', import.meta.url), 'utf8');
  const line = doc
    .split('\n')
    .find(
      (l) =>
        l.startsWith('ACL SETUSER replicator ') && l.includes('{*}') === (layout === 'cluster'),
    );
  assert.ok(line !== undefined, `docs/OPERATIONS.md has the ${layout} peer's ACL SETUSER line`);
  return line.split(/\s+/).map((word) => (word === '>CHANGE-ME' ? `>${password}` : word));
}

/** What {@link writePeerDaemonConfig} needs. */
export interface PeerDaemonConfig {
  /** The peer's address, `host:port`: the daemon logs in as `replicator:${PEER_PASSWORD}`. */
  readonly peerAddress: string;
  readonly localUrl: string;
  readonly cursorPath: string;
  readonly httpPort: number;
}

/**
 * Writes to `file` the YAML config of daemon node-a replicating from peer node-b through the
 * `replicator` user (its password from `${PEER_PASSWORD}`), repairs only when asked.
 */
export function writePeerDaemonConfig(file: string, config: PeerDaemonConfig): void {
  writeFileSync(
    file,
    [
      'replication:',
      '  local_node_id: "node-a"',
      '  settings:',
      '    hot_path: { block_timeout: "500ms" }',
      '    cold_path: { interval_sec: 3600 }',
      '  peers:',
      '    - node_id: "node-b"',
      `      redis_url: "redis://replicator:\${PEER_PASSWORD}@${config.peerAddress}"`,
      '  cursor:',
      `    sqlite_path: "${config.cursorPath}"`,
      'local:',
      `  redis_url: "${config.localUrl}"`,
      'http:',
      `  port: ${config.httpPort}`,
      '',
    ].join('\n'),
  );
}
