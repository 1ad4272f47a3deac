/** The shared CDC vectors (entries exactly as the Rust sync-engine writes them), decoded. */
import { readFileSync } from 'node:fs';

export interface VectorExpect {
  readonly op: 'PUT' | 'DEL';
  readonly key: string;
  readonly hash?: string | null;
  readonly content_b64?: string;
  readonly compressed?: boolean;
  readonly meta?: {
    content_type: string;
    version: number;
    updated_at: number;
    trace_parent?: string;
  } | null;
}

export interface Vector {
  readonly name: string;
  /** Flat `[name, value, …]` as XREAD returns it. */
  readonly fields: Buffer[];
  readonly expect?: VectorExpect;
}

interface RawVector {
  name: string;
  fields: [string, string][];
  expect?: VectorExpect;
}

const raw = JSON.parse(
  readFileSync(new URL('../fixtures/cdc-sync-engine.json', import.meta.url), 'utf8'),
) as { valid: RawVector[]; invalid: RawVector[] };

function decode(v: RawVector): Vector {
  return {
    name: v.name,
    fields: v.fields.flatMap(([name, b64]) => [
      Buffer.from(name, 'utf8'),
      Buffer.from(b64, 'base64'),
    ]),
    ...(v.expect !== undefined ? { expect: v.expect } : {}),
  };
}

export const validVectors: Vector[] = raw.valid.map(decode);
export const invalidVectors: Vector[] = raw.invalid.map(decode);
