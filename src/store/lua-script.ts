/**
 * Redis Lua scripts loaded from the `.lua` files next to this module (copied to dist by the build),
 * run with EVALSHA, and with EVAL (which caches them) when the server answers NOSCRIPT.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { RedisArgument } from '@redis/client';
import { StoreError } from '../errors.js';
import { AS_STRINGS, type CommandSender } from './redis-io.js';

/** One Lua script, identified by its SHA-1. */
export class LuaScript {
  readonly sha: string;

  constructor(
    readonly name: string,
    readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  /**
   * Loads `scripts/<name>.lua` relative to this module, each line `-- @include <helper>` replaced
   * by `scripts/include/<helper>.lua` (a Lua helper shared by several scripts, written once), and
   * each line `-- @script <other>` by the whole of script `<other>` (its includes resolved: a
   * script that runs another's body as a function).
   */
  static load(name: string): LuaScript {
    return new LuaScript(name, loadSource(name));
  }

  /**
   * Runs the script: EVALSHA, and on NOSCRIPT once more as EVAL of its source, which also caches
   * it on that server. EVAL goes where the EVALSHA went (the server of its first key, in a
   * cluster), where a separate SCRIPT LOAD could land on another shard.
   *
   * @throws {StoreError} when the script fails, with the Redis error as `cause`.
   */
  async run<T>(
    client: CommandSender,
    keys: readonly RedisArgument[],
    args: readonly RedisArgument[],
  ): Promise<T> {
    const tail = [String(keys.length), ...keys, ...args];
    try {
      return await client.sendCommand<T>(['EVALSHA', this.sha, ...tail], AS_STRINGS);
    } catch (error) {
      if (!isNoScript(error)) throw this.wrap(error);
    }
    try {
      return await client.sendCommand<T>(['EVAL', this.source, ...tail], AS_STRINGS);
    } catch (error) {
      throw this.wrap(error);
    }
  }

  private wrap(error: unknown): StoreError {
    const detail = error instanceof Error ? error.message : String(error);
    return new StoreError(`script ${this.name} failed: ${detail}`, { cause: error });
  }
}

function loadSource(name: string): string {
  const read = (path: string): string => readFileSync(new URL(path, import.meta.url), 'utf8');
  return read(`./scripts/${name}.lua`)
    .replace(/^-- @include ([a-z_]+)$/gm, (_line, helper: string) =>
      read(`./scripts/include/${helper}.lua`).trimEnd(),
    )
    .replace(/^-- @script ([a-z_]+)$/gm, (_line, other: string) => loadSource(other).trimEnd());
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}

/** Every script the store runs, loaded once per process. */
export const SCRIPTS = {
  write: LuaScript.load('write'),
  write_many: LuaScript.load('write_many'),
  list: LuaScript.load('list'),
  apply: LuaScript.load('apply'),
  apply_shard: LuaScript.load('apply_shard'),
  claim: LuaScript.load('claim'),
  commit: LuaScript.load('commit'),
  unlock: LuaScript.load('unlock'),
  extend: LuaScript.load('extend'),
  steal: LuaScript.load('steal'),
  purge: LuaScript.load('purge'),
} as const;
