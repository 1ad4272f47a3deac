/**
 * `demo`: a local three-node mesh, narrated. Writes, deletes and conflicting writes on every node;
 * one node's Redis killed and revived; the three stores shown identical at the end. Ctrl-C, an
 * error or the end all leave no process and no file behind.
 */
import { formatHealth } from '../observability/health.js';
import { createLogger } from '../observability/logger.js';
import type { Io, ParsedArgs } from './args.js';
import { flag, positionals, write } from './args.js';
import { EXIT } from './commands.js';
import { CLUSTER_NODE, DEMO_NODE_IDS, DemoMesh, appliedByPeer } from './demo-mesh.js';
import type { NodeSnapshot } from './demo-mesh.js';

class Interrupted extends Error {}

/** How the demo paces itself. */
interface Pace {
  readonly perNode: number;
  /** Pause between steps, for a person to read. */
  readonly pauseMs: number;
  /** Longest wait for replication at any step. */
  readonly waitMs: number;
}

const QUICK: Pace = { perNode: 10, pauseMs: 0, waitMs: 30_000 };
const NORMAL: Pace = { perNode: 100, pauseMs: 1500, waitMs: 60_000 };

/** `demo [--quick] [--stay] [--cluster]`. */
export async function demoCommand(args: ParsedArgs, io: Io): Promise<number> {
  positionals(args, []);
  const pace = flag(args, 'quick') ? QUICK : NORMAL;
  const mesh = new DemoMesh({ cluster: flag(args, 'cluster') });
  const onExit = (): void => mesh.closeNow();
  process.once('exit', onExit);
  let interrupts = 0;
  let interrupt!: (error: Interrupted) => void;
  const interrupted = new Promise<never>((_resolve, reject) => (interrupt = reject));
  interrupted.catch(() => undefined);
  const onSigint = (): void => {
    interrupts += 1;
    if (interrupts > 1) {
      mesh.closeNow();
      process.exit(EXIT.interrupted);
    }
    interrupt(new Interrupted());
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  const say = (line = ''): Promise<void> => write(io.stdout, `${line}\n`);
  try {
    await Promise.race([script(mesh, pace, say, () => interrupts > 0), interrupted]);
    if (flag(args, 'stay')) {
      await say('The mesh and its dashboard keep running: Ctrl-C to stop them.');
      await interrupted.catch(() => undefined);
    }
    return EXIT.ok;
  } catch (error) {
    if (error instanceof Interrupted) {
      await say('\ninterrupted: stopping the nodes and the redis-servers…');
      return EXIT.interrupted;
    }
    await write(io.stderr, `demo failed: ${(error as Error).message}\n`);
    return EXIT.failure;
  } finally {
    await mesh.close();
    await say(`cleaned up: redis-servers stopped, ${mesh.root} removed`);
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
    process.off('exit', onExit);
  }
}

type Say = (line?: string) => Promise<void>;

async function script(mesh: DemoMesh, pace: Pace, say: Say, stopped: () => boolean): Promise<void> {
  const started = Date.now();
  const stamp = (): string => `[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s]`;
  let quiet = false;
  const live = (line: string): void => {
    if (!stopped() && !quiet) void say(`  ${stamp()} ${line}`);
  };
  const pause = (): Promise<void> => sleep(pace.pauseMs);
  const until = async (what: string, check: () => Promise<boolean>): Promise<void> => {
    const deadline = Date.now() + pace.waitMs;
    for (;;) {
      if (stopped()) throw new Interrupted();
      if (await check().catch(() => false)) return;
      if (Date.now() > deadline)
        throw new Error(`timed out after ${pace.waitMs} ms waiting for ${what}`);
      await sleep(50);
    }
  };
  const converged = async (): Promise<NodeSnapshot[] | undefined> => {
    const snaps = await mesh.snapshot();
    const first = snaps[0]!;
    const same = snaps.every(
      (s) =>
        s.root === first.root &&
        s.documents === first.documents &&
        s.tombstones === first.tombstones,
    );
    return same ? snaps : undefined;
  };
  const waitConverged = async (what: string): Promise<NodeSnapshot[]> => {
    const t0 = Date.now();
    let result: NodeSnapshot[] | undefined;
    await until(what, async () => (result = await converged()) !== undefined);
    const snaps = result!;
    await say(
      `  ${stamp()} converged in ${Date.now() - t0} ms: every node holds ${snaps[0]!.documents} documents and ${snaps[0]!.tombstones} tombstones`,
    );
    return snaps;
  };

  await say(
    'replication-engine demo: three nodes, each with its own Redis, replicating each other.',
  );
  await say();
  await say(
    mesh.withCluster
      ? `▸ Starting two redis-servers and, for ${CLUSTER_NODE}, a Redis Cluster of 3 masters (append-only files) in ${mesh.root}`
      : `▸ Starting three redis-servers (append-only files) in ${mesh.root}`,
  );
  await mesh.startRedis();
  for (const [i, r] of mesh.redis.entries()) {
    const id = DEMO_NODE_IDS[i]!;
    if (id === CLUSTER_NODE && mesh.cluster !== undefined) {
      const servers = mesh.cluster.servers;
      await say(
        `  ${id.padEnd(7)} Redis Cluster: ${servers.map((s) => `127.0.0.1:${s.port}`).join(' ')}  ` +
          servers.map((s) => `pid ${s.pid}`).join(' '),
      );
      await say(
        `          its store in 16 partitions over the 3 masters; london and tokyo tail its 16 streams`,
      );
    } else {
      await say(`  ${r.dir.slice(mesh.root.length + 1).padEnd(7)} ${r.url}  pid ${r.pid}`);
    }
  }
  await say("▸ Starting three nodes; each tails the other two's CDC streams (hot path) and");
  await say('  compares Merkle trees with them every 3 s (cold path)');
  await mesh.startNodes(createLogger({ level: 'silent' }));
  const url = await mesh.startDashboard();
  await say(`▸ Live dashboard of the three nodes, side by side: ${url}`);
  await say('  open it to watch lag rise when a node fails and fall when it returns');
  await until('every peer connected', () =>
    Promise.resolve(
      mesh.nodes.every((n) => n.node.engine.health().peers.every((p) => p.connected)),
    ),
  );
  await say(`  ${stamp()} all six links up: every node tails the other two`);
  const conflicts = { shown: 0 };
  for (const { id, node } of mesh.nodes) {
    const e = node.engine;
    e.on('peerUp', (peer) => live(`${id} ← ${peer}: connected`));
    e.on('peerDown', (peer, reason) => live(`${id} ← ${peer}: DOWN (${reason})`));
    e.on('gap', (gap) => live(`${id} ← ${gap.peerId}: stream gap (${gap.kind}), repairing`));
    e.on('conflict', (c) => {
      conflicts.shown += 1;
      const winner = c.local?.origin ?? '?';
      live(
        `${id}: conflict on ${c.key}: ${c.incoming.origin}'s write lost to ${winner}'s (last writer wins)`,
      );
    });
    e.on('repair', (report) => {
      if (report.applied > 0) {
        live(`${id} ← ${report.peerId}: Merkle repair applied ${report.applied} record(s)`);
      }
    });
  }
  await pause();

  await say();
  await say(`▸ 1. Writes: every node writes ${pace.perNode} documents of its own`);
  await Promise.all(
    mesh.nodes.map(async ({ id, node }) => {
      for (let i = 0; i < pace.perNode; i += 1) {
        await node.store.put(`user.${id}.${i}`, { name: `user ${i} of ${id}`, city: id, n: i });
      }
    }),
  );
  for (const { id } of mesh.nodes) {
    await say(`  ${id.padEnd(7)} wrote user.${id}.0 … user.${id}.${pace.perNode - 1}`);
  }
  await waitConverged('the writes to replicate');
  for (const { id, node } of mesh.nodes) {
    const applied = await appliedByPeer(node);
    const parts = [...applied].map(([peer, n]) => `${n} from ${peer}`).join(', ');
    const lags = node.engine
      .health()
      .peers.map((p) => `${p.node_id} ${p.lag_ms ?? 0} ms`)
      .join(', ');
    await say(`  ${id.padEnd(7)} applied ${parts}; lag ${lags}`);
  }
  await pause();

  await say();
  const deletes = Math.max(2, Math.floor(pace.perNode / 10));
  await say(
    `▸ 2. Deletes: london deletes ${deletes} of paris's documents (tombstones replicate too)`,
  );
  const london = mesh.get('london').node;
  for (let i = 0; i < deletes; i += 1) await london.store.delete(`user.paris.${i}`);
  await waitConverged('the deletes to replicate');
  await pause();

  await say();
  await say('▸ 3. Conflicts: all three nodes write config.shared at the same moment');
  await Promise.all(
    mesh.nodes.map(({ id, node }) =>
      node.store.put('config.shared', { colour: colourOf(id), written_by: id }),
    ),
  );
  for (const { id } of mesh.nodes) {
    await say(`  ${id.padEnd(7)} wrote {"colour":"${colourOf(id)}","written_by":"${id}"}`);
  }
  await waitConverged('the conflicting writes to settle');
  for (const { id, node } of mesh.nodes) {
    const record = await node.store.get('config.shared');
    await say(
      `  ${id.padEnd(7)} config.shared = ${record?.content.toString('utf8') ?? '(absent)'}  (v${record?.version}, origin ${record?.origin})`,
    );
  }
  await say('  every node kept the same winner: the latest clock (updated_at, version, origin)');
  await pause();

  await say();
  const tokyo = mesh.get('tokyo');
  await say(`▸ 4. Failure: killing tokyo's Redis (SIGKILL, pid ${tokyo.redis.pid})`);
  await tokyo.redis.kill();
  await until('london and paris to notice', () =>
    Promise.resolve(
      ['london', 'paris'].every((id) =>
        mesh
          .get(id)
          .node.engine.health()
          .peers.some((p) => p.node_id === 'tokyo' && !p.connected),
      ),
    ),
  );
  const downWrites = Math.max(5, Math.floor(pace.perNode / 5));
  await say(
    `  london and paris keep going: ${downWrites} writes and 2 deletes while tokyo is down`,
  );
  const paris = mesh.get('paris').node;
  for (let i = 0; i < downWrites; i += 1) {
    await (i % 2 === 0 ? london : paris).store.put(`order.${i}`, { order: i, while: 'tokyo down' });
  }
  await london.store.delete('user.tokyo.0');
  await paris.store.delete('user.london.1');
  await say("  london's view now (what `replication-engine status` prints):");
  for (const line of formatHealth(london.engine.health()).split('\n')) {
    await say(`    ${line}`.trimEnd());
  }
  await pause();

  await say();
  await say(`▸ 5. Recovery: restarting tokyo's Redis on port ${tokyo.redis.port}, with its data`);
  await tokyo.redis.restart();
  let back: NodeSnapshot | undefined;
  await until("tokyo's node to reconnect to its Redis", async () => {
    back = await mesh.snapshotOf('tokyo');
    return true;
  });
  await say(
    `  redis-server back (pid ${tokyo.redis.pid}) with ${back?.documents ?? '?'} documents from its append-only file;`,
  );
  await say('  tokyo catches up from its cursors, london and paris reconnect to it');
  await waitConverged('tokyo to catch up');
  await pause();

  await say();
  await say('▸ 6. Result: the three stores side by side');
  const final = await waitConverged('the final state');
  quiet = true;
  const rows = [
    ['NODE', 'DOCUMENTS', 'TOMBSTONES', 'MERKLE ROOT'],
    ...final.map((s) => [s.id, String(s.documents), String(s.tombstones), s.root]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const row of rows) {
    await say(
      `  ${row
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd()}`,
    );
  }
  await say(`  identical: ${final.length} nodes, the same documents and the same Merkle root`);
  await say(
    `  conflicts detected along the way: ${conflicts.shown}; total time ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  await say();
}

function colourOf(id: string): string {
  return id === 'london' ? 'red' : id === 'paris' ? 'blue' : 'green';
}

function sleep(ms: number): Promise<void> {
  return ms <= 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, ms));
}
