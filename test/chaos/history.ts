/**
 * The history of a chaos run (Jepsen-style): every write a client issued, whether it was
 * acknowledged (with the clock the store gave it), failed (indeterminate: it may or may not have
 * happened), or was excused (acknowledged, then lost with a wiped Redis before it replicated).
 * The checker compares the final records with it. Pure: no I/O.
 */
import { createHash } from 'node:crypto';
import { compareVersions, type RecordVersion, type StoredRecord } from '../../src/model/record.js';

/** One write a client issued. */
export interface WriteOp {
  readonly id: number;
  /** Index of the node it was issued to. */
  readonly node: number;
  readonly origin: string;
  readonly key: string;
  readonly deleted: boolean;
  /** sha256 hex of the content; '' for a delete. */
  readonly contentHash: string;
  status: 'pending' | 'ok' | 'failed';
  /** The clock the store stamped, once acknowledged. */
  record?: RecordVersion;
  /** Why an acknowledged write is not required to survive. */
  excused?: string;
}

/** A way the final state breaks the promise. */
export interface Violation {
  readonly kind:
    | 'diverged'
    | 'merkle'
    | 'lost'
    | 'resurrected'
    | 'phantom'
    | 'bad-content'
    | 'unsettled'
    | 'leak'
    /** Hot-path-only mode: a gap or a repair that changed something (the hot path lost it). */
    | 'repaired';
  readonly key?: string;
  readonly detail: string;
}

/** Every write of a run, in issue order. */
export class History {
  readonly ops: WriteOp[] = [];

  /** Records a write about to be issued. */
  begin(node: number, origin: string, key: string, content: Buffer | undefined): WriteOp {
    const op: WriteOp = {
      id: this.ops.length,
      node,
      origin,
      key,
      deleted: content === undefined,
      contentHash: content === undefined ? '' : sha256Hex(content),
      status: 'pending',
    };
    this.ops.push(op);
    return op;
  }

  /** Every key ever written, sorted. */
  keys(): string[] {
    return [...new Set(this.ops.map((o) => o.key))].sort();
  }

  /** Counts by status. */
  counts(): { ok: number; failed: number; excused: number; pending: number } {
    let ok = 0;
    let failed = 0;
    let excused = 0;
    let pending = 0;
    for (const o of this.ops) {
      if (o.status === 'ok') ok++;
      else if (o.status === 'failed') failed++;
      else pending++;
      if (o.excused !== undefined) excused++;
    }
    return { ok, failed, excused, pending };
  }
}

export function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function clockText(v: RecordVersion | undefined): string {
  if (v === undefined) return 'absent';
  const what = v.deleted ? 'tombstone' : `put ${v.contentHash.slice(0, 8)}`;
  return `${what} @(${v.updatedAt}, v${v.version}, ${v.origin})`;
}

/** True when `record` is exactly what `op` could have written. */
function matches(op: WriteOp, record: RecordVersion): boolean {
  if (op.record !== undefined) return compareVersions(op.record, record) === 0;
  return (
    op.origin === record.origin &&
    op.deleted === record.deleted &&
    op.contentHash === record.contentHash
  );
}

/** True when `record` is exactly the acknowledged write `op`. */
function sameClock(op: WriteOp, record: RecordVersion): boolean {
  return op.record !== undefined && compareVersions(op.record, record) === 0;
}

/**
 * Checks the converged records against the history: for every key, the surviving record is the
 * LWW maximum of the acknowledged (not excused) writes, or a later write that may have happened
 * (failed, or excused); no acknowledged write is lost, no deleted key comes back. A key whose
 * maximum is a delete may also be absent (its tombstone purged) or hold a tombstone no client
 * wrote, older than the delete (a superseding delete, docs/PROTOCOL.md §6; a client's tombstone
 * there means the greatest delete was lost): still deleted, never
 * live. A live maximum given up to a tombstone no client wrote is `lost`.
 */
export function checkHistory(
  history: History,
  finals: ReadonlyMap<string, StoredRecord>,
): Violation[] {
  const violations: Violation[] = [];
  const byKey = new Map<string, WriteOp[]>();
  for (const op of history.ops) {
    const list = byKey.get(op.key) ?? [];
    list.push(op);
    byKey.set(op.key, list);
  }
  for (const [key, ops] of byKey) {
    let required: RecordVersion | undefined;
    for (const op of ops) {
      if (op.status !== 'ok' || op.excused !== undefined || op.record === undefined) continue;
      if (required === undefined || compareVersions(op.record, required) > 0) required = op.record;
    }
    const survivor = finals.get(key);
    if (survivor !== undefined && !survivor.deleted) {
      const hash = sha256Hex(survivor.content);
      if (hash !== survivor.contentHash) {
        violations.push({
          kind: 'bad-content',
          key,
          detail: `content hashes to ${hash}, record says ${survivor.contentHash}`,
        });
      }
    }
    if (required !== undefined) {
      const cmp = survivor === undefined ? -1 : compareVersions(survivor, required);
      // A deleted key may be gone: its tombstone purged once every peer held it (PROTOCOL §6).
      // Or it may hold a tombstone no client wrote, older than the delete: one that superseded a
      // stale peer's old record of the key after the delete was purged. Either way it stays
      // deleted; a tombstone a client wrote must still be the greatest.
      if (
        cmp < 0 &&
        required.deleted &&
        (survivor === undefined || (survivor.deleted && !ops.some((op) => sameClock(op, survivor))))
      )
        continue;
      if (cmp < 0) {
        violations.push({
          kind: required.deleted && survivor?.deleted === false ? 'resurrected' : 'lost',
          key,
          detail: `acknowledged ${clockText(required)} but the mesh holds ${clockText(survivor)}`,
        });
        continue;
      }
      if (cmp === 0) continue;
    }
    if (survivor === undefined) continue;
    if (required !== undefined && !required.deleted && survivor.deleted) {
      // A put given up to a superseding tombstone: the no-resurrection rule must never do that to
      // an acknowledged write (PROTOCOL §6, "Nothing acknowledged is lost by this rule").
      const candidates = ops.filter((op) => op.status !== 'ok' || op.excused !== undefined);
      if (!candidates.some((op) => matches(op, survivor))) {
        violations.push({
          kind: 'lost',
          key,
          detail: `acknowledged ${clockText(required)} but the mesh holds ${clockText(survivor)}, which no write made (superseded)`,
        });
        continue;
      }
    }
    // Newer than every required write: it must be a write that may have happened.
    const candidates = ops.filter(
      (op) => op.status !== 'ok' || op.excused !== undefined || op.record === undefined,
    );
    if (!candidates.some((op) => matches(op, survivor))) {
      violations.push({
        kind: 'phantom',
        key,
        detail: `the mesh holds ${clockText(survivor)}, which no write made (required: ${clockText(required)})`,
      });
    }
  }
  return violations;
}
